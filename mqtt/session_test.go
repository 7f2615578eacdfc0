package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

// Raw-byte tests of the session flows whose timing a client library
// hides: windows, duplicates, acknowledgement order, aliases on the wire.

func v5Connect(id string, props packet.Properties) *packet.Connect {
	return &packet.Connect{Version: packet.V5, CleanStart: true, ClientID: id, Properties: props}
}

func (c *client) subscribe(id uint16, subID uint32, subs ...packet.Subscription) *packet.Suback {
	c.t.Helper()
	p := &packet.Subscribe{PacketID: id, Subscriptions: subs}
	if subID != 0 {
		p.Properties.SubscriptionIDs = []uint32{subID}
	}
	c.send(p)
	ack, ok := c.read().(*packet.Suback)
	if !ok {
		c.t.Fatal("no SUBACK")
	}
	return ack
}

func (c *client) readPublish() *packet.Publish {
	c.t.Helper()
	p, ok := c.read().(*packet.Publish)
	if !ok {
		c.t.Fatalf("expected PUBLISH, got %T", p)
	}
	return p
}

// expectSilence checks that nothing arrives for d.
func (c *client) expectSilence(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	h, body, err := c.rd.ReadPacket()
	if err == nil {
		c.t.Fatalf("expected nothing, got %s (% x)", h.Type, body)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("expected nothing, got %v", err)
	}
}

func pub(topic string, qos packet.QoS, id uint16, payload string) *packet.Publish {
	return &packet.Publish{Topic: []byte(topic), QoS: qos, PacketID: id, Payload: []byte(payload)}
}

// TestOutboundWindowV3: a v3 subscriber gets at most MaxInflight
// unacknowledged QoS 1 messages; each PUBACK lets the next one go, in
// order, with fresh packet ids.
func TestOutboundWindowV3(t *testing.T) {
	s := startServer(t, Options{MaxInflight: 2})
	sub := dial(t, s)
	sub.connect(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: "sub"})
	if ack := sub.subscribe(1, 0, packet.Subscription{Filter: "w/#", QoS: 1}); ack.ReasonCodes[0] != 1 {
		t.Fatalf("SUBACK %v", ack.ReasonCodes)
	}
	p := dial(t, s)
	p.connect(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: "pub"})
	for i := 1; i <= 5; i++ {
		p.send(pub("w/x", 1, uint16(i), fmt.Sprint(i)))
		if a, ok := p.read().(*packet.Puback); !ok || a.PacketID != uint16(i) {
			t.Fatalf("publisher's ack %d: %+v", i, a)
		}
	}
	var ids []uint16
	for i := 1; i <= 2; i++ {
		m := sub.readPublish()
		if string(m.Payload) != fmt.Sprint(i) || m.QoS != 1 || m.Dup || m.Retain {
			t.Fatalf("message %d: %+v", i, m)
		}
		ids = append(ids, m.PacketID)
	}
	sub.expectSilence(200 * time.Millisecond) // the window is full
	for i := 3; i <= 5; i++ {
		sub.send(&packet.Puback{PacketID: ids[0]})
		ids = ids[1:]
		m := sub.readPublish()
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("after an ack got %q, want %d", m.Payload, i)
		}
		for _, id := range ids {
			if id == m.PacketID {
				t.Fatalf("packet id %d reused while in flight", id)
			}
		}
		ids = append(ids, m.PacketID)
	}
}

// TestOutboundWindowV5: a v5 subscriber's window is its Receive Maximum.
func TestOutboundWindowV5(t *testing.T) {
	s := startServer(t, Options{})
	sub := dial(t, s)
	sub.connect(v5Connect("sub", packet.Properties{ReceiveMaximum: 1}))
	sub.subscribe(1, 0, packet.Subscription{Filter: "w", QoS: 2})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	p.send(pub("w", 2, 1, "a"))
	p.send(pub("w", 2, 2, "b"))
	for i := 0; i < 2; i++ {
		if r, ok := p.read().(*packet.Pubrec); !ok || r.ReasonCode != packet.Success {
			t.Fatalf("publisher got %+v", r)
		}
	}
	m := sub.readPublish()
	if string(m.Payload) != "a" || m.QoS != 2 {
		t.Fatalf("first: %+v", m)
	}
	sub.expectSilence(200 * time.Millisecond)
	// PUBREC opens nothing: the QoS 2 flow is in flight until PUBCOMP.
	sub.send(&packet.Pubrec{PacketID: m.PacketID})
	if r, ok := sub.read().(*packet.Pubrel); !ok || r.PacketID != m.PacketID {
		t.Fatalf("expected PUBREL %d, got %+v", m.PacketID, r)
	}
	sub.expectSilence(200 * time.Millisecond)
	sub.send(&packet.Pubcomp{PacketID: m.PacketID})
	if m := sub.readPublish(); string(m.Payload) != "b" {
		t.Fatalf("second: %+v", m)
	}
}

// TestInboundQoS2DistributedOnce: a QoS 2 PUBLISH is distributed on its
// first arrival; a resent PUBLISH with the same id before PUBREL is
// acknowledged again but not distributed; after PUBCOMP the id is free.
func TestInboundQoS2DistributedOnce(t *testing.T) {
	s := startServer(t, Options{})
	sub := dial(t, s)
	sub.connect(v5Connect("sub", packet.Properties{}))
	sub.subscribe(1, 0, packet.Subscription{Filter: "q2", QoS: 0})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	p.send(pub("q2", 2, 7, "once"))
	p.expectHex("50 02 00 07") // PUBREC 7, success (a subscriber matched): the short form
	dup := pub("q2", 2, 7, "once")
	dup.Dup = true
	p.send(dup)
	p.expectHex("50 02 00 07")
	if m := sub.readPublish(); string(m.Payload) != "once" || m.QoS != 0 {
		t.Fatalf("subscriber got %+v", m)
	}
	sub.expectSilence(200 * time.Millisecond)
	p.send(&packet.Pubrel{PacketID: 7})
	p.expectHex("70 02 00 07") // PUBCOMP
	p.send(pub("q2", 2, 7, "again"))
	p.expectHex("50 02 00 07")
	if m := sub.readPublish(); string(m.Payload) != "again" {
		t.Fatalf("after PUBCOMP the id was not free: %+v", m)
	}
}

// TestInboundReceiveMaximum: a v5 client with more QoS 2 messages awaiting
// PUBREL than the server's Receive Maximum is disconnected with 0x93.
func TestInboundReceiveMaximum(t *testing.T) {
	s := startServer(t, Options{Settings: tenantSettings(t, func(st *settings.Settings) { st.ReceivingMaximum = 2 })})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	for i := uint16(1); i <= 2; i++ {
		p.send(pub("rm", 2, i, "x"))
		p.read() // PUBREC
	}
	p.send(pub("rm", 2, 3, "x"))
	d, ok := p.read().(*packet.Disconnect)
	if !ok || d.ReasonCode != packet.ReceiveMaximumExceeded {
		t.Fatalf("expected DISCONNECT 0x93, got %+v", d)
	}
	p.expectClosed()
}

// TestOutboundTopicAliases: with the client's Topic Alias Maximum 2 the
// server sends a topic once with an alias, then the alias alone; a third
// topic reuses alias 1, announcing it again with its topic.
func TestOutboundTopicAliases(t *testing.T) {
	s := startServer(t, Options{})
	sub := dial(t, s)
	sub.connect(v5Connect("sub", packet.Properties{TopicAliasMaximum: 2}))
	sub.subscribe(1, 0, packet.Subscription{Filter: "al/#"})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	for _, topic := range []string{"al/a", "al/a", "al/b", "al/b", "al/c", "al/a"} {
		p.send(pub(topic, 0, 0, "m"))
	}
	// PUBLISH QoS 0: topic (or empty), properties [0x23 alias], payload.
	sub.expectHex("30 0b 00 04 61 6c 2f 61 03 23 00 01 6d") // al/a, alias 1
	sub.expectHex("30 07 00 00 03 23 00 01 6d")             // alias 1 alone
	sub.expectHex("30 0b 00 04 61 6c 2f 62 03 23 00 02 6d") // al/b, alias 2
	sub.expectHex("30 07 00 00 03 23 00 02 6d")
	sub.expectHex("30 0b 00 04 61 6c 2f 63 03 23 00 01 6d") // al/c takes alias 1 over
	sub.expectHex("30 0b 00 04 61 6c 2f 61 03 23 00 02 6d") // al/a again, with alias 2
}

// TestMessageExpiryDropsBeforeSending: a message that expires while it
// waits in the session's queue is dropped, not sent; the rest go on.
func TestMessageExpiryDropsBeforeSending(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Registerer: reg})
	sub := dial(t, s)
	sub.connect(v5Connect("sub", packet.Properties{ReceiveMaximum: 1}))
	sub.subscribe(1, 0, packet.Subscription{Filter: "ex", QoS: 1})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	p.send(pub("ex", 1, 1, "first"))
	short := pub("ex", 1, 2, "expires")
	short.Properties.MessageExpiry = 1
	p.send(short)
	p.send(pub("ex", 1, 3, "last"))
	first := sub.readPublish()
	time.Sleep(1100 * time.Millisecond) // "expires" waits behind "first" past its expiry
	sub.send(&packet.Puback{PacketID: first.PacketID})
	if m := sub.readPublish(); string(m.Payload) != "last" {
		t.Fatalf("after the expired message got %q", m.Payload)
	}
	if got := gathered(t, reg, `bifromq_mqtt_messages_dropped_total{reason="expired"}`); got != 1 {
		t.Fatalf("expired drops %v, want 1", got)
	}
}

// TestQueueBudget: messages waiting in sessions' queues are bounded by the
// server's byte budget; over it they are dropped and counted.
func TestQueueBudget(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Registerer: reg, QueueBudget: 8 << 10})
	sub := dial(t, s)
	sub.connect(v5Connect("sub", packet.Properties{ReceiveMaximum: 1}))
	sub.subscribe(1, 0, packet.Subscription{Filter: "b", QoS: 1})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	payload := string(bytes.Repeat([]byte("x"), 1000))
	for i := uint16(1); i <= 20; i++ {
		p.send(pub("b", 1, i, payload))
		p.read()
	}
	dropped := gathered(t, reg, `bifromq_mqtt_messages_dropped_total{reason="queue_budget"}`)
	if dropped < 10 || dropped > 13 {
		t.Fatalf("budget drops %v, want about 12 of 20 (8 KiB over ~1.1 KB messages, one in flight)", dropped)
	}
	if q := gathered(t, reg, "bifromq_mqtt_queued_bytes"); q <= 0 || q > 8<<10 {
		t.Fatalf("queued bytes %v", q)
	}
	// Draining the session returns the budget.
	got := 0
	for {
		m := sub.readPublish()
		got++
		sub.send(&packet.Puback{PacketID: m.PacketID})
		if got == 20-int(dropped) {
			break
		}
	}
	waitFor(t, func() bool { v, _ := lookup(t, reg, "bifromq_mqtt_queued_bytes"); return v == 0 })
}

// TestSessionQueueBounds: QoS 1 messages beyond the window wait up to
// SessionQueue, QoS 0 up to QoS0Queue; the rest are dropped and counted,
// and the publisher is acknowledged all the same.
func TestSessionQueueBounds(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{Registerer: reg, SessionQueue: 3, QoS0Queue: 2})
	sub := dial(t, s)
	sub.connect(v5Connect("sub", packet.Properties{ReceiveMaximum: 1}))
	sub.subscribe(1, 0, packet.Subscription{Filter: "sq", QoS: 1})
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	for i := uint16(1); i <= 10; i++ {
		p.send(pub("sq", 1, i, fmt.Sprint(i)))
		if a, ok := p.read().(*packet.Puback); !ok || a.ReasonCode != packet.Success {
			t.Fatalf("publisher ack %d: %+v", i, a)
		}
	}
	// 1 in flight + 3 queued; 6 dropped.
	if got := gathered(t, reg, `bifromq_mqtt_messages_dropped_total{reason="session_queue_full"}`); got != 6 {
		t.Fatalf("session queue drops %v, want 6", got)
	}
	for i := 1; i <= 4; i++ {
		m := sub.readPublish()
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", m.Payload, i)
		}
		sub.send(&packet.Puback{PacketID: m.PacketID})
	}
}

// TestPublishAckOrder: acknowledgements of QoS 1 and 2 messages are sent
// in the order of their PUBLISHes, after dist has taken each.
func TestPublishAckOrder(t *testing.T) {
	s := startServer(t, Options{})
	p := dial(t, s)
	p.connect(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: "pub"})
	var burst []byte
	for i := uint16(1); i <= 100; i++ {
		b, _ := packet.Encode(pub(fmt.Sprint("o/", i%7), packet.QoS(1+i%2), i, "x"), packet.V311)
		burst = append(burst, b...)
	}
	p.sendRaw(burst)
	for i := uint16(1); i <= 100; i++ {
		switch a := p.read().(type) {
		case *packet.Puback:
			if a.PacketID != i || i%2 != 0 {
				t.Fatalf("ack %d: PUBACK %d", i, a.PacketID)
			}
		case *packet.Pubrec:
			if a.PacketID != i || i%2 != 1 {
				t.Fatalf("ack %d: PUBREC %d", i, a.PacketID)
			}
		default:
			t.Fatalf("ack %d: %T", i, a)
		}
	}
}
