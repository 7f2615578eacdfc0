package inbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/dist"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dragonboat's process-wide goroutines (see basekv's tests).
		goleak.IgnoreTopFunction("github.com/lni/goutils/syncutil.(*Stopper).runWorker.func1"),
		goleak.IgnoreAnyFunction("github.com/lni/dragonboat/v4/internal/logdb/kv/pebble.(*eventListener).notify"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionPicker.func1"),
	)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// openNode opens a one-node basekv in dir with the inbox store.
func openNode(t *testing.T, dir string) (*basekv.Node, *Client) {
	t.Helper()
	n, err := basekv.Open(basekv.Options{DataDir: dir, RaftAddr: freeAddr(t), RTT: 10 * time.Millisecond,
		LogDB: basekv.LogDBTiny, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(n, basekv.ReplicaOptions{})
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func msg(topic, payload string, qos byte) *dist.Message {
	return &dist.Message{Topic: topic, Payload: []byte(payload), QoS: qos, Publisher: "pub"}
}

func TestInboxLifecycle(t *testing.T) {
	dir := t.TempDir()
	n, c := openNode(t, dir)
	cx := ctx(t)
	a, err := c.Attach(cx, AttachRequest{Tenant: "t", ID: "c1", Expiry: 60, Limit: 3, Owner: "srv/1", Incarnation: 10})
	if err != nil || a.Present || a.Meta.Incarnation != 10 {
		t.Fatalf("attach: %+v %v", a, err)
	}
	if err := c.Subscribe(cx, "t", "c1", 10, "a/+", SubOptions{QoS: 1, ID: 7}, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(cx, "t", "c1", 10, "a/b", SubOptions{QoS: 2}, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(cx, "t", "c1", 10, "x", SubOptions{}, 2); !errors.Is(err, ErrTooManyFilters) {
		t.Fatalf("third filter with max 2: %v", err)
	}
	if err := c.Subscribe(cx, "t", "c1", 9, "y", SubOptions{}, 0); !errors.Is(err, ErrNoInbox) {
		t.Fatalf("old incarnation: %v", err)
	}
	// Overlapping filters: one entry, max QoS, every id.
	r, err := c.Insert(cx, "t", "c1", 10, []string{"a/+", "a/b"}, msg("a/b", "m1", 2))
	if err != nil || !r.Stored || r.Queue != SendBuffer || r.Seq != 0 {
		t.Fatalf("insert: %+v %v", r, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Insert(cx, "t", "c1", 10, []string{"a/+"}, msg("a/c", "more", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := c.Insert(cx, "t", "c1", 10, []string{"a/+"}, msg("a/c", "over", 1)); !r.Dropped {
		t.Fatalf("fourth insert over limit 3: %+v", r)
	}
	if r, _ := c.Insert(cx, "t", "c1", 10, []string{"a/+"}, msg("a/c", "q0", 0)); !r.Stored || r.Queue != QoS0Queue {
		t.Fatalf("QoS 0 insert: %+v", r)
	}
	es, err := c.Fetch(cx, "t", "c1", SendBuffer, 0, 10)
	if err != nil || len(es) != 3 {
		t.Fatalf("fetch: %d %v", len(es), err)
	}
	if e := es[0]; e.QoS != 2 || len(e.IDs) != 1 || e.IDs[0] != 7 || string(e.Message.Payload) != "m1" {
		t.Fatalf("entry 0: %+v", e)
	}
	if err := c.MarkReceived(cx, "t", "c1", 10, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(cx, "t", "c1", 10, []Pos{{SendBuffer, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetQoS2In(cx, "t", "c1", 10, true, 42); err != nil {
		t.Fatal(err)
	}
	// Detach keeps it; a restart keeps it; attach (not clean) resumes it.
	if del, _, err := c.Detach(cx, "t", "c1", 10, 60, "srv/1", nil, 1); err != nil || del {
		t.Fatalf("detach: %v %v", del, err)
	}
	n.Close()
	n, c = openNode(t, dir)
	defer n.Close()
	cx = ctx(t)
	a, err = c.Attach(cx, AttachRequest{Tenant: "t", ID: "c1", Expiry: 60, Limit: 3, Owner: "srv/2", Incarnation: 11})
	if err != nil || !a.Present || a.Meta.Incarnation != 10 || len(a.Meta.Subs) != 2 || len(a.Meta.QoS2In) != 1 {
		t.Fatalf("resume: %+v %v", a, err)
	}
	es, _ = c.Fetch(cx, "t", "c1", SendBuffer, 0, 10)
	if len(es) != 2 || !es[0].Rec || es[1].Seq != 2 {
		t.Fatalf("after restart: %+v", es)
	}
	// Clean start discards it and returns its filters to unroute.
	a, err = c.Attach(cx, AttachRequest{Tenant: "t", ID: "c1", Clean: true, Owner: "srv/2", Incarnation: 12})
	if err != nil || a.Present || len(a.Discarded) != 2 || a.DiscardedInc != 10 {
		t.Fatalf("clean attach: %+v %v", a, err)
	}
	if es, _ := c.Fetch(cx, "t", "c1", SendBuffer, 0, 10); len(es) != 0 {
		t.Fatalf("clean start kept %d entries", len(es))
	}
	// Detach with expiry 0 deletes it.
	if del, _, err := c.Detach(cx, "t", "c1", 12, 0, "srv/2", nil, 0); err != nil || !del {
		t.Fatalf("detach expiry 0: %v %v", del, err)
	}
	if _, err := c.Meta(cx, "t", "c1"); !errors.Is(err, ErrNoInbox) {
		t.Fatalf("deleted inbox: %v", err)
	}
}

// recordingRouter records what the service unroutes and publishes.
type recordingRouter struct {
	mu        sync.Mutex
	unrouted  []string
	published []string
}

func (r *recordingRouter) RemoveRoute(_ context.Context, rt dist.Route, _ uint64) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unrouted = append(r.unrouted, rt.Filter)
	return true, nil
}

func (r *recordingRouter) PubAsync(_ string, m *dist.Message, done func(int, error)) {
	r.mu.Lock()
	r.published = append(r.published, m.Topic)
	r.mu.Unlock()
	done(1, nil)
}

func TestExpiryAndDelayedWill(t *testing.T) {
	n, c := openNode(t, t.TempDir())
	defer n.Close()
	rr := &recordingRouter{}
	svc, err := NewService(c, rr, ServiceOptions{ExpiryInterval: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	cx := ctx(t)
	will := &Will{Delay: 1, Message: msg("will/topic", "bye", 1)}
	for _, id := range []string{"short", "long"} {
		if _, err := c.Attach(cx, AttachRequest{Tenant: "t", ID: id, Expiry: 2, Owner: "o", Incarnation: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribe(cx, "t", id, 1, "s/"+id, SubOptions{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Detach(cx, "t", "short", 1, 2, "o", will, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Detach(cx, "t", "long", 1, 100, "o", nil, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rr.mu.Lock()
		got := len(rr.published) == 1 && len(rr.unrouted) == 1
		rr.mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %v, unrouted %v", rr.published, rr.unrouted)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rr.published[0] != "will/topic" || rr.unrouted[0] != "s/short" {
		t.Fatalf("published %v, unrouted %v", rr.published, rr.unrouted)
	}
	if _, err := c.Meta(cx, "t", "short"); !errors.Is(err, ErrNoInbox) {
		t.Fatal("expired inbox still there")
	}
	if _, err := c.Meta(cx, "t", "long"); err != nil {
		t.Fatalf("unexpired inbox: %v", err)
	}
}

// TestSweepOrphans: sessions attached to an earlier run of a node are
// detached (so they expire); the current run's and other nodes' are not.
func TestSweepOrphans(t *testing.T) {
	n, c := openNode(t, t.TempDir())
	defer n.Close()
	cx := ctx(t)
	for id, owner := range map[string]string{"old": "n1/run1/5", "cur": "n1/run2/7", "other": "n2/run1/1"} {
		if _, err := c.Attach(cx, AttachRequest{Tenant: "t", ID: id, Expiry: 60, Owner: owner, Incarnation: 1}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.SweepOrphans(cx, "n1", "n1/run2")
	if err != nil || got != 1 {
		t.Fatalf("swept %d, %v; want 1", got, err)
	}
	for id, detached := range map[string]bool{"old": true, "cur": false, "other": false} {
		m, err := c.Meta(cx, "t", id)
		if err != nil {
			t.Fatal(err)
		}
		if (m.DetachedAt != 0) != detached || (detached && m.Deadline == 0) {
			t.Fatalf("%s: detached at %d, deadline %d", id, m.DetachedAt, m.Deadline)
		}
	}
}
