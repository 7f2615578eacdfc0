package bench

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// memConn is a net.Conn that reads from r and discards writes.
type memConn struct {
	r io.Reader
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// memClient returns a client of a runner for args over conn, as
// handshake would make it.
func memClient(tb testing.TB, conn net.Conn, args ...string) *client {
	tb.Helper()
	o, err := parseArgs(args)
	if err != nil {
		tb.Fatal(err)
	}
	r := newRunner(&o, nil, io.Discard, io.Discard)
	r.start = time.Now()
	c := &client{
		r: r, v: r.v, conn: conn, rd: packet.NewReader(conn, packet.MaxPacketSize),
		st: &r.stats[0], hist: r.hists[0], topic: []byte(o.clientTopic(0)),
		suback: make(chan packet.ReasonCode, 1), done: make(chan struct{}),
	}
	c.w = bufioWriter(conn, &o)
	return c
}

// BenchmarkPublish measures the publisher loop per QoS 0 message of 64
// bytes, writing to a connection that discards.
func BenchmarkPublish(b *testing.B) {
	c := memClient(b, &memConn{r: bytes.NewReader(nil)}, "pub", "-q", "0", "-s", "64", "-n", "0")
	c.r.o.messages = uint64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	c.publish()
	if got := c.st.sent.Load(); got != uint64(b.N) {
		b.Fatalf("sent %d of %d", got, b.N)
	}
}

// BenchmarkReceive measures the reader per QoS 0 and QoS 1 message of 64
// bytes: decode, latency, counters, and for QoS 1 the PUBACK.
func BenchmarkReceive(b *testing.B) {
	for _, qos := range []packet.QoS{0, 1} {
		b.Run("qos"+string('0'+byte(qos)), func(b *testing.B) {
			p := packet.Publish{QoS: qos, Topic: []byte("bench/0"), Payload: make([]byte, 64), PacketID: 1}
			one, _ := p.Append(nil, packet.V5)
			in := make([]byte, 0, b.N*len(one))
			for i := range b.N {
				if qos == 0 {
					p.PacketID = 0
				} else {
					p.PacketID = uint16(i%65535 + 1)
				}
				var err error
				if in, err = p.Append(in, packet.V5); err != nil {
					b.Fatal(err)
				}
			}
			c := memClient(b, &memConn{r: bytes.NewReader(in)}, "sub")
			c.r.stopping.Store(true) // EOF at the end is not an error
			b.ReportAllocs()
			b.ResetTimer()
			c.readLoop()
			if got := c.st.received.Load(); got != uint64(b.N) {
				b.Fatalf("received %d of %d", got, b.N)
			}
		})
	}
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	const msgs = 10_000
	// A few allocations per call (payload, buffers) are setup; one per
	// message would be thousands.
	const setup = 20

	c := memClient(t, &memConn{r: bytes.NewReader(nil)}, "pub", "-q", "0", "-n", "10000")
	n := mallocs(c.publish)
	t.Logf("publishing %d messages: %d allocations", msgs, n)
	if n > setup {
		t.Errorf("publishing %d messages: %v allocations", msgs, n)
	}

	for _, qos := range []packet.QoS{0, 1, 2} {
		p := packet.Publish{QoS: qos, Topic: []byte("bench/0"), Payload: make([]byte, 64)}
		in := make([]byte, 0, msgs*100) // the codec grows a short buffer to the exact size
		for i := range msgs {
			if qos > 0 {
				p.PacketID = uint16(i + 1)
			}
			in, _ = p.Append(in, packet.V5)
		}
		c := memClient(t, &memConn{r: bytes.NewReader(in)}, "sub")
		c.r.stopping.Store(true) // EOF at the end is not an error
		n := mallocs(c.readLoop)
		t.Logf("receiving %d QoS %d messages: %d allocations", msgs, qos, n)
		if n > setup {
			t.Errorf("receiving %d QoS %d messages: %v allocations", msgs, qos, n)
		}
		if got := c.st.received.Load(); got != msgs {
			t.Errorf("QoS %d: received %d of %d", qos, got, msgs)
		}
	}
}

// mallocs returns the number of heap allocations during f.
func mallocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
