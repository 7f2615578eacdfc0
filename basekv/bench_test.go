package basekv

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPut measures Put throughput and latency with 64 concurrent
// writers and 100-byte values, on one node and on three nodes with three
// voters:
//
//	go test ./basekv -run '^$' -bench Put -benchtime 20000x
//
// Targets on the 2-core development machine: 40,000 ops/s on one node,
// 20,000 on three.
func BenchmarkPut(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			dir := NewDirectory()
			var kvs []*KV
			for i := 0; i < nodes; i++ {
				n := openNode(b, testOptions(b, b.TempDir(), dir))
				kv, err := n.KV("bench", ReplicaOptions{Voters: nodes})
				if err != nil {
					b.Fatal(err)
				}
				kvs = append(kvs, kv)
			}
			waitReady(b, kvs[0], nodes)
			value := make([]byte, 100)
			const writers = 64
			var next atomic.Int64
			lat := make([][]time.Duration, writers)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					kv := kvs[w%nodes]
					c := ctx(b)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						t0 := time.Now()
						if err := kv.Put(c, key(int(i)), value); err != nil {
							b.Error(err)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// waitReady waits until the store's first range has its voters and every
// voter knows the range.
func waitReady(tb testing.TB, kv *KV, voters int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rs := kv.Store().routes().routes
		if len(rs) > 0 && len(rs[0].holders) >= voters {
			v, _, err := kv.Store().Members(ctx(tb), rs[0].desc.ID)
			if err == nil && len(v) == voters {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatal("store not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
