package dist

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// BenchmarkMatch measures Match over an in-memory sorted key set (the
// algorithm alone; the dist.worker store adds pebble's seeks) with 10k,
// 100k and 1M routes: device-style filters with wildcards, topics of 1 to
// 8 levels.
//
//	go test ./dist -run '^$' -bench Match -benchmem
func BenchmarkMatch(b *testing.B) {
	benchMatch(b, func(routes []Route) func(topic string) int {
		s := newSliceSeeker(routes)
		return func(topic string) int {
			rs, _ := Match(s, "t", topic)
			return len(rs)
		}
	})
}

// BenchmarkMatchCache measures the per-tenant match cache (the trie the
// dist.worker coprocessor answers from once a tenant is loaded) over the
// same routes and topics: the hot path of every publish.
//
//	go test ./dist -run '^$' -bench MatchCache -benchmem
func BenchmarkMatchCache(b *testing.B) {
	benchMatch(b, func(routes []Route) func(topic string) int {
		c := &matchCache{tenants: map[string]*trieNode{"t": newTrieNode()}}
		for _, r := range routes {
			c.apply(true, RouteKey(r), r)
		}
		return func(topic string) int {
			rs, _ := c.lookup("t", topic)
			return len(rs)
		}
	})
}

func benchMatch(b *testing.B, build func([]Route) func(topic string) int) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		rnd := rand.New(rand.NewSource(1))
		var routes []Route
		for i := 0; i < n; i++ {
			depth := 1 + rnd.Intn(8)
			levels := make([]string, depth)
			for d := range levels {
				switch p := rnd.Intn(20); {
				case p == 0:
					levels[d] = "+"
				case p == 1 && d == depth-1:
					levels[d] = "#"
				default:
					levels[d] = fmt.Sprintf("l%d", rnd.Intn(50))
				}
			}
			routes = append(routes, Route{Tenant: "t", Filter: strings.Join(levels, "/"), Kind: Normal,
				Receiver: []byte(fmt.Sprint(i))})
		}
		match := build(routes)
		topics := make([]string, 256)
		for i := range topics {
			levels := make([]string, 1+rnd.Intn(8))
			for d := range levels {
				levels[d] = fmt.Sprintf("l%d", rnd.Intn(50))
			}
			topics[i] = strings.Join(levels, "/")
		}
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			matched := 0
			for i := 0; i < b.N; i++ {
				matched += match(topics[i%len(topics)])
			}
			b.ReportMetric(float64(matched)/float64(b.N), "routes/op")
		})
	}
}
