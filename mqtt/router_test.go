package mqtt

import (
	"net"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/retain"
)

// newRouter starts a real dist service for a test: a one-node basekv
// store in a temporary directory, its Raft transport on a free loopback
// port. It stops when the test ends, after the test's servers (cleanups
// run last-registered first, and servers are started after it).
func newRouter(t testing.TB) *dist.Service {
	svc, _ := newStores(t)
	return svc
}

// newStores is newRouter plus a retain store on the same node.
func newStores(t testing.TB) (*dist.Service, *retain.Client) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := basekv.Open(basekv.Options{DataDir: t.TempDir(), RaftAddr: addr, RTT: 10 * time.Millisecond,
		LogDB: basekv.LogDBTiny, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	w, err := dist.OpenWorker(n, basekv.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dist.NewService(w, dist.ServiceOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	rs, err := retain.OpenOptions(n, retain.Options{Logger: quietLogger(), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return svc, rs
}
