package dist

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/basekv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dragonboat's process-wide goroutines (see basekv's tests).
		goleak.IgnoreTopFunction("github.com/lni/goutils/syncutil.(*Stopper).runWorker.func1"),
		goleak.IgnoreAnyFunction("github.com/lni/dragonboat/v4/internal/logdb/kv/pebble.(*eventListener).notify"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionPicker.func1"),
	)
}

func openWorker(t *testing.T) *Worker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := basekv.Open(basekv.Options{DataDir: t.TempDir(), RaftAddr: addr, RTT: 10 * time.Millisecond,
		LogDB: basekv.LogDBTiny, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	w, err := OpenWorker(n, basekv.ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func filters(rs []Route) string {
	var f []string
	for _, r := range rs {
		f = append(f, r.Tenant+":"+r.Filter+"@"+string(r.Receiver))
	}
	sort.Strings(f)
	return strings.Join(f, " ")
}

func TestWorkerRoutesOnBasekv(t *testing.T) {
	w := openWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	add := func(tenant, filter, recv string, inc uint64) bool {
		t.Helper()
		kind, group, f, err := ParseFilter(filter)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := w.AddRoute(ctx, Route{Tenant: tenant, Filter: f, Kind: kind, Group: group, Receiver: []byte(recv)}, inc)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	add("t1", "a/+", "r1", 1)
	add("t1", "a/#", "r2", 1)
	add("t1", "$share/g/a/b", "r3", 1)
	add("t1", "b", "r4", 1)
	add("t2", "a/b", "r5", 1) // another tenant, same topic
	match := func(tenant, topic string) string {
		t.Helper()
		rs, err := w.Match(ctx, tenant, topic)
		if err != nil {
			t.Fatal(err)
		}
		return filters(rs)
	}
	if got := match("t1", "a/b"); got != "t1:a/#@r2 t1:a/+@r1 t1:a/b@r3" {
		t.Fatalf("t1 a/b: %s", got)
	}
	if got := match("t2", "a/b"); got != "t2:a/b@r5" {
		t.Fatalf("t2 a/b: %s", got)
	}
	// Incarnations: an add or remove of an older incarnation loses.
	if add("t1", "b", "r4", 3); add("t1", "b", "r4", 2) {
		t.Fatal("an older incarnation's add won")
	}
	r4 := Route{Tenant: "t1", Filter: "b", Kind: Normal, Receiver: []byte("r4")}
	if ok, _ := w.RemoveRoute(ctx, r4, 2); ok {
		t.Fatal("an older incarnation's remove won")
	}
	if ok, _ := w.RemoveRoute(ctx, r4, 3); !ok {
		t.Fatal("remove failed")
	}
	if got := match("t1", "b"); got != "" {
		t.Fatalf("removed route still matches: %s", got)
	}
	// A split proposed inside tenant t2's keys lands at the tenant's start,
	// and matching goes on across the ranges.
	right, err := w.Store().Split(ctx, append(appendSeg(nil, "t2"), 'x'))
	if err != nil {
		t.Fatal(err)
	}
	if string(right.Start) != string(appendSeg(nil, "t2")) {
		t.Fatalf("split at %q, want the start of tenant t2", right.Start)
	}
	if got := match("t2", "a/b"); got != "t2:a/b@r5" {
		t.Fatalf("t2 a/b after split: %s", got)
	}
	if got := match("t1", "a/c"); got != "t1:a/#@r2 t1:a/+@r1" {
		t.Fatalf("t1 a/c after split: %s", got)
	}
}

// TestWorkerMatchCacheRandomized drives the dist.worker store with random
// adds and removes (so the per-tenant tries are built and updated on the
// apply path), a split half way (which drops them), and compares every
// match with a brute-force matcher over the model's routes.
func TestWorkerMatchCacheRandomized(t *testing.T) {
	w := openWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
	levels := []string{"a", "b", "", "$s", "+", "#"}
	randFilter := func() string {
		n := 1 + rnd.Intn(3)
		var ls []string
		for i := 0; i < n; i++ {
			l := levels[rnd.Intn(len(levels))]
			if l == "#" && i != n-1 {
				l = "a"
			}
			ls = append(ls, l)
		}
		return strings.Join(ls, "/")
	}
	model := map[string]Route{}
	check := func(step int) {
		for q := 0; q < 20; q++ {
			var tl []string
			for i := 0; i < 1+rnd.Intn(3); i++ {
				tl = append(tl, []string{"a", "b", "", "$s"}[rnd.Intn(4)])
			}
			topic := strings.Join(tl, "/")
			tenant := []string{"t1", "t2"}[rnd.Intn(2)]
			var want []Route
			for _, r := range model {
				if r.Tenant == tenant && bruteMatch(r.Filter, topic) {
					want = append(want, r)
				}
			}
			got, err := w.Match(ctx, tenant, topic)
			if err != nil {
				t.Fatal(err)
			}
			if g, wnt := filters(got), filters(want); g != wnt {
				t.Fatalf("step %d, %s %q: got %s, want %s", step, tenant, topic, g, wnt)
			}
		}
	}
	for step := 0; step < 300; step++ {
		r := Route{Tenant: []string{"t1", "t2"}[rnd.Intn(2)], Filter: randFilter(), Kind: Normal,
			Receiver: []byte(fmt.Sprint(rnd.Intn(5)))}
		k := string(RouteKey(r))
		if _, ok := model[k]; ok && rnd.Intn(2) == 0 {
			if _, err := w.RemoveRoute(ctx, r, 1); err != nil {
				t.Fatal(err)
			}
			delete(model, k)
		} else {
			if _, err := w.AddRoute(ctx, r, 1); err != nil {
				t.Fatal(err)
			}
			model[k] = r
		}
		if step == 150 {
			if _, err := w.Store().Split(ctx, appendSeg(nil, "t2")); err != nil {
				t.Fatal(err)
			}
		}
		if step%10 == 0 {
			check(step)
		}
	}
	check(300)
}
