package retain

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMatch matches filters against 100k retained topics of one
// tenant (s<0-9>/d<0-999>/m<0-9>) in a real one-node retain.store: filters
// that match nothing, and matching ones with limit 10. keys/op is what the
// walk read.
//
//	go test ./retain -run '^$' -bench Match -benchmem
//
// On the 2-core development machine (Intel Xeon, linux/amd64, Go 1.26;
// setup: 100k retains in 2.3 s):
//
//	nomatch/missing-level      nomatch/+/x      10 µs/op     0 keys/op
//	nomatch/plus-10-values     +/nomatch        87 µs/op    10 keys/op
//	nomatch/plus-1000-values   s1/+/nomatch    7.9 ms/op  1000 keys/op
//	limit10/plus               s1/+/m3         174 µs/op    29 keys/op
//	limit10/plus-plus          +/+/m3          174 µs/op    30 keys/op
//	limit10/hash               s1/#             21 µs/op    10 keys/op
//	limit10/all                #                28 µs/op    10 keys/op
//	exact                      s1/d7/m3         11 µs/op     1 keys/op
//
// A seek (one Iterate of basekv's Reader: a new pebble iterator) costs
// about 8 µs here; the 1000 distinct values under s1 take one each.
func BenchmarkMatch(b *testing.B) {
	c := newClient(b)
	start := time.Now()
	fill(b, c, "t", 100_000, benchTopic)
	b.Logf("100k retains in %v", time.Since(start))
	for _, bc := range []struct {
		name, filter string
		limit, want  int
	}{
		{"nomatch/missing-level", "nomatch/+/x", 10, 0},
		{"nomatch/plus-10-values", "+/nomatch", 10, 0},
		{"nomatch/plus-1000-values", "s1/+/nomatch", 10, 0},
		{"limit10/plus", "s1/+/m3", 10, 10},
		{"limit10/plus-plus", "+/+/m3", 10, 10},
		{"limit10/hash", "s1/#", 10, 10},
		{"limit10/all", "#", 10, 10},
		{"exact", "s1/d7/m3", 10, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			read := 0
			for i := 0; i < b.N; i++ {
				ms, n, err := c.match(ctx, "t", bc.filter, bc.limit, time.Now())
				if err != nil || len(ms) != bc.want {
					b.Fatalf("%q: %d messages, %v", bc.filter, len(ms), err)
				}
				read += n
			}
			b.ReportMetric(float64(read)/float64(b.N), "keys/op")
		})
	}
}

// BenchmarkRetain measures concurrent retains (new topics) on a one-node
// store: basekv group-commits them.
//
//	go test ./retain -run '^$' -bench Retain -benchmem
//
// About 47,000 retains/s on the development machine.
func BenchmarkRetain(b *testing.B) {
	c := newClient(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(25) // 50 writers on 2 cores
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := next.Add(1)
			if err := c.Retain(ctx, "t", msg(fmt.Sprintf("dev/%d/state", i), "v")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "retains/s")
}
