//go:build !race

package mqtt

import (
	"testing"
	"time"
)

// TestIdleConnectionMemory: an idle connection's goroutine waits with a
// stack small enough for the runtime to shrink it to the 2 KiB minimum,
// and its heap stays small. (The race detector's larger frames break the
// first, so this test is built without it; scripts/test.sh runs it so.)
func TestIdleConnectionMemory(t *testing.T) {
	const n = 300
	s := startServer(t, Options{})
	heap0, stack0 := memInUse()
	dialIdle(t, s, n)
	time.Sleep(200 * time.Millisecond) // every reader parked
	heap1, stack1 := memInUse()
	perStack := float64(int64(stack1)-int64(stack0)) / n
	perHeap := float64(int64(heap1)-int64(heap0)) / n
	t.Logf("per idle connection: %.0f bytes of stack, %.0f of heap", perStack, perHeap)
	if perStack > 2304 {
		t.Errorf("%.0f bytes of stack per idle connection, want the 2 KiB minimum: the parked reader's frames grew past a quarter of 4 KiB (see packet.Reader.awaitFirst)", perStack)
	}
	if perHeap > 6<<10 {
		t.Errorf("%.0f bytes of heap per idle connection, want at most 6 KiB", perHeap)
	}
}
