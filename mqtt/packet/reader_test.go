package packet

import (
	"io"
	"testing"
)

// chunks is a reader that returns its chunks one Read at a time.
type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}

// TestReaderComplete: Complete reports a whole packet buffered only when
// the next ReadPacket needs no read.
func TestReaderComplete(t *testing.T) {
	ping := []byte{0xc0, 0x00}
	pub := []byte{0x30, 0x05, 0x00, 0x01, 't', 'h', 'i'}
	// One read brings a PINGREQ, a PUBLISH and half of another PUBLISH.
	first := append(append(append([]byte{}, ping...), pub...), pub[:4]...)
	src := &chunks{first, pub[4:]}
	r := NewReader(src, MaxPacketSize)
	if r.Complete() {
		t.Fatal("complete before any read")
	}
	for i, want := range []struct {
		t        Type
		complete bool
	}{{PINGREQ, true}, {PUBLISH, false}, {PUBLISH, false}} {
		h, _, err := r.ReadPacket()
		if err != nil || h.Type != want.t {
			t.Fatalf("packet %d: %v, %v", i, h.Type, err)
		}
		if r.Complete() != want.complete {
			t.Fatalf("after packet %d (%v): Complete() = %v", i, h.Type, !want.complete)
		}
	}
}
