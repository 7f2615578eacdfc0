package retain

import (
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

var walkSeed = flag.Int64("walk.seed", 0, "seed of the randomized match tests (0: from the clock)")

func seed(t *testing.T) int64 {
	s := *walkSeed
	if s == 0 {
		s = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -walk.seed=%d)", s, s)
	return s
}

// TestMatchWalkRules runs the walk over a fixed set of topics: every
// matching rule, in key order.
func TestMatchWalkRules(t *testing.T) {
	r := newMemReader()
	all := []string{"a", "a/b", "a/b/c", "a/c", "a//c", "/a", "/", "b", "$SYS/x", "$SYS/x/y", "$x", "x/$y"}
	for _, tp := range all {
		r.retain("t", msg(tp, "v"))
	}
	r.retain("u", msg("a/b", "other tenant"))
	r.sort()
	now := time.Now()
	for _, c := range []struct {
		filter string
		want   string
	}{
		{"a/b", "a/b"},
		{"a/+", "a/b a/c"},
		{"a/+/c", "a//c a/b/c"},
		{"a/#", "a a//c a/b a/b/c a/c"},
		{"#", "/ /a a a//c a/b a/b/c a/c b x/$y"},
		{"+", "a b"},
		{"+/+", "/ /a a/b a/c x/$y"},
		{"+/#", "/ /a a a//c a/b a/b/c a/c b x/$y"},
		{"+/x", ""},
		{"$SYS/#", "$SYS/x $SYS/x/y"},
		{"$SYS/+", "$SYS/x"},
		{"$x", "$x"},
		{"x/+", "x/$y"},
		{"/+", "/ /a"},
		{"+/", "/"},
		{"nomatch/#", ""},
		{"a/b/c/d", ""},
	} {
		got := strings.Join(walkTopics(t, r, "t", c.filter, nil, 1000, now), " ")
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.filter, got, c.want)
		}
		// The key order of the walk is the order of the keys.
		var want []string
		for _, k := range r.keys {
			if tn, tp, _ := decodeKey(k); tn == "t" && bruteMatch(c.filter, tp) {
				want = append(want, tp)
			}
		}
		if g := walkTopics(t, r, "t", c.filter, nil, 1000, now); !slices.Equal(g, want) {
			t.Errorf("%q: got %q, brute force %q", c.filter, g, want)
		}
	}
	if got := walkTopics(t, r, "u", "#", nil, 10, now); !slices.Equal(got, []string{"a/b"}) {
		t.Errorf("tenant u: %q", got)
	}
	if got := walkTopics(t, r, "v", "#", nil, 10, now); len(got) != 0 {
		t.Errorf("tenant v: %q", got)
	}
}

func TestMatchWalkExpiry(t *testing.T) {
	r := newMemReader()
	now := time.Now()
	for i, exp := range []time.Duration{0, time.Hour, -time.Hour, time.Millisecond, 2 * time.Hour} {
		m := msg(fmt.Sprintf("a/%d", i), "v")
		if exp != 0 {
			m.Expires = now.Add(exp)
		}
		r.retain("t", m)
	}
	r.sort()
	if got := strings.Join(walkTopics(t, r, "t", "a/+", nil, 10, now), " "); got != "a/0 a/1 a/3 a/4" {
		t.Fatalf("at now: %q", got)
	}
	if got := strings.Join(walkTopics(t, r, "t", "a/#", nil, 10, now.Add(90*time.Minute)), " "); got != "a/0 a/4" {
		t.Fatalf("90 minutes later: %q", got)
	}
	// Expired messages do not count towards the limit.
	if got := strings.Join(walkTopics(t, r, "t", "#", nil, 2, now.Add(90*time.Minute)), " "); got != "a/0 a/4" {
		t.Fatalf("limit 2, 90 minutes later: %q", got)
	}
}

// randomTopic: 1 to 6 levels from a small alphabet, with some '$' first
// levels and empty levels.
func randomTopic(rnd *rand.Rand) string {
	levels := []string{"a", "b", "c", "", "ab"}
	n := 1 + rnd.Intn(6)
	ls := make([]string, n)
	for i := range ls {
		ls[i] = levels[rnd.Intn(len(levels))]
	}
	if rnd.Intn(8) == 0 {
		ls[0] = []string{"$SYS", "$a"}[rnd.Intn(2)]
	}
	if n == 1 && ls[0] == "" {
		ls[0] = "/" // a topic name is not empty: "/" has two empty levels
	}
	return strings.Join(ls, "/")
}

// randomFilter: 1 to 6 levels, with '+' anywhere, '#' last, and '$'
// first levels.
func randomFilter(rnd *rand.Rand) string {
	levels := []string{"a", "b", "", "+", "+", "ab", "nomatch"}
	n := 1 + rnd.Intn(6)
	ls := make([]string, n)
	for i := range ls {
		ls[i] = levels[rnd.Intn(len(levels))]
	}
	switch rnd.Intn(6) {
	case 0:
		ls[n-1] = "#"
	case 1:
		ls[0] = "$SYS"
	}
	if n == 1 && ls[0] == "" {
		ls[0] = "/"
	}
	return strings.Join(ls, "/")
}

// TestMatchWalkRandomized compares the walk with brute force over a few
// thousand random topics, from random start keys and with random limits:
// the result is the brute-force matches at or after from, in key order,
// cut at the limit.
func TestMatchWalkRandomized(t *testing.T) {
	rnd := rand.New(rand.NewSource(seed(t)))
	r := newMemReader()
	for i := 0; i < 3000; i++ {
		r.retain([]string{"t1", "t2"}[rnd.Intn(2)], msg(randomTopic(rnd), "v"))
	}
	r.sort()
	type entry struct{ key, tenant, topic string }
	var entries []entry
	for _, k := range r.keys {
		tn, tp, _ := decodeKey(k)
		entries = append(entries, entry{string(k), tn, tp})
	}
	now := time.Now()
	for q := 0; q < 2000; q++ {
		tenant, filter := []string{"t1", "t2"}[rnd.Intn(2)], randomFilter(rnd)
		var from []byte
		if rnd.Intn(3) == 0 {
			from = r.keys[rnd.Intn(len(r.keys))]
			if rnd.Intn(2) == 0 {
				from = from[:rnd.Intn(len(from)+1)] // not a key
			}
		}
		limit := 1 << 20
		if rnd.Intn(3) == 0 {
			limit = 1 + rnd.Intn(20)
		}
		var want []string
		for _, e := range entries {
			if e.tenant == tenant && (from == nil || e.key >= string(from)) && bruteMatch(filter, e.topic) {
				if want = append(want, e.topic); len(want) == limit {
					break
				}
			}
		}
		if got := walkTopics(t, r, tenant, filter, from, limit, now); !slices.Equal(got, want) {
			t.Fatalf("%s %q from %q limit %d:\n got %q\nwant %q", tenant, filter, from, limit, got, want)
		}
	}
}

// TestMatchWalkReadsIndex proves the walk goes through the level
// structure: with 100k retained topics of one tenant, filters that match
// nothing read (and seek) a few keys, not the tenant's 100k, and a
// matching filter with limit 10 returns exactly 10 after reading about as
// many.
func TestMatchWalkReadsIndex(t *testing.T) {
	r := newMemReader()
	for i := 0; i < 100_000; i++ {
		r.retain("t", msg(benchTopic(i), "v"))
	}
	r.retain("other", msg("nomatch/y/x", "v"))
	r.sort()
	now := time.Now()
	for _, c := range []struct {
		filter   string
		limit    int
		want     int
		maxReads int
	}{
		{"nomatch/+/x", 10, 0, 0},     // missing exact level: nothing read
		{"+/nomatch", 10, 0, 20},      // 10 distinct first levels: one key each
		{"+/nomatch/#", 10, 0, 20},    // the same with a subtree
		{"s1/+/nomatch", 10, 0, 1100}, // 1000 distinct second levels under s1
		{"s1/+/m3", 10, 10, 30},       // matches, limit 10
		{"s1/#", 10, 10, 10},
		{"+/+/m3", 10, 10, 31},
		{"#", 10, 10, 10},
		{"s1/d7/+", 1000, 10, 10}, // all of s1/d7/*
	} {
		r.iterates, r.read = 0, 0
		got := walkTopics(t, r, "t", c.filter, nil, c.limit, now)
		if len(got) != c.want {
			t.Errorf("%q limit %d: %d matches, want %d", c.filter, c.limit, len(got), c.want)
		}
		for _, tp := range got {
			if !bruteMatch(c.filter, tp) {
				t.Errorf("%q matched %q", c.filter, tp)
			}
		}
		t.Logf("%-14q limit %4d: %2d matches, %4d keys read, %4d seeks", c.filter, c.limit, len(got), r.read, r.iterates)
		if r.read > c.maxReads || r.iterates > 2*c.maxReads+4 {
			t.Errorf("%q: read %d keys in %d seeks, want at most %d keys (of 100k)", c.filter, r.read, r.iterates, c.maxReads)
		}
	}
}

// benchTopic is the i-th of 100k distinct topics s<0-9>/d<0-999>/m<0-9>.
func benchTopic(i int) string {
	return fmt.Sprintf("s%d/d%d/m%d", i%10, (i/10)%1000, i/10000)
}

// TestMatchWalkOneSeekPerValue: a '+' followed by exact levels seeks once
// per distinct value when the candidate is the last key of its subtree:
// the key after it names the next value.
func TestMatchWalkOneSeekPerValue(t *testing.T) {
	r := newMemReader()
	for i := 0; i < 1000; i++ {
		r.retain("t", msg(fmt.Sprintf("dev/%d/state", i), "v"))
		if i%2 == 0 {
			r.retain("t", msg(fmt.Sprintf("dev/%d/config", i), "v"))
		}
	}
	r.sort()
	got := walkTopics(t, r, "t", "dev/+/state", nil, 1<<20, time.Now())
	if len(got) != 1000 {
		t.Fatalf("%d matches", len(got))
	}
	t.Logf("dev/+/state: 1000 matches, %d keys read, %d seeks", r.read, r.iterates)
	if r.iterates > 1002 || r.read > 2001 {
		t.Fatalf("%d keys read in %d seeks", r.read, r.iterates)
	}
}
