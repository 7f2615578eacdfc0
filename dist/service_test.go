package dist

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// recorder is a Deliverer that records what it gets and answers per
// receiver id as told.
type recorder struct {
	mu     sync.Mutex
	got    map[string]int
	answer map[string]Result
}

func (r *recorder) Deliver(_ context.Context, batch []Delivery) []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Result, len(batch))
	for i, d := range batch {
		_, id, _ := SplitReceiver(d.Route.Receiver)
		r.got[string(id)]++
		out[i] = r.answer[string(id)]
	}
	return out
}

func TestServicePub(t *testing.T) {
	w := openWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := NewService(w)
	node := &recorder{got: map[string]int{}, answer: map[string]Result{"gone": NoReceiver}}
	inbox := &recorder{got: map[string]int{}, answer: map[string]Result{}}
	svc.Register("node1", node)
	svc.Register("inbox", inbox)
	add := func(filter, deliverer, id string) {
		t.Helper()
		kind, group, f, err := ParseFilter(filter)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.AddRoute(ctx, Route{Tenant: "t", Filter: f, Kind: kind, Group: group,
			Receiver: ReceiverID(deliverer, []byte(id))}, 1); err != nil {
			t.Fatal(err)
		}
	}
	add("a/b", "node1", "s1")
	add("a/+", "inbox", "i1")
	add("$share/g/a/b", "node1", "m1")
	add("$share/g/a/b", "node1", "m2")
	add("$oshare/o/a/#", "inbox", "p1")
	add("$oshare/o/a/#", "inbox", "p2")
	add("a/b", "node1", "gone")
	add("a/b", "elsewhere", "x")

	n, err := svc.Pub(ctx, "t", &Message{Topic: "a/b", Payload: []byte("hi"), Publisher: "c1"})
	if !errors.Is(err, ErrNoDeliverer) {
		t.Fatalf("want ErrNoDeliverer for the unregistered deliverer, got %v", err)
	}
	// s1, i1, one of m1/m2, one of p1/p2 accepted; "gone" refused.
	if n != 4 {
		t.Fatalf("accepted %d, want 4", n)
	}
	if node.got["m1"]+node.got["m2"] != 1 || inbox.got["p1"]+inbox.got["p2"] != 1 {
		t.Fatalf("shared groups delivered %v / %v", node.got, inbox.got)
	}
	pinned := "p1"
	if inbox.got["p2"] == 1 {
		pinned = "p2"
	}
	for i := 0; i < 10; i++ {
		if _, err := svc.Pub(ctx, "t", &Message{Topic: "a/c", Publisher: "c1"}); err != nil {
			t.Fatal(err)
		}
	}
	if inbox.got[pinned] != 11 {
		t.Fatalf("$oshare did not pin publisher c1 to %s: %v", pinned, inbox.got)
	}
	// The gone receiver was unrouted.
	routes, err := w.Match(ctx, "t", "a/b")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if _, id, _ := SplitReceiver(r.Receiver); string(id) == "gone" {
			t.Fatal("a receiver reported gone is still routed")
		}
	}
	// Another tenant sees none of it.
	if n, err := svc.Pub(ctx, "other", &Message{Topic: "a/b"}); n != 0 || err != nil {
		t.Fatalf("other tenant: %d %v", n, err)
	}
}
