package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/internal/rawconn"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

const (
	keepAlive      = 60               // seconds, in CONNECT
	connectTimeout = 10 * time.Second // dial to CONNACK, and SUBSCRIBE to SUBACK
	pubFlushAt     = 8 << 10          // a publisher flushes once this much is buffered
	ackFlushAt     = 4 << 10          // a reader writes its acks once this much is pending
	pubWriteBuffer = 64 << 10         // a publisher's minimum write buffer
)

// clientStats are the counters of one client. Each is written by one
// goroutine (the publisher or the reader) and read by the monitor, the
// progress printer and the summary. Padded to a cache line.
type clientStats struct {
	sent     atomic.Uint64
	received atomic.Uint64
	first    atomic.Int64 // Unix ns of the first message sent (pub) or received (sub); 0 none
	last     atomic.Int64 // Unix ns of the last one
	_        [32]byte
}

// A client is one MQTT connection of a run. Its reader goroutine (readLoop)
// owns rd and everything it reads; writes go through w under wmu, from the
// publisher loop, the reader (acknowledgements), the pinger (which only
// tries the lock) and the stop sequence. wmu is held across writes to the
// connection and nothing else; a write blocks only while the broker does not
// read, and the stop sequence bounds that with a write deadline. Only a QoS
// 2 publisher's reader writes while a publisher does (PUBREL), and the
// window bounds what it has to send.
type client struct {
	r     *runner
	v     packet.Version
	conn  net.Conn
	rx    *rawconn.Conn // with -rxtime: reports when the bytes read arrived
	rd    *packet.Reader
	st    *clientStats
	hist  *histogram
	topic []byte

	wmu sync.Mutex
	w   *bufio.Writer // guarded by wmu

	// QoS 1 and 2 publishing: window packet identifiers 1..window; free
	// holds those not in flight, sentAt[id] the send time (Unix ns) of the
	// message in flight under id, 0 when none.
	window int
	free   chan uint16
	sentAt []atomic.Int64

	suback    chan packet.ReasonCode // the SUBACK's first code; buffered 1
	done      chan struct{}          // closed when readLoop returns
	failOnce  sync.Once
	pingEvery time.Duration
	lastPing  atomic.Int64 // ns since r.start of the last PINGREQ (or of the connect)
}

// connect dials and completes CONNECT/CONNACK for client i, within
// connectTimeout and ctx. On failure it returns the kind to count the error
// under; the connection is closed.
func (r *runner) connect(ctx context.Context, i int) (*client, string, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := r.dialer.dial(ctx)
	if err != nil {
		return nil, kindConnect, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, kind, err := r.handshake(conn, i)
	if !stop() && err == nil { // ctx ended: conn is closed or closing
		kind, err = kindConnect, errors.New("connection closed")
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, kind, err
	}
	return c, "", nil
}

// handshake sends CONNECT on conn and reads the CONNACK.
func (r *runner) handshake(conn net.Conn, i int) (*client, string, error) {
	o := r.o
	cn := packet.Connect{CleanStart: o.clean, KeepAlive: keepAlive, ClientID: o.clientID(i)}
	if r.v == packet.V5 && !o.clean {
		cn.Properties.SessionExpiry = uint32(o.expiry)
	}
	b, err := packet.Encode(&cn, r.v)
	if err != nil {
		return nil, kindConfig, err
	}
	if _, err := conn.Write(b); err != nil {
		return nil, kindConnect, err
	}
	rd := packet.NewReader(conn, packet.MaxPacketSize)
	h, body, err := rd.ReadPacket()
	if err != nil {
		return nil, kindConnect, err
	}
	if h.Type != packet.CONNACK {
		return nil, kindProtocol, fmt.Errorf("%s before CONNACK", h.Type)
	}
	var ack packet.Connack
	if err := ack.Unpack(h.Flags, body, r.v); err != nil {
		return nil, kindProtocol, err
	}
	if ack.ReasonCode != packet.Success {
		return nil, fmt.Sprintf("%s (%s)", kindRefused, ack.ReasonCode), ack.ReasonCode
	}
	props := &ack.Properties
	if o.scenario == scenarioPub && r.v == packet.V5 && props.Has(packet.PropMaximumQoS) && o.qos > int(props.MaximumQoS) {
		return nil, fmt.Sprintf("%s (maximum QoS %d)", kindPubRefused, props.MaximumQoS),
			fmt.Errorf("the server's maximum QoS is %d, -q is %d", props.MaximumQoS, o.qos)
	}

	var rx *rawconn.Conn
	if o.rxTime {
		rc, ok := conn.(*rawconn.Conn)
		if !ok {
			return nil, kindConfig, errors.New("-rxtime: the connection is not plain TCP")
		}
		if err := rc.StampReads(); err != nil {
			return nil, kindConfig, err
		}
		rx = rc
	}
	c := &client{
		rx:        rx,
		r:         r,
		v:         r.v,
		conn:      conn,
		rd:        rd,
		st:        &r.stats[i],
		hist:      r.hists[i%len(r.hists)],
		topic:     []byte(o.clientTopic(i)),
		suback:    make(chan packet.ReasonCode, 1),
		done:      make(chan struct{}),
		pingEvery: keepAlive * time.Second / 2,
	}
	if r.v == packet.V5 && props.ServerKeepAlive > 0 {
		c.pingEvery = time.Duration(props.ServerKeepAlive) * time.Second / 2
	}
	c.lastPing.Store(int64(time.Since(r.start)))
	c.w = bufioWriter(conn, o)
	if o.scenario == scenarioPub && o.qos > 0 {
		c.window = o.inflight
		if r.v == packet.V5 && props.ReceiveMaximum > 0 {
			c.window = min(c.window, int(props.ReceiveMaximum))
		}
		c.free = make(chan uint16, c.window)
		for id := 1; id <= c.window; id++ {
			c.free <- uint16(id)
		}
		c.sentAt = make([]atomic.Int64, c.window+1)
	}
	if r.v == packet.V5 && props.MaximumPacketSize > 0 && o.scenario == scenarioPub {
		if n := publishSize(c); n > int(props.MaximumPacketSize) {
			return nil, fmt.Sprintf("%s (packet too large)", kindPubRefused),
				fmt.Errorf("a PUBLISH of -s %d is %d bytes, over the server's maximum packet size %d",
					o.size, n, props.MaximumPacketSize)
		}
	}
	return c, "", nil
}

// bufioWriter returns the write buffer of a client of o on conn.
func bufioWriter(conn net.Conn, o *options) *bufio.Writer {
	return bufio.NewWriterSize(conn, writeBufferSize(o))
}

// writeBufferSize is the size of a client's write buffer: large for a
// publisher (room for at least two messages), small for the others, which
// only write acknowledgements and pings.
func writeBufferSize(o *options) int {
	if o.scenario != scenarioPub {
		return ackFlushAt
	}
	return max(pubWriteBuffer, 2*(o.size+len(o.topic)+64))
}

// publishSize is the encoded size of one of c's PUBLISH packets.
func publishSize(c *client) int {
	p := packet.Publish{QoS: packet.QoS(c.r.o.qos), Topic: c.topic, Payload: make([]byte, c.r.o.size)}
	if p.QoS > 0 {
		p.PacketID = 1
	}
	b, err := p.Append(nil, c.v)
	if err != nil {
		return 0
	}
	return len(b)
}

// fail counts err under kind (unless the run is stopping) and closes the
// connection, once: later failures of the same client, which the first one
// usually causes, are not counted.
func (c *client) fail(kind string, err error) {
	c.failOnce.Do(func() {
		if !c.r.stopping.Load() {
			c.r.errs.add(kind, err)
		}
		c.conn.Close()
	})
}

// write writes b, and flushes when flush is set.
func (c *client) write(b []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.w.Write(b)
	if err == nil && flush {
		err = c.w.Flush()
	}
	return err
}

// flush writes out what is buffered.
func (c *client) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.Buffered() == 0 {
		return nil
	}
	return c.w.Flush()
}

var pingreq = []byte{byte(packet.PINGREQ) << 4, 0}

// maybePing sends a PINGREQ when the last one is pingEvery old at now (ns
// since the run's start). It does not wait for a writer: when another
// goroutine is writing the connection is busy anyway, and it tries again
// at the next call.
func (c *client) maybePing(now time.Duration) {
	if now-time.Duration(c.lastPing.Load()) < c.pingEvery || !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	c.lastPing.Store(int64(now))
	if _, err := c.w.Write(pingreq); err == nil {
		err = c.w.Flush()
		if err != nil {
			c.fail(kindLost, err)
		}
	}
}

// disconnect sends DISCONNECT (best effort, until deadline) and closes the
// connection. Used by the stop sequence only.
func (c *client) disconnect(deadline time.Time) {
	c.wmu.Lock()
	_ = c.conn.SetWriteDeadline(deadline)
	d := packet.Disconnect{ReasonCode: packet.NormalDisconnection}
	if b, err := d.Append(nil, c.v); err == nil {
		if _, err := c.w.Write(b); err == nil {
			_ = c.w.Flush()
		}
	}
	c.wmu.Unlock()
	c.conn.Close()
}

// subscribe sends the SUBSCRIBE of c and waits for its SUBACK. It returns
// false when the client failed (the error is counted) or the run stops.
func (c *client) subscribe() bool {
	s := packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: string(c.topic), QoS: packet.QoS(c.r.o.qos)},
	}}
	b, err := packet.Encode(&s, c.v)
	if err != nil {
		c.fail(kindConfig, err)
		return false
	}
	if err := c.write(b, true); err != nil {
		c.fail(kindLost, err)
		return false
	}
	t := time.NewTimer(connectTimeout)
	defer t.Stop()
	select {
	case code := <-c.suback:
		if code.IsError() {
			c.fail(fmt.Sprintf("%s (%s)", kindSubRefused, code), fmt.Errorf("filter %q: %w", c.topic, code))
			return false
		}
		return true
	case <-t.C:
		c.fail(kindTimeout, fmt.Errorf("no SUBACK within %v", connectTimeout))
	case <-c.done:
	case <-c.r.stopCh:
	}
	return false
}

// readLoop reads and handles every packet after the CONNACK until the
// connection ends. It acknowledges QoS 1 and 2 deliveries, completes the
// publisher's QoS 1 and 2 flows, and records latencies. Acknowledgements
// are batched and written when the read buffer is drained.
func (c *client) readLoop() {
	defer close(c.done)
	defer c.rd.Release()
	var (
		pub     packet.Publish
		puback  packet.Puback
		pubrec  packet.Pubrec
		pubrel  packet.Pubrel
		pubcomp packet.Pubcomp
		suback  packet.Suback
		disc    packet.Disconnect
		// The codec grows a short buffer to the exact size: keep room.
		acks = make([]byte, 0, 2*ackFlushAt)
	)
	protocol := func(err error) { c.fail(kindProtocol, err) }
	for {
		h, body, err := c.rd.ReadPacket()
		if err != nil {
			c.fail(kindLost, err)
			return
		}
		switch h.Type {
		case packet.PUBLISH:
			if err := pub.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			now := time.Now().UnixNano()
			at := now
			if c.rx != nil {
				if rt := c.rx.ReadStamp(); rt != 0 {
					at = rt // when the message reached the socket
				}
			}
			if len(pub.Payload) >= 8 {
				c.hist.record((at - int64(binary.BigEndian.Uint64(pub.Payload))) / 1e3)
			}
			c.st.received.Add(1)
			if c.st.first.Load() == 0 {
				c.st.first.Store(now)
			}
			c.st.last.Store(now)
			switch pub.QoS {
			case packet.AtLeastOnce:
				puback = packet.Puback{PacketID: pub.PacketID}
				acks, _ = puback.Append(acks, c.v)
			case packet.ExactlyOnce:
				pubrec = packet.Pubrec{PacketID: pub.PacketID}
				acks, _ = pubrec.Append(acks, c.v)
			}
		case packet.PUBACK:
			if err := puback.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			c.acked(puback.PacketID, puback.ReasonCode)
		case packet.PUBREC:
			if err := pubrec.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			if pubrec.ReasonCode.IsError() {
				c.acked(pubrec.PacketID, pubrec.ReasonCode) // the flow ends here
				break
			}
			pubrel = packet.Pubrel{PacketID: pubrec.PacketID}
			acks, _ = pubrel.Append(acks, c.v)
		case packet.PUBREL:
			if err := pubrel.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			pubcomp = packet.Pubcomp{PacketID: pubrel.PacketID}
			acks, _ = pubcomp.Append(acks, c.v)
		case packet.PUBCOMP:
			if err := pubcomp.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			c.acked(pubcomp.PacketID, pubcomp.ReasonCode)
		case packet.SUBACK:
			if err := suback.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			select {
			case c.suback <- suback.ReasonCodes[0]:
			default:
			}
		case packet.PINGRESP:
		case packet.DISCONNECT:
			if err := disc.Unpack(h.Flags, body, c.v); err != nil {
				protocol(err)
				return
			}
			c.fail(fmt.Sprintf("%s (%s)", kindServerDisc, disc.ReasonCode), disc.ReasonCode)
			return
		default:
			protocol(fmt.Errorf("unexpected %s", h.Type))
			return
		}
		if len(acks) > 0 && (c.rd.Buffered() == 0 || len(acks) >= ackFlushAt) {
			if err := c.write(acks, true); err != nil {
				c.fail(kindLost, err)
				return
			}
			acks = acks[:0]
		}
	}
}

// acked ends the QoS 1 or 2 flow of packet identifier id: it records the
// publish-to-acknowledgement latency and frees the identifier. An id not in
// flight (a duplicate or stray acknowledgement) is ignored.
func (c *client) acked(id uint16, code packet.ReasonCode) {
	if int(id) >= len(c.sentAt) || id == 0 {
		return
	}
	sent := c.sentAt[id].Swap(0)
	if sent == 0 {
		return
	}
	c.hist.record((time.Now().UnixNano() - sent) / 1e3)
	if code.IsError() && !c.r.stopping.Load() {
		c.r.errs.add(fmt.Sprintf("%s (%s)", kindPubRefused, code), fmt.Errorf("topic %q: %w", c.topic, code))
	}
	c.free <- id // cannot block: id was taken from free
}

// publish runs the publisher of c: -n messages (or until the run stops) at
// -r, each stamped with its send time and sequence number, within the QoS
// 1/2 window. After the last one it waits for the window to drain.
func (c *client) publish() {
	r, o := c.r, c.r.o
	p := packet.Publish{QoS: packet.QoS(o.qos), Topic: c.topic, Payload: make([]byte, o.size)}
	pktLen := publishSize(c)
	if pktLen == 0 {
		_, err := p.Append(nil, c.v)
		c.fail(kindConfig, err)
		return
	}
	start := time.Now()
	pc := newPacer(o.rate, 0)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// sleep waits d, flushing first; false when the run stops or the
	// connection ends.
	sleep := func(d time.Duration) bool {
		if err := c.flush(); err != nil {
			c.fail(kindLost, err)
			return false
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
			return true
		case <-r.stopCh:
		case <-c.done:
		}
		return false
	}
	for seq := uint64(0); o.messages == 0 || seq < o.messages; seq++ {
		if r.stopping.Load() {
			return
		}
		if pc != nil {
			for d := pc.wait(time.Since(start)); d > 0; d = pc.wait(time.Since(start)) {
				if !sleep(d) {
					return
				}
			}
		}
		if p.QoS > 0 {
			select {
			case p.PacketID = <-c.free:
			default:
				// The window is full: send what is buffered, then wait.
				if err := c.flush(); err != nil {
					c.fail(kindLost, err)
					return
				}
				select {
				case p.PacketID = <-c.free:
				case <-r.stopCh:
					return
				case <-c.done:
					return
				}
			}
		}
		now := time.Now().UnixNano()
		binary.BigEndian.PutUint64(p.Payload[0:8], uint64(now))
		binary.BigEndian.PutUint64(p.Payload[8:16], seq)
		if p.QoS > 0 {
			c.sentAt[p.PacketID].Store(now)
		}
		c.wmu.Lock()
		var err error
		if c.w.Available() < pktLen {
			err = c.w.Flush()
		}
		if err == nil {
			b, _ := p.Append(c.w.AvailableBuffer(), c.v) // cannot fail: publishSize encoded it
			_, err = c.w.Write(b)
		}
		if err == nil && c.w.Buffered() >= pubFlushAt {
			err = c.w.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			c.fail(kindLost, err)
			return
		}
		c.st.sent.Add(1)
		if seq == 0 {
			c.st.first.Store(now)
		}
		c.st.last.Store(now)
	}
	if err := c.flush(); err != nil {
		c.fail(kindLost, err)
		return
	}
	for range c.window {
		select {
		case <-c.free:
		case <-r.stopCh:
			return
		case <-c.done:
			return
		}
	}
}
