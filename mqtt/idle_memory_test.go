//go:build !race

package mqtt

import "testing"

// TestIdleConnectionMemory: an idle connection's goroutine waits with a
// stack small enough for the runtime to shrink it to the 2 KiB minimum,
// and its heap stays small. (The race detector's larger frames break the
// first, so this test is built without it; scripts/test.sh runs it so.)
func TestIdleConnectionMemory(t *testing.T) {
	perHeap, perStack := idleCost(t, 300)
	t.Logf("per idle connection: %.0f bytes of stack, %.0f of heap", perStack, perHeap)
	if perStack > 2304 {
		t.Errorf("%.0f bytes of stack per idle connection, want the 2 KiB minimum: the parked reader's frames grew past a quarter of 4 KiB (see packet.Reader.awaitFirst)", perStack)
	}
	if perHeap > 6<<10 {
		t.Errorf("%.0f bytes of heap per idle connection, want at most 6 KiB", perHeap)
	}
}
