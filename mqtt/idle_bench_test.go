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
	const n = 2000
	s := startServer(b, Options{})
	var stacks uint64
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		stacks = m.StackInuse - stacks
		return m.HeapInuse + m.StackInuse
	}
	before := measure()
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", s.Addr(TCP).String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, nc)
		cp, _ := packet.Encode(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: fmt.Sprint("idle-", i), KeepAlive: 600}, packet.V311)
		nc.Write(cp)
		ack := make([]byte, 4)
		if _, err := nc.Read(ack); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	after := measure()
	if p := os.Getenv("IDLE_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	b.ReportMetric(float64(after-before)/n/1024, "KiB/conn")
	b.ReportMetric(float64(stacks)/n/1024, "stack-KiB/conn")
	for _, c := range conns {
		c.Close()
	}
}
