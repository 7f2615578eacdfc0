package standalone

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool sweeper (inside the HTTP API) exits at its
		// next wake, up to a second after the API closes; see apiserver.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// memberlist's Shutdown does not wait for an in-flight probe, which
		// ends within its probe timeout.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}
