package basekv

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIdleRanges measures what idle ranges cost: one node holding 64
// ranges of one store, no traffic, for 10 s. It reports the process's CPU
// use in percent of one core and the memory (Go heap and RSS growth) per
// range:
//
//	go test ./basekv -run '^$' -bench IdleRanges -benchtime 1x
//
// Targets: under 5% of a core, under 1 MB per idle range.
func BenchmarkIdleRanges(b *testing.B) {
	const ranges = 64
	for i := 0; i < b.N; i++ {
		n := openNode(b, testOptions(b, b.TempDir(), nil))
		kv, err := n.KV("idle", ReplicaOptions{})
		if err != nil {
			b.Fatal(err)
		}
		waitReady(b, kv, 1)
		heap0, rss0 := memNow()
		for r := 1; r < ranges; r++ {
			if _, err := kv.Store().Split(ctx(b), []byte(fmt.Sprintf("r%03d", r))); err != nil {
				b.Fatal(err)
			}
		}
		for len(kv.Store().Ranges()) != ranges {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // let elections and the split's snapshots settle
		heap1, rss1 := memNow()
		cpu0, t0 := cpuNow(), time.Now()
		time.Sleep(10 * time.Second)
		cpu := (cpuNow() - cpu0).Seconds() / time.Since(t0).Seconds() * 100
		b.ReportMetric(cpu, "cpu%")
		b.ReportMetric(float64(heap1-heap0)/ranges/1024, "heap-KiB/range")
		b.ReportMetric(float64(rss1-rss0)/ranges/1024, "rss-KiB/range")
	}
}

func memNow() (heap, rss int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	if len(f) > 1 {
		pages, _ := strconv.ParseInt(f[1], 10, 64)
		rss = pages * int64(os.Getpagesize())
	}
	return int64(ms.HeapInuse), rss
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
