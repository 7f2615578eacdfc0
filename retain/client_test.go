package retain

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/dist"
)

func mustRetain(t testing.TB, c *Client, tenant string, m *dist.Message) {
	t.Helper()
	if err := c.Retain(testCtx(t), tenant, m); err != nil {
		t.Fatal(err)
	}
}

func matchTopics(t testing.TB, c *Client, tenant, filter string, limit int) string {
	t.Helper()
	ms, err := c.Match(testCtx(t), tenant, filter, limit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(topics(ms), " ")
}

func TestRetainReplaceClear(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := openClient(t, openNode(t, t.TempDir(), freeAddr(t)), Options{GCInterval: -1, Registerer: reg})
	m := msg("a/b", "one")
	m.Props = &dist.Props{ContentType: "text/plain"}
	mustRetain(t, c, "t", m)
	ms, err := c.Match(testCtx(t), "t", "a/b", 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("%v %v", ms, err)
	}
	if got := ms[0]; got.Topic != "a/b" || string(got.Payload) != "one" || !got.Retain || got.QoS != 1 ||
		got.Props == nil || got.Props.ContentType != "text/plain" || got.Publisher != "p" {
		t.Fatalf("got %+v", got)
	}
	mustRetain(t, c, "t", msg("a/b", "two"))
	if ms, _ := c.Match(testCtx(t), "t", "a/+", 10); len(ms) != 1 || string(ms[0].Payload) != "two" {
		t.Fatalf("after replace: %v", topics(ms))
	}
	mustRetain(t, c, "t", msg("a/b", ""))
	if got := matchTopics(t, c, "t", "#", 10); got != "" {
		t.Fatalf("after clear: %q", got)
	}
	mustRetain(t, c, "t", msg("a/b", "")) // clearing nothing
	for result, want := range map[string]float64{"new": 1, "replaced": 1, "cleared": 1, "noop": 1} {
		if got := counterValue(t, c.metrics.puts, result); got != want {
			t.Errorf("puts{%s} = %v, want %v", result, got, want)
		}
	}
	mfs, err := reg.Gather()
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if err != nil || !slices.Contains(names, "retain_puts_total") || !slices.Contains(names, "retain_match_seconds") {
		t.Errorf("registered: %q %v", names, err)
	}
	// A second client on another registry of the same node: the store is
	// open already.
	if _, err := OpenOptions(c.node, Options{GCInterval: -1}); err == nil {
		t.Fatal("a second Client opened the store")
	}
}

func TestTenantIsolation(t *testing.T) {
	c := newClient(t)
	mustRetain(t, c, "t1", msg("a/b", "1"))
	mustRetain(t, c, "t2", msg("a/b", "2"))
	mustRetain(t, c, "t1\x00", msg("a/c", "3")) // a tenant that extends t1's bytes
	for tenant, want := range map[string]string{"t1": "1", "t2": "2", "t1\x00": "3", "t": ""} {
		ms, err := c.Match(testCtx(t), tenant, "#", 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, string(m.Payload))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("tenant %q: %q, want %q", tenant, got, want)
		}
	}
	mustRetain(t, c, "t1", msg("a/b", ""))
	if got := matchTopics(t, c, "t2", "a/b", 10); got != "a/b" {
		t.Fatalf("clearing t1's a/b cleared t2's: %q", got)
	}
}

func TestMatchRules(t *testing.T) {
	c := newClient(t)
	for _, tp := range []string{"a", "a/b", "a/b/c", "a/c", "b/x", "$SYS/x", "$SYS/x/y", "/x"} {
		mustRetain(t, c, "t", msg(tp, "v"))
	}
	for filter, want := range map[string]string{
		"a/b":      "a/b",
		"a/+":      "a/b a/c",
		"+/x":      "/x b/x",
		"a/#":      "a a/b a/b/c a/c",
		"#":        "/x a a/b a/b/c a/c b/x",
		"+":        "a",
		"$SYS/#":   "$SYS/x $SYS/x/y",
		"$SYS/+":   "$SYS/x",
		"$SYS/x":   "$SYS/x",
		"+/+/c":    "a/b/c",
		"nomatch":  "",
		"a/b/c/#":  "a/b/c",
		"a/+/c/+":  "",
		"$SYS/x/#": "$SYS/x $SYS/x/y",
	} {
		if got := matchTopics(t, c, "t", filter, 100); got != want {
			t.Errorf("%q: got %q, want %q", filter, got, want)
		}
	}
}

func TestValidation(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	for _, tp := range []string{"", "a/+", "a/#", "#", "a\x00b"} {
		if err := c.Retain(ctx, "t", msg(tp, "v")); !errors.Is(err, ErrBadTopic) {
			t.Errorf("retain %q: %v", tp, err)
		}
	}
	if err := c.Retain(ctx, "t", nil); !errors.Is(err, ErrBadMessage) {
		t.Errorf("nil message: %v", err)
	}
	for _, f := range []string{"", "a/#/b", "a+", "$share/g/a", "$oshare/g/#", "a\x00"} {
		if _, err := c.Match(ctx, "t", f, 10); !errors.Is(err, ErrBadFilter) {
			t.Errorf("filter %q: %v", f, err)
		}
	}
	if _, err := c.Match(ctx, "t", "#", -1); !errors.Is(err, ErrBadLimit) {
		t.Errorf("limit -1: %v", err)
	}
	mustRetain(t, c, "t", msg("a", "v"))
	if ms, err := c.Match(ctx, "t", "#", 0); err != nil || len(ms) != 0 {
		t.Errorf("limit 0: %v %v", ms, err)
	}
	opts := Options{GCBudget: -1, MatchChunk: -2}
	err := opts.Validate()
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "GCBudget") || !strings.Contains(err.Error(), "MatchChunk") {
		t.Errorf("Validate: %v", err)
	}
	c.Close()
	c.Close()
	if err := c.Retain(ctx, "t", msg("a", "v")); !errors.Is(err, ErrClosed) {
		t.Errorf("retain after Close: %v", err)
	}
	if _, err := c.Match(ctx, "t", "#", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("match after Close: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	c := newClient(t)
	now := time.Now()
	c.now = func() time.Time { return now }
	exp := func(topic string, d time.Duration) *dist.Message {
		m := msg(topic, "v")
		m.Expires = now.Add(d)
		return m
	}
	mustRetain(t, c, "t", msg("a/never", "v"))
	mustRetain(t, c, "t", exp("a/1h", time.Hour))
	mustRetain(t, c, "t", exp("a/2h", 2*time.Hour))
	mustRetain(t, c, "u", exp("a/1h", time.Hour))
	// Already expired when applied: clears the topic.
	mustRetain(t, c, "t", exp("a/past", time.Hour))
	mustRetain(t, c, "t", exp("a/past", -time.Second))
	if got := matchTopics(t, c, "t", "a/+", 10); got != "a/1h a/2h a/never" {
		t.Fatalf("now: %q", got)
	}
	c.now = func() time.Time { return now.Add(90 * time.Minute) }
	if got := matchTopics(t, c, "t", "a/+", 10); got != "a/2h a/never" {
		t.Fatalf("in 90 minutes: %q", got)
	}
	// Expired messages do not take a place under the limit.
	if got := matchTopics(t, c, "t", "#", 1); got != "a/2h" {
		t.Fatalf("limit 1 in 90 minutes: %q", got)
	}
	// GC of tenant t in 90 minutes removes t's a/1h only.
	if n, err := c.GCTenant(testCtx(t), "t", now.Add(90*time.Minute)); err != nil || n != 1 {
		t.Fatalf("GCTenant: %d %v", n, err)
	}
	c.now = func() time.Time { return now }
	if got := matchTopics(t, c, "t", "a/+", 10); got != "a/2h a/never" {
		t.Fatalf("after GC of t: %q", got)
	}
	if got := matchTopics(t, c, "u", "a/+", 10); got != "a/1h" {
		t.Fatalf("GC of t touched u: %q", got)
	}
	// GC of everything in 3 hours; GC at the store's clock removes nothing.
	if n, err := c.GC(testCtx(t), time.Time{}); err != nil || n != 0 {
		t.Fatalf("GC now: %d %v", n, err)
	}
	if n, err := c.GC(testCtx(t), now.Add(3*time.Hour)); err != nil || n != 2 {
		t.Fatalf("GC in 3h: %d %v", n, err)
	}
	if got := matchTopics(t, c, "t", "#", 10) + "|" + matchTopics(t, c, "u", "#", 10); got != "a/never|" {
		t.Fatalf("after GC: %q", got)
	}
}

// TestGCAcrossRanges: GC with a budget of a few keys goes through every
// range, tenants split over several.
func TestGCAcrossRanges(t *testing.T) {
	c := openClient(t, openNode(t, t.TempDir(), freeAddr(t)), Options{GCInterval: -1, GCBudget: 3})
	now := time.Now()
	for i := 0; i < 40; i++ {
		m := msg(fmt.Sprintf("x/%02d", i), "v")
		if i%2 == 0 {
			m.Expires = now.Add(time.Hour)
		}
		mustRetain(t, c, fmt.Sprint("t", i%3), m)
	}
	for _, k := range [][]byte{topicKey("t1", "x/10"), tenantPrefix("t2"), topicKey("t2", "x/20")[:7]} {
		if _, err := c.Store().Split(testCtx(t), k); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.Store().Ranges()); n != 4 {
		t.Fatalf("%d ranges", n)
	}
	if n, err := c.GCTenant(testCtx(t), "t1", now.Add(2*time.Hour)); err != nil || n != 6 {
		t.Fatalf("GCTenant t1: %d %v", n, err) // t1: i = 1, 4, ..., 37; the even ones expire
	}
	if n, err := c.GC(testCtx(t), now.Add(2*time.Hour)); err != nil || n != 14 {
		t.Fatalf("GC: %d %v", n, err)
	}
	for _, tenant := range []string{"t0", "t1", "t2"} {
		ms, err := c.Match(testCtx(t), tenant, "x/+", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if !m.Expires.IsZero() {
				t.Fatalf("%s %s survived GC", tenant, m.Topic)
			}
		}
		if len(ms) == 0 {
			t.Fatalf("GC removed all of %s", tenant)
		}
	}
}

func TestBackgroundGC(t *testing.T) {
	c := openClient(t, openNode(t, t.TempDir(), freeAddr(t)), Options{GCInterval: 20 * time.Millisecond})
	m := msg("a", "v")
	m.Expires = time.Now().Add(300 * time.Millisecond)
	mustRetain(t, c, "t", m)
	mustRetain(t, c, "t", msg("b", "v"))
	deadline := time.Now().Add(10 * time.Second)
	for counterValue(t, c.metrics.gcRemoved) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("background GC removed nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := matchTopics(t, c, "t", "#", 10); got != "b" {
		t.Fatalf("after background GC: %q", got)
	}
	c.Close()
	c.Close()
}

// TestLimit: a matching filter with limit 10 over 100k topics returns
// exactly 10, the first ones in key order, whatever the chunk size.
func TestLimit(t *testing.T) {
	c := openClient(t, openNode(t, t.TempDir(), freeAddr(t)), Options{GCInterval: -1, MatchChunk: 3})
	n := 100_000
	if testing.Short() {
		n = 5_000
	}
	start := time.Now()
	fill(t, c, "t", n, benchTopic)
	t.Logf("%d retains in %v", n, time.Since(start))
	for _, f := range []string{"#", "s1/#", "+/+/m0", "s3/+/+", "+/d7/+"} {
		ms, err := c.Match(testCtx(t), "t", f, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 10 {
			t.Fatalf("%q limit 10: %d messages", f, len(ms))
		}
		for _, m := range ms {
			if !bruteMatch(f, m.Topic) {
				t.Fatalf("%q returned %q", f, m.Topic)
			}
		}
	}
	// The first ones in key order.
	var all [][]byte
	for i := 0; i < n; i++ {
		if tp := benchTopic(i); bruteMatch("s1/+/+", tp) {
			all = append(all, topicKey("t", tp))
		}
	}
	slices.SortFunc(all, bytes.Compare)
	var want []string
	for _, k := range all[:7] {
		_, tp, _ := decodeKey(k)
		want = append(want, tp)
	}
	if got := topics(must(c.Match(testCtx(t), "t", "s1/+/+", 7))); !slices.Equal(got, want) {
		t.Fatalf("s1/+/+ limit 7: %q, want %q", got, want)
	}
	if ms := must(c.Match(testCtx(t), "t", "nomatch/+/x", 10)); len(ms) != 0 {
		t.Fatalf("nomatch: %d", len(ms))
	}
}

// counterValue reads a counter of col, the one with the given label
// values.
func counterValue(t testing.TB, col prometheus.Collector, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRestart: retained messages survive closing the node and opening it
// again on the same directory.
func TestRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := openNode(t, dir, addr)
	c := openClient(t, n, Options{GCInterval: -1})
	for i := 0; i < 50; i++ {
		mustRetain(t, c, "t", msg(fmt.Sprintf("a/%d", i), fmt.Sprint(i)))
	}
	mustRetain(t, c, "t", msg("a/7", ""))
	if _, err := c.Store().Split(testCtx(t), topicKey("t", "a/3")); err != nil {
		t.Fatal(err)
	}
	before := matchTopics(t, c, "t", "a/+", 1000)
	c.Close()
	n.Close()

	n = openNode(t, dir, addr)
	c = openClient(t, n, Options{GCInterval: -1})
	ctx := testCtx(t)
	var got string
	for {
		ms, err := c.Match(ctx, "t", "a/+", 1000)
		if err == nil {
			got = strings.Join(topics(ms), " ")
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != before || strings.Count(got, " ") != 48 || strings.Contains(got, "a/7 ") {
		t.Fatalf("after restart:\n%q\nbefore:\n%q", got, before)
	}
	if n := len(c.Store().Ranges()); n != 2 {
		t.Fatalf("%d ranges after restart", n)
	}
}

// TestRandomized retains, replaces and clears random topics of two
// tenants (a few thousand), splits the store at random keys on the way
// (inside tenants too), and compares Match with random filters against a
// brute-force matcher over the model, with no limit and with a limit.
func TestRandomized(t *testing.T) {
	rnd := rand.New(rand.NewSource(seed(t)))
	c := openClient(t, openNode(t, t.TempDir(), freeAddr(t)), Options{GCInterval: -1, MatchChunk: 7})
	ctx := testCtx(t)
	tenants := []string{"t1", "t2"}
	model := map[string]map[string]string{"t1": {}, "t2": {}}
	var mu sync.Mutex
	check := func(step int) {
		for q := 0; q < 40; q++ {
			tenant, filter := tenants[rnd.Intn(2)], randomFilter(rnd)
			var want []string
			for tp := range model[tenant] {
				if bruteMatch(filter, tp) {
					want = append(want, tp)
				}
			}
			ms, err := c.Match(ctx, tenant, filter, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if string(m.Payload) != model[tenant][m.Topic] {
					t.Fatalf("step %d: %s %s payload %q, want %q", step, tenant, m.Topic, m.Payload, model[tenant][m.Topic])
				}
			}
			if got := sorted(topics(ms)); !slices.Equal(got, sorted(want)) {
				t.Fatalf("step %d, %s %q:\n got %q\nwant %q", step, tenant, filter, got, sorted(want))
			}
			if lim := 1 + rnd.Intn(10); len(want) > 0 {
				ms, err := c.Match(ctx, tenant, filter, lim)
				if err != nil {
					t.Fatal(err)
				}
				if len(ms) != min(lim, len(want)) {
					t.Fatalf("step %d, %s %q limit %d: %d of %d", step, tenant, filter, lim, len(ms), len(want))
				}
			}
		}
	}
	for step := 0; step < 10; step++ {
		// A batch of 600 concurrent changes from 20 goroutines, each
		// owning its (tenant, topic)s, then checks.
		groups := make([][][2]string, 20)
		for i := 0; i < 600; i++ {
			op := [2]string{tenants[rnd.Intn(2)], randomTopic(rnd)}
			h := fnv.New32a()
			h.Write([]byte(op[0] + "\x00" + op[1]))
			g := h.Sum32() % 20
			groups[g] = append(groups[g], op)
		}
		var wg sync.WaitGroup
		for w, ops := range groups {
			payload := fmt.Sprint(step, "-", w)
			clear := rnd.Intn(3) == 0
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, op := range ops {
					p := payload
					mu.Lock()
					_, held := model[op[0]][op[1]]
					mu.Unlock()
					if clear && held {
						p = ""
					}
					if err := c.Retain(ctx, op[0], msg(op[1], p)); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if p == "" {
						delete(model[op[0]], op[1])
					} else {
						model[op[0]][op[1]] = p
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		check(step)
		// Split at a random key inside a random tenant's span.
		k := append(tenantPrefix(tenants[rnd.Intn(2)]), []byte(randomTopic(rnd))...)
		if _, err := c.Store().Split(ctx, k); err != nil && !strings.Contains(err.Error(), "no split point") {
			t.Fatal(err)
		}
	}
	t.Logf("%d ranges, %d + %d topics", len(c.Store().Ranges()), len(model["t1"]), len(model["t2"]))
}
