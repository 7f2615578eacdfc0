package mqtt

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// BenchmarkIdleConnections measures the memory an idle MQTT connection
// costs the server (heap and goroutine stacks; the clients' side is a
// bare socket each): 2,000 connected v3.1.1 clients, then nothing.
//
//	go test ./mqtt -run '^$' -bench IdleConnections -benchtime 1x
func BenchmarkIdleConnections(b *testing.B) {
	heap, stack := idleCost(b, 2000)
	if p := os.Getenv("IDLE_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	b.ReportMetric((heap+stack)/1024, "KiB/conn")
	b.ReportMetric(stack/1024, "stack-KiB/conn")
}

// idleCost starts a server, connects n idle clients that stay connected
// until the test ends, and returns the bytes of heap and of goroutine
// stack each costs the server.
func idleCost(tb testing.TB, n int) (heap, stack float64) {
	s := startServer(tb, Options{})
	heap0, stack0 := memInUse()
	dialIdle(tb, s, n)
	time.Sleep(300 * time.Millisecond) // every reader parked
	heap1, stack1 := memInUse()
	return float64(int64(heap1)-int64(heap0)) / float64(n), float64(int64(stack1)-int64(stack0)) / float64(n)
}

// memInUse collects twice (the second collection shrinks the stacks the
// first found idle) and returns the heap and the stacks in use.
func memInUse() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// dialIdle connects n v3.1.1 clients (bare sockets, a keep alive of ten
// minutes) and waits for each CONNACK; they close at the end of the test.
func dialIdle(tb testing.TB, s *Server, n int) {
	tb.Helper()
	conns := make([]net.Conn, 0, n)
	tb.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", s.Addr(TCP).String())
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, nc)
		cp, _ := packet.Encode(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: fmt.Sprint("idle-", i), KeepAlive: 600}, packet.V311)
		if _, err := nc.Write(cp); err != nil {
			tb.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := nc.Read(ack); err != nil || ack[0] != byte(packet.CONNACK)<<4 {
			tb.Fatalf("connection %d: CONNACK % x, %v", i, ack, err)
		}
	}
}
