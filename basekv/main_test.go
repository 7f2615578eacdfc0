package basekv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/basekv/internal/raftenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m,
		// dragonboat's process-wide goroutines, started at package init or
		// on first use and never stopped.
		goleak.IgnoreTopFunction("github.com/lni/goutils/syncutil.(*Stopper).runWorker.func1"),
		goleak.IgnoreAnyFunction("github.com/lni/dragonboat/v4/internal/logdb/kv/pebble.(*eventListener).notify"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionPicker.func1"),
		// memberlist's Shutdown does not wait for an in-flight probe, which
		// ends within its probe timeout.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

const childEnv = "BASEKV_TEST_CHILD"

// runChild opens a node and writes a key: run as a child process from a
// working directory of the parent test's choosing.
func runChild() int {
	dir, err := os.MkdirTemp("", "basekv-child-")
	if err != nil {
		return 3
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 3
	}
	addr := l.Addr().String()
	l.Close()
	n, err := Open(Options{DataDir: dir, RaftAddr: addr, LogDB: LogDBTiny, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer n.Close()
	kv, err := n.KV("kv", ReplicaOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kv.Put(c, []byte("k"), []byte("v")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	wd, _ := os.Getwd()
	fmt.Println("wd=" + wd)
	return 0
}

// TestIndependentOfWorkingDirectory runs a node in a child process started
// in a directory holding a malformed dragonboat-soft-settings.json: it must
// neither read it (dragonboat would panic) nor leave the working directory
// changed.
func TestIndependentOfWorkingDirectory(t *testing.T) {
	if !raftenv.Applied {
		t.Fatal("basekv's dragonboat settings were not applied")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dragonboat-soft-settings.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "wd="+dir) {
		t.Fatalf("child's working directory not restored to %s:\n%s", dir, out)
	}
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
