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
		s := newSliceSeeker(routes)
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
				rs, _ := Match(s, "t", topics[i%len(topics)])
				matched += len(rs)
			}
			b.ReportMetric(float64(matched)/float64(b.N), "routes/op")
		})
	}
}
