package dist

import (
	"context"
	"errors"
	"fmt"
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
	svc, err := NewService(w, ServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
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
	// The gone receiver is unrouted (in the background).
	if !routedEventually(t, w, "t", "a/b", "gone", false) {
		t.Fatal("a receiver reported gone is still routed")
	}
	// Another tenant sees none of it.
	if n, err := svc.Pub(ctx, "other", &Message{Topic: "a/b"}); n != 0 || err != nil {
		t.Fatalf("other tenant: %d %v", n, err)
	}
}

// routedEventually waits up to 5 s for receiver id to be routed (or not)
// for topic, and reports whether it got there.
func routedEventually(t *testing.T, w *Worker, tenant, topic, id string, want bool) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		routes, err := w.Match(ctx, tenant, topic)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			if _, rid, _ := SplitReceiver(r.Receiver); string(rid) == id {
				found = true
			}
		}
		if found == want {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// gate is a Deliverer that reports its receiver gone until opened.
type gate struct {
	mu   sync.Mutex
	open bool
	seen chan struct{}
}

func (g *gate) Deliver(_ context.Context, batch []Delivery) []Result {
	select {
	case g.seen <- struct{}{}:
	default:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Result, len(batch))
	for i := range out {
		if !g.open {
			out[i] = NoReceiver
		}
	}
	return out
}

// TestServiceUnrouteKeepsNewerIncarnation: a receiver reported gone is
// unrouted with the incarnation Match saw, so a route re-added meanwhile
// by a newer incarnation stays.
func TestServiceUnrouteKeepsNewerIncarnation(t *testing.T) {
	w := openWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := NewService(w, ServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	g := &gate{seen: make(chan struct{}, 1)}
	svc.Register("n", g)
	r := Route{Tenant: "t", Filter: "x/y", Kind: Normal, Receiver: ReceiverID("n", []byte("r"))}
	if _, err := svc.AddRoute(ctx, r, 1); err != nil {
		t.Fatal(err)
	}
	// Match sees incarnation 1; before the unroute runs, incarnation 2
	// re-adds the route (held by the gate's lock until after Deliver).
	g.mu.Lock()
	pub := make(chan error, 1)
	go func() { _, err := svc.Pub(ctx, "t", &Message{Topic: "x/y"}); pub <- err }()
	<-g.seen // the lane has matched and is blocked in Deliver
	if _, err := svc.AddRoute(ctx, r, 2); err != nil {
		t.Fatal(err)
	}
	g.mu.Unlock()
	if err := <-pub; err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the unroute run
	if !routedEventually(t, w, "t", "x/y", "r", true) {
		t.Fatal("the unroute of incarnation 1 removed the route of incarnation 2")
	}
	// With no newer add, the gone receiver goes.
	if _, err := svc.Pub(ctx, "t", &Message{Topic: "x/y"}); err != nil {
		t.Fatal(err)
	}
	if !routedEventually(t, w, "t", "x/y", "r", false) {
		t.Fatal("a gone receiver stayed routed")
	}
}

// order is a Deliverer that checks each publisher's sequence numbers
// arrive in order.
type order struct {
	mu      sync.Mutex
	last    map[string]int
	batches int
	most    int
	bad     error
}

func (o *order) Deliver(_ context.Context, batch []Delivery) []Result {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches++
	o.most = max(o.most, len(batch))
	for _, d := range batch {
		seq := int(d.Message.Payload[0])<<8 | int(d.Message.Payload[1])
		if prev, ok := o.last[d.Message.Publisher]; ok && seq != prev+1 && o.bad == nil {
			o.bad = fmt.Errorf("publisher %s: %d after %d", d.Message.Publisher, seq, prev)
		}
		o.last[d.Message.Publisher] = seq
	}
	return make([]Result, len(batch))
}

// TestServicePubOrderAndBatching: 16 publishers publish concurrently and
// asynchronously; each publisher's messages arrive in order and complete
// in order, and the lanes batch them.
func TestServicePubOrderAndBatching(t *testing.T) {
	o := &order{last: map[string]int{}}
	publishOrdered(t, o, 16, 500, false)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.most < 2 {
		t.Fatalf("no batching: %d Deliver calls, at most %d deliveries each", o.batches, o.most)
	}
	t.Logf("%d messages in %d Deliver calls (largest %d)", 16*500, o.batches, o.most)
}

// publishOrdered has publishers publish each messages concurrently
// through a two-lane service to deliverer d, which records into o, and
// checks that each publisher's messages arrive in order and complete in
// order. With tryInline a publisher first tries PubInline (as the mqtt
// frontend does) and pauses every 100 messages until its publishes have
// completed, so that both paths are taken. It returns how many publishes
// went inline.
func publishOrdered(t *testing.T, d Deliverer, publishers, each int, tryInline bool) int {
	t.Helper()
	o := orderOf(d)
	w := openWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := NewService(w, ServiceOptions{Lanes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.Register("n", d)
	if _, err := svc.AddRoute(ctx, Route{Tenant: "t", Filter: "p/#", Kind: Normal, Receiver: ReceiverID("n", nil)}, 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards bad, inline and each publisher's next
	var bad error
	inline := 0
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("pub", p)
			next := 0
			complete := func(i, n int, err error) {
				mu.Lock()
				defer mu.Unlock()
				if (err != nil || n != 1 || next != i) && bad == nil {
					bad = fmt.Errorf("%s: completion %d (n=%d err=%v), want %d", name, i, n, err, next)
				}
				next++
			}
			var all sync.WaitGroup
			for i := range each {
				m := &Message{Topic: "p/" + name, Publisher: name, Payload: []byte{byte(i >> 8), byte(i)}}
				if tryInline {
					if i%100 == 99 {
						all.Wait() // let the lanes drain now and then, so some go inline
					}
					if n, err, ok := svc.PubInline(ctx, "t", m); ok {
						complete(i, n, err)
						mu.Lock()
						inline++
						mu.Unlock()
						continue
					}
				}
				all.Add(1)
				svc.PubAsync("t", m, func(n int, err error) { defer all.Done(); complete(i, n, err) })
			}
			all.Wait()
		}()
	}
	wg.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bad != nil {
		t.Fatal(o.bad)
	}
	if len(o.last) != publishers {
		t.Fatalf("heard from %d publishers", len(o.last))
	}
	return inline
}

func TestServiceCloseCompletesQueued(t *testing.T) {
	w := openWorker(t)
	svc, err := NewService(w, ServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	svc.Close()
	done := make(chan error, 1)
	svc.PubAsync("t", &Message{Topic: "a"}, func(_ int, err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if _, err := NewService(w, ServiceOptions{Lanes: -1}); err == nil {
		t.Fatal("negative Lanes accepted")
	}
}
