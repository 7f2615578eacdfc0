package dist

import (
	"context"
	"testing"
	"time"
)

// inlineRecorder is a recorder the service may call inline.
type inlineRecorder struct{ *recorder }

func (inlineRecorder) DeliversInline() {}

// blocker is a Deliverer that holds each batch until released.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocker) Deliver(_ context.Context, batch []Delivery) []Result {
	b.entered <- struct{}{}
	<-b.release
	return make([]Result, len(batch))
}

// TestServicePubInline: PubInline delivers on the caller's goroutine only
// when the routes are cached, all go to one InlineDeliverer (or there are
// none) and the lane has nothing pending; otherwise it does nothing.
func TestServicePubInline(t *testing.T) {
	w := openWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := NewService(w, ServiceOptions{Lanes: 1}) // one lane: every publisher shares it
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	local := inlineRecorder{&recorder{got: map[string]int{}, answer: map[string]Result{}}}
	slow := &blocker{entered: make(chan struct{}, 1), release: make(chan struct{})}
	svc.Register("local", local)
	svc.Register("slow", slow)
	for _, r := range []struct{ filter, owner, id string }{
		{"a", "local", "s1"}, {"a", "local", "s2"}, {"both", "local", "s1"}, {"both", "slow", "x"},
		{"gone", "local", "gone"}, {"blocked", "slow", "y"},
	} {
		if _, err := svc.AddRoute(ctx, Route{Tenant: "t", Filter: r.filter, Kind: Normal,
			Receiver: ReceiverID(r.owner, []byte(r.id))}, 1); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(topic string) *Message { return &Message{Topic: topic, Publisher: "p"} }
	// inlineOnceIdle publishes to topic inline once the lane is idle with
	// the topic's routes cached. A synchronous Pub returns before its lane
	// counts it done, and an unroute empties the route cache when it lands:
	// it warms the cache and retries for a while.
	inlineOnceIdle := func(topic string) (n int, err error, ok bool) {
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
			if _, err := svc.Pub(ctx, "t", msg(topic)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
			n, err, ok = svc.PubInline(ctx, "t", msg(topic))
		}
		return n, err, ok
	}
	if _, _, ok := svc.PubInline(ctx, "t", msg("a")); ok {
		t.Fatal("inline with a cold route cache")
	}
	for _, topic := range []string{"a", "none", "gone"} {
		if _, err := svc.Pub(ctx, "t", msg(topic)); err != nil { // warms the cache
			t.Fatal(err)
		}
	}
	if n, err, ok := inlineOnceIdle("a"); !ok || n != 2 || err != nil {
		t.Fatalf("inline publish to two local receivers: n=%d err=%v ok=%v", n, err, ok)
	}
	if n, err, ok := svc.PubInline(ctx, "t", msg("none")); !ok || n != 0 || err != nil {
		t.Fatalf("inline publish to nobody: n=%d err=%v ok=%v", n, err, ok)
	}
	// The receiver is reported gone only now: its unroute, which empties
	// the route cache when it lands, must not race the publishes above.
	local.mu.Lock()
	local.answer["gone"] = NoReceiver
	local.mu.Unlock()
	if n, _, ok := svc.PubInline(ctx, "t", msg("gone")); !ok || n != 0 {
		t.Fatalf("inline publish to a gone receiver: n=%d ok=%v", n, ok)
	}

	// Two deliverers, or one that is not inline: the lane's work.
	pending := make(chan error, 1)
	go func() { _, err := svc.Pub(ctx, "t", msg("both")); pending <- err }() // blocks in slow
	<-slow.entered
	if _, _, ok := svc.PubInline(ctx, "t", msg("a")); ok {
		t.Fatal("inline while the lane has a publish pending")
	}
	close(slow.release)
	if err := <-pending; err != nil {
		t.Fatal(err)
	}
	if _, _, ok := inlineOnceIdle("a"); !ok {
		t.Fatal("not inline once the lane is idle again")
	}
	if _, _, ok := svc.PubInline(ctx, "t", msg("both")); ok {
		t.Fatal("inline with two deliverers")
	}
	if _, err := svc.Pub(ctx, "t", msg("blocked")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := svc.PubInline(ctx, "t", msg("blocked")); ok {
		t.Fatal("inline to a deliverer that is not inline")
	}
	local.mu.Lock()
	defer local.mu.Unlock()
	if local.got["s1"] < 5 || local.got["s2"] < 4 || local.got["gone"] != 2 {
		t.Fatalf("local deliveries %v", local.got)
	}
}

// TestServicePubInlineOrder: publishers that deliver inline when they can
// and through the lanes otherwise (as the mqtt frontend does) still have
// each message arrive, and complete, in publish order.
func TestServicePubInlineOrder(t *testing.T) {
	const publishers, each = 8, 2000
	inline := publishOrdered(t, inlineOrder{&order{last: map[string]int{}}}, publishers, each, true)
	if inline == 0 || inline == publishers*each {
		t.Fatalf("%d of %d publishes inline: the test mixes both paths", inline, publishers*each)
	}
	t.Logf("%d of %d publishes delivered inline", inline, publishers*each)
}

type inlineOrder struct{ *order }

func (inlineOrder) DeliversInline() {}

// orderOf returns the order recorder behind d.
func orderOf(d Deliverer) *order {
	if io, ok := d.(inlineOrder); ok {
		return io.order
	}
	return d.(*order)
}
