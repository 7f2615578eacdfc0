package mqtt

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// TestInlineWritesFullSocket: messages written by a publisher's reader
// (the inline path) to a subscriber that does not read fill its socket; a
// partial write leaves the rest to a sender goroutine, later messages wait
// in the session, the publisher and another subscriber go on, and once the
// slow subscriber reads it gets every message, whole and in order.
func TestInlineWritesFullSocket(t *testing.T) {
	s := startServer(t, Options{QoS0Queue: 10000})
	slow := dial(t, s)
	slow.connect(v5Connect("slow", packet.Properties{}))
	slow.subscribe(1, 0, packet.Subscription{Filter: "full/t", QoS: 0})
	fast := dial(t, s)
	fast.connect(v5Connect("fast", packet.Properties{}))
	fast.subscribe(1, 0, packet.Subscription{Filter: "fast/t", QoS: 1})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))

	const n, size = 4000, 4096 // 16 MB: more than the sockets hold
	payload := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, size)
		copy(b, fmt.Sprintf("%08d", i))
		return b
	}
	// One at a time, each acknowledged before the next: dist's lane stays
	// idle, so the publisher's reader delivers and writes them itself.
	for i := range n {
		id := uint16(i%60000 + 1)
		p.send(&packet.Publish{Topic: []byte("full/t"), QoS: 1, PacketID: id, Payload: payload(i)})
		if a, ok := p.read().(*packet.Puback); !ok || a.PacketID != id {
			t.Fatalf("publisher ack %d: %+v", i, a)
		}
	}
	// The slow subscriber has read nothing; the publisher's next message,
	// to someone else, still goes through at once.
	p.send(pub("fast/t", 1, 7, "hello"))
	if a, ok := p.read().(*packet.Puback); !ok || a.PacketID != 7 {
		t.Fatalf("publisher ack: %+v", a)
	}
	start := time.Now()
	if m := fast.readPublish(); string(m.Payload) != "hello" {
		t.Fatalf("fast subscriber got %q", m.Payload)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("fast subscriber waited %v", d)
	}
	for i := range n {
		m := slow.readPublish()
		if !bytes.Equal(m.Payload, payload(i)) {
			t.Fatalf("slow subscriber message %d: got %.8q…, want %08d", i, m.Payload, i)
		}
	}
	slow.expectSilence(100 * time.Millisecond)
}
