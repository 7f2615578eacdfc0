// Command bifromq runs a BifroMQ-Go broker node.
//
//	bifromq [run] [flags]    run a broker (see bifromq --help)
//	bifromq version          print the version
//	bifromq bench conn|pub|sub [flags]    load a broker (package internal/bench)
//
// Everything but signal handling lives in standalone.Main, so it is tested
// there. Subcommands defined outside package standalone are passed to it
// here, as extra standalone.Command values.
//
// The version is set at link time:
//
//	go build -ldflags "-X github.com/bifromq-go/bifromq/standalone.version=v1.2.3" ./cmd/bifromq
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/bifromq-go/bifromq/internal/bench"
	"github.com/bifromq-go/bifromq/standalone"
)

// gcPercent is the garbage collector's target when GOGC is not set: a
// broker allocates per message, and collecting half as often halves the
// GC's share of the latency tail (p99 at 22k msgs/s: 2.3 ms at 100, 1.3
// ms at 400) while an idle connection still costs ~7 KB.
const gcPercent = 200

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// The first SIGINT or SIGTERM stops the broker gracefully; once it has
	// arrived the handlers are reset, so a second one kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := standalone.Main(ctx, os.Args[1:], os.Stdout, os.Stderr,
		standalone.Command{Name: "bench", Summary: "load a broker: bench conn|pub|sub (see bifromq bench --help)", Run: bench.Main})
	stop()
	os.Exit(code)
}
