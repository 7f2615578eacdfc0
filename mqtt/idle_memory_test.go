//go:build !race

package mqtt

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// TestIdleConnectionMemory: an idle connection's goroutine waits with a
// stack small enough for the runtime to shrink it to the 2 KiB minimum,
// and its heap stays small. (The race detector's larger frames break the
// first, so this test is built without it; scripts/test.sh runs it so.)
func TestIdleConnectionMemory(t *testing.T) {
	const n = 300
	s := startServer(t, Options{})
	measure := func() (heap, stack uint64) {
		runtime.GC()
		runtime.GC() // the second one shrinks what the first found idle
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, m.StackInuse
	}
	heap0, stack0 := measure()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", s.Addr(TCP).String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		cp, _ := packet.Encode(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: fmt.Sprint("idle-", i), KeepAlive: 600}, packet.V311)
		if _, err := nc.Write(cp); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := nc.Read(ack); err != nil || ack[0] != byte(packet.CONNACK)<<4 {
			t.Fatalf("connection %d: CONNACK % x, %v", i, ack, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // every reader parked
	heap1, stack1 := measure()
	perStack := float64(stack1-stack0) / n
	perHeap := float64(int64(heap1)-int64(heap0)) / n
	t.Logf("per idle connection: %.0f bytes of stack, %.0f of heap", perStack, perHeap)
	if perStack > 2304 {
		t.Errorf("%.0f bytes of stack per idle connection, want the 2 KiB minimum: the parked reader's frames grew past a quarter of 4 KiB (see packet.Reader.awaitFirst)", perStack)
	}
	if perHeap > 6<<10 {
		t.Errorf("%.0f bytes of heap per idle connection, want at most 6 KiB", perHeap)
	}
}
