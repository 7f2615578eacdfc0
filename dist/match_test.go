package dist

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"
)

var matchSeed = flag.Int64("match.seed", 0, "seed of TestMatchRandomized (0: from the clock)")

// sliceSeeker is a Scanner over sorted keys.
type sliceSeeker struct {
	keys [][]byte
}

func newSliceSeeker(routes []Route) *sliceSeeker {
	s := &sliceSeeker{}
	for _, r := range routes {
		s.keys = append(s.keys, RouteKey(r))
	}
	sort.Slice(s.keys, func(i, j int) bool { return bytes.Compare(s.keys[i], s.keys[j]) < 0 })
	return s
}

func (s *sliceSeeker) Scan(prefix []byte, fn func([]byte) bool) error {
	i := sort.Search(len(s.keys), func(i int) bool { return bytes.Compare(s.keys[i], prefix) >= 0 })
	for ; i < len(s.keys) && bytes.HasPrefix(s.keys[i], prefix); i++ {
		if !fn(s.keys[i]) {
			break
		}
	}
	return nil
}

// bruteMatch is the reference: MQTT 5 §4.7 matching of one filter.
func bruteMatch(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(t) || (fl != "+" && fl != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

func routeIDs(rs []Route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s|%s|%d|%s|%x", r.Tenant, r.Filter, r.Kind, r.Group, r.Receiver))
	}
	sort.Strings(out)
	return out
}

func TestRouteKeyRoundTrip(t *testing.T) {
	for _, r := range []Route{
		{Tenant: "t", Filter: "a/b", Kind: Normal, Receiver: []byte{1, 0, 2}},
		{Tenant: "t\x00x", Filter: "/a//#", Kind: Shared, Group: "g\x00", Receiver: nil},
		{Tenant: "", Filter: "+", Kind: OrderedShare, Group: "grp", Receiver: []byte("r")},
	} {
		got, err := DecodeRouteKey(RouteKey(r))
		if err != nil || routeIDs([]Route{got})[0] != routeIDs([]Route{r})[0] {
			t.Fatalf("round trip of %+v: %+v %v", r, got, err)
		}
	}
	if _, err := DecodeRouteKey([]byte{1, 2, 3}); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestParseFilter(t *testing.T) {
	for _, tc := range []struct {
		in            string
		kind          RouteKind
		group, filter string
	}{
		{"a/+/c", Normal, "", "a/+/c"},
		{"$share/g1/a/#", Shared, "g1", "a/#"},
		{"$oshare/g2/x", OrderedShare, "g2", "x"},
		{"$SYS/#", Normal, "", "$SYS/#"},
	} {
		k, g, f, err := ParseFilter(tc.in)
		if err != nil || k != tc.kind || g != tc.group || f != tc.filter {
			t.Errorf("%q: %v %q %q %v", tc.in, k, g, f, err)
		}
	}
	for _, bad := range []string{"", "a/#/b", "$share/g", "$share//a", "a+"} {
		if _, _, _, err := ParseFilter(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMatchRules(t *testing.T) {
	filters := []string{"#", "+", "+/+", "a", "a/#", "a/+", "a/b", "/a", "+/a", "$SYS/#", "$SYS/+", "a//b", "a/+/b"}
	var routes []Route
	for i, f := range filters {
		routes = append(routes, Route{Tenant: "t", Filter: f, Kind: Normal, Receiver: []byte{byte(i)}})
		routes = append(routes, Route{Tenant: "other", Filter: f, Kind: Normal, Receiver: []byte{byte(i)}})
	}
	s := newSliceSeeker(routes)
	for topic, want := range map[string][]string{
		"a":       {"#", "+", "a", "a/#"},
		"a/b":     {"#", "+/+", "a/#", "a/+", "a/b"},
		"/a":      {"#", "+/+", "/a", "+/a"},
		"$SYS/x":  {"$SYS/#", "$SYS/+"},
		"$SYS":    {"$SYS/#"},
		"a//b":    {"#", "a/#", "a//b", "a/+/b"},
		"b/c/d/e": {"#"},
	} {
		var got []string
		matched, err := Match(s, "t", topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range matched {
			if r.Tenant != "t" {
				t.Fatalf("route of tenant %q matched for tenant t", r.Tenant)
			}
			got = append(got, r.Filter)
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%q matched %v, want %v", topic, got, want)
		}
	}
}

// TestMatchRandomized compares Match with the brute-force matcher over
// 100k routes on 1k filters of one tenant, wildcards and $-topics
// included.
func TestMatchRandomized(t *testing.T) {
	seed := *matchSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	rnd := rand.New(rand.NewSource(seed))
	alphabet := []string{"a", "b", "c", "", "$s", "x1"}
	randLevels := func(n int, wild bool) []string {
		var ls []string
		for i := 0; i < n; i++ {
			switch p := rnd.Intn(10); {
			case wild && p == 0:
				ls = append(ls, "+")
			case wild && p == 1 && i == n-1:
				ls = append(ls, "#")
			default:
				ls = append(ls, alphabet[rnd.Intn(len(alphabet))])
			}
		}
		return ls
	}
	seen := map[string]bool{}
	var filters []string
	for len(filters) < 1000 {
		f := strings.Join(randLevels(1+rnd.Intn(4), true), "/")
		if !seen[f] {
			seen[f] = true
			filters = append(filters, f)
		}
	}
	var routes []Route
	for i := 0; i < 100000; i++ {
		f := filters[i%len(filters)]
		routes = append(routes, Route{Tenant: "tenant", Filter: f, Kind: RouteKind(1 + rnd.Intn(3)),
			Group: "g", Receiver: []byte(fmt.Sprint(i))})
	}
	s := newSliceSeeker(routes)
	for q := 0; q < 300; q++ {
		topic := strings.Join(randLevels(1+rnd.Intn(5), false), "/")
		var want []Route
		for _, r := range routes {
			if bruteMatch(r.Filter, topic) {
				want = append(want, r)
			}
		}
		got, err := Match(s, "tenant", topic)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := routeIDs(got), routeIDs(want); strings.Join(g, ",") != strings.Join(w, ",") {
			t.Fatalf("seed %d: topic %q: %d routes matched, brute force %d", seed, topic, len(got), len(want))
		}
	}
}
