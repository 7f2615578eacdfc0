package basekv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dragonboat's process-wide goroutines, started at package init or
		// on first use and never stopped.
		goleak.IgnoreTopFunction("github.com/lni/goutils/syncutil.(*Stopper).runWorker.func1"),
		goleak.IgnoreAnyFunction("github.com/lni/dragonboat/v4/internal/logdb/kv/pebble.(*eventListener).notify"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionPicker.func1"),
	)
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testOptions(t testing.TB, dir string, d *Directory) Options {
	return Options{
		DataDir:         dir,
		RaftAddr:        freeAddr(t),
		Directory:       d,
		RTT:             10 * time.Millisecond,
		LogDB:           LogDBTiny,
		ProposalTimeout: time.Second,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func openNode(t testing.TB, opts Options) *Node {
	t.Helper()
	n, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func key(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
