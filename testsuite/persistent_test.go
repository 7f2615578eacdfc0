package testsuite

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/standalone"
)

// Tests of persistent sessions: sessions kept in the inbox store across
// disconnects, restarts and takeovers, with their subscriptions, queued
// messages and QoS 1/2 state.

const clientDisconnects = `bifromq_mqtt_disconnects_total{reason="client_disconnect"}`

// persistent makes a v5 CONNECT resume a session (clean start 0) with
// session expiry expiry.
func persistent(expiry uint32) func(*paho.Connect) {
	return func(c *paho.Connect) {
		c.CleanStart = false
		c.Properties = &paho.ConnectProperties{SessionExpiryInterval: paho.Uint32(expiry)}
	}
}

// leaveV5 disconnects a v5 client normally and returns once the broker has
// ended (and detached) its session, so nothing published afterwards can
// be written to the closing connection.
func leaveV5(t *testing.T, n *standalone.Node, v *v5Client) {
	t.Helper()
	before := metric(t, n, clientDisconnects)
	if err := v.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatalf("%s: disconnect: %v", v.id, err)
	}
	<-v.Done()
	waitMetric(t, n, clientDisconnects, before+1)
}

// connectV3Session connects a 3.1.1 client with clean session 0 and
// returns it with the CONNACK's session present flag.
func connectV3Session(t *testing.T, n *standalone.Node, id string) (*v3Client, bool) {
	t.Helper()
	v := &v3Client{id: id, msgs: make(chan mqtt3.Message, 10000), lost: make(chan error, 1)}
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + n.MQTTAddr(mqtt.TCP).String()).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(false).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(waitFor).SetAutoReconnect(false).SetConnectRetry(false).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { v.msgs <- m }).
		SetConnectionLostHandler(func(_ mqtt3.Client, err error) {
			select {
			case v.lost <- err:
			default:
			}
		})
	v.Client = mqtt3.NewClient(o)
	tok := v.Connect()
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { v.Disconnect(50) })
	return v, tok.(*mqtt3.ConnectToken).SessionPresent()
}

// leaveV3 disconnects a 3.1.1 client normally and waits for the broker to
// end its session.
func leaveV3(t *testing.T, n *standalone.Node, v *v3Client) {
	t.Helper()
	before := metric(t, n, clientDisconnects)
	v.Disconnect(250)
	waitMetric(t, n, clientDisconnects, before+1)
}

// dialSession connects a raw client with the given clean start (clean
// session) flag and, for v5, a Session Expiry Interval property when
// expiry is not 0, and an optional will. It returns the client and the
// CONNACK's session present flag.
func dialSession(t *testing.T, n *standalone.Node, v5 bool, id string, clean bool, expiry uint32, will *rawWill) (*rawClient, bool) {
	t.Helper()
	nc, err := net.Dial("tcp", n.MQTTAddr(mqtt.TCP).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := &rawClient{t: t, v5: v5, nc: nc, br: bufio.NewReader(nc)}
	level, flags := byte(4), byte(0)
	if v5 {
		level = 5
	}
	if clean {
		flags |= 0x02
	}
	flags |= will.connectFlags()
	body := append(mstr("MQTT"), level, flags, 0, 30)
	if v5 {
		var props []byte
		if expiry != 0 {
			props = append([]byte{0x11}, u32(expiry)...)
		}
		body = append(append(body, vbi(len(props))...), props...)
	}
	body = append(body, mstr(id)...)
	if will != nil {
		if v5 {
			body = append(append(body, vbi(len(will.props))...), will.props...)
		}
		body = append(body, mstr(will.topic)...)
		body = append(body, mstr(will.payload)...)
	}
	r.send(frame(0x10, body))
	p := r.expect(ptConnack)
	if len(p.body) < 2 || p.body[1] != 0 {
		t.Fatalf("raw %s: CONNACK % x", id, p.body)
	}
	if p.body[0]&^1 != 0 {
		t.Fatalf("raw %s: CONNACK flags %#x", id, p.body[0])
	}
	return r, p.body[0]&1 == 1
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// willDelay is a v5 will's properties holding only a Will Delay Interval.
func willDelay(s uint32) []byte { return append([]byte{0x18}, u32(s)...) }

// nextPub reads one packet and requires a PUBLISH.
func (r *rawClient) nextPub() rawPub {
	r.t.Helper()
	p, err := r.read(waitFor)
	if err != nil {
		r.t.Fatalf("raw: waiting for a PUBLISH: %v", err)
	}
	if p.typ != ptPublish {
		r.t.Fatalf("raw: got packet type %d (flags %#x body % x), want PUBLISH", p.typ, p.flags, p.body)
	}
	m, err := parsePub(p, r.v5)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// rawQuiet requires that nothing arrives for d.
func (r *rawClient) rawQuiet(d time.Duration) {
	r.t.Helper()
	if p, err := r.read(d); err == nil {
		r.t.Fatalf("raw: unexpected packet type %d (flags %#x body % x)", p.typ, p.flags, p.body)
	}
}

// ackOK requires an acknowledgement of id with success (reason code 0x00
// or left out).
func ackOK(t *testing.T, what string, p rawPacket, id uint16) {
	t.Helper()
	if len(p.body) < 2 || !bytes.Equal(p.body[:2], u16(id)) || (len(p.body) > 2 && p.body[2] != 0) {
		t.Fatalf("%s % x, want success for packet id %d", what, p.body, id)
	}
}

// disconnectRaw sends a v5 DISCONNECT with reason code 0 and, when expiry
// is not nil, a Session Expiry Interval.
func (r *rawClient) disconnectRaw(expiry *uint32) {
	r.t.Helper()
	var props []byte
	if expiry != nil {
		props = append([]byte{0x11}, u32(*expiry)...)
	}
	r.send(frame(ptDisconnect<<4, []byte{0}, vbi(len(props)), props))
}

// waitClosed requires the broker to close the connection, with nothing
// sent before.
func (r *rawClient) waitClosed() {
	r.t.Helper()
	p, err := r.read(waitFor)
	if err == nil {
		r.t.Fatalf("raw: connection open: read packet type %d (body % x)", p.typ, p.body)
	}
}

// wantSeq5 reads len(payloads) messages of a v5 client and requires them
// in this order with topic topicOf(i), QoS qosOf(i), retain 0 and DUP 0.
func wantSeq5(t *testing.T, v *v5Client, payloads []string, topicOf func(int) string, qosOf func(int) byte) {
	t.Helper()
	var dups []string
	for i, p := range payloads {
		m := v.next(t)
		if m.Topic != topicOf(i) || string(m.Payload) != p || m.QoS != qosOf(i) || m.Retain {
			t.Fatalf("%s: message %d: got %s; want topic %q payload %q QoS %d retain false", v.id, i, show5(m), topicOf(i), p, qosOf(i))
		}
		if m.Duplicate() {
			dups = append(dups, p)
		}
	}
	if len(dups) > 0 {
		t.Errorf("%s: %d of %d messages, never sent before, arrived with DUP=1 (payloads %q)", v.id, len(dups), len(payloads), dups)
	}
}

// wantSeq3 is wantSeq5 for a 3.1.1 client.
func wantSeq3(t *testing.T, v *v3Client, payloads []string, topicOf func(int) string, qosOf func(int) byte) {
	t.Helper()
	var dups []string
	for i, p := range payloads {
		m := v.next(t)
		if m.Topic() != topicOf(i) || string(m.Payload()) != p || m.Qos() != qosOf(i) || m.Retained() {
			t.Fatalf("%s: message %d: got %s; want topic %q payload %q QoS %d retain false", v.id, i, show3(m), topicOf(i), p, qosOf(i))
		}
		if m.Duplicate() {
			dups = append(dups, p)
		}
	}
	if len(dups) > 0 {
		t.Errorf("%s: %d of %d messages, never sent before, arrived with DUP=1 (payloads %q)", v.id, len(dups), len(payloads), dups)
	}
}

func numbered(prefix string, from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, prefix+strconv.Itoa(i))
	}
	return s
}

func always[T any](v T) func(int) T { return func(int) T { return v } }

// 1. Messages published while persistent v5 and 3.1.1 subscribers are
// offline wait for them and arrive in order, exactly once.
func TestPersistentOfflineQueueing(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	s5 := connectV5(t, n, "oq5", persistent(300))
	if s5.ack.SessionPresent {
		t.Fatal("v5: session present on the first connection")
	}
	s5.sub(t, paho.SubscribeOptions{Topic: "oq/1", QoS: 1}, paho.SubscribeOptions{Topic: "oq/2", QoS: 2})
	s3, present := connectV3Session(t, n, "oq3")
	if present {
		t.Fatal("v3: session present on the first connection")
	}
	s3.sub(t, map[string]byte{"oq/1": 1, "oq/2": 2})
	leaveV5(t, n, s5)
	leaveV3(t, n, s3)

	pub := connectV5(t, n, "oq-pub", nil)
	const count = 100 // even: QoS 1 to oq/1, odd: QoS 2 to oq/2
	payloads := numbered("m", 0, count)
	qosOf := func(i int) byte { return byte(1 + i%2) }
	topicOf := func(i int) string { return "oq/" + strconv.Itoa(1+i%2) }
	for i, p := range payloads {
		pub.pub(t, topicOf(i), qosOf(i), p, 0) // two sessions hold each message
	}

	s5 = connectV5(t, n, "oq5", persistent(300))
	if !s5.ack.SessionPresent {
		t.Fatal("v5: CONNACK session present 0 on resuming, want 1")
	}
	s3, present = connectV3Session(t, n, "oq3")
	if !present {
		t.Fatal("v3: CONNACK session present 0 on resuming, want 1")
	}
	wantSeq5(t, s5, payloads, topicOf, qosOf)
	wantSeq3(t, s3, payloads, topicOf, qosOf)
	s5.quiet(t, quietFor)
	s3.quiet(t, 0)

	// The subscriptions go on after the resume.
	pub.pub(t, "oq/2", 2, "live", 0)
	want5(t, "v5", s5.next(t), "oq/2", "live", 2)
	want3(t, "v3", s3.next(t), "oq/2", "live", 2)
	s5.quiet(t, quietFor)
	s3.quiet(t, 0)
}

// 2. A node restarted on the same data keeps sessions, subscriptions and
// queued messages.
func TestPersistentBrokerRestart(t *testing.T) {
	cfg := NodeConfig(t)
	n := StartNode(t, cfg)
	sub := connectV5(t, n, "rs-sub", persistent(300))
	sub.sub(t, paho.SubscribeOptions{Topic: "rs/#", QoS: 1})
	leaveV5(t, n, sub)
	pub := connectV5(t, n, "rs-pub", nil)
	payloads := numbered("before ", 0, 20)
	for _, p := range payloads {
		pub.pub(t, "rs/t", 1, p, 0)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("closing the node: %v", err)
	}

	n2 := StartNode(t, cfg)
	pub2 := connectV5(t, n2, "rs-pub2", nil)
	// The subscriber is still offline: its route survived the restart.
	pub2.pub(t, "rs/t", 1, "after restart", 0)
	sub = connectV5(t, n2, "rs-sub", persistent(300))
	if !sub.ack.SessionPresent {
		t.Fatal("CONNACK session present 0 after the restart, want 1")
	}
	wantSeq5(t, sub, append(payloads, "after restart"), always("rs/t"), always[byte](1))
	pub2.pub(t, "rs/u", 1, "live", 0)
	want5(t, "subscriber", sub.next(t), "rs/u", "live", 1)
	sub.quiet(t, quietFor)
}

// 3. Clean start discards a stored session: its queued messages and its
// subscriptions.
func TestPersistentCleanStartDiscards(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	pub := connectV5(t, n, "cs-pub", nil)
	for _, tc := range []struct {
		name   string
		expiry uint32 // of the clean session
	}{{"clean start, expiry 0", 0}, {"clean start, expiry 300", 300}} {
		t.Run(tc.name, func(t *testing.T) {
			id := "cs-" + strconv.Itoa(int(tc.expiry))
			topic := "cs/" + id
			s := connectV5(t, n, id, persistent(300))
			s.sub(t, paho.SubscribeOptions{Topic: topic, QoS: 1})
			leaveV5(t, n, s)
			for i := range 3 {
				pub.pub(t, topic, 1, "queued "+strconv.Itoa(i), 0)
			}
			s = connectV5(t, n, id, func(c *paho.Connect) {
				c.CleanStart = true
				if tc.expiry > 0 {
					c.Properties = &paho.ConnectProperties{SessionExpiryInterval: paho.Uint32(tc.expiry)}
				}
			})
			if s.ack.SessionPresent {
				t.Fatal("CONNACK session present 1 after clean start, want 0")
			}
			pub.pub(t, topic, 1, "after clean start", 0x10)
			s.quiet(t, quietFor)
			// The new session starts empty: a new subscription routes.
			s.sub(t, paho.SubscribeOptions{Topic: topic + "/new", QoS: 1})
			pub.pub(t, topic+"/new", 1, "new", 0)
			want5(t, id, s.next(t), topic+"/new", "new", 1)
			s.quiet(t, quietFor)
		})
	}
	t.Run("v3 clean session", func(t *testing.T) {
		s, _ := connectV3Session(t, n, "cs-v3")
		s.sub(t, map[string]byte{"cs/v3": 1})
		leaveV3(t, n, s)
		pub.pub(t, "cs/v3", 1, "queued", 0)
		s3 := connectV3(t, n, "cs-v3", nil) // clean session 1
		pub.pub(t, "cs/v3", 1, "after clean session", 0x10)
		s3.quiet(t, quietFor)
		s, present := connectV3Session(t, n, "cs-v3")
		if present {
			t.Fatal("CONNACK session present 1 after a clean session ended, want 0")
		}
		s.quiet(t, quietFor)
	})
}

// 4. A session ends at its expiry: its routes are removed and it is not
// resumed.
func TestPersistentExpiry(t *testing.T) {
	cfg := NodeConfig(t)
	cfg.Tenants.Defaults.MaxSessionExpirySeconds = 2 // a v3 session's expiry
	n := StartNode(t, cfg)
	expired := "bifromq_inbox_sessions_expired_total"
	s5 := connectV5(t, n, "ex5", persistent(2))
	s5.sub(t, paho.SubscribeOptions{Topic: "ex/5", QoS: 1})
	s3, _ := connectV3Session(t, n, "ex3")
	s3.sub(t, map[string]byte{"ex/3": 1})
	leaveV5(t, n, s5)
	leaveV3(t, n, s3)
	gone := time.Now()
	pub := connectV5(t, n, "ex-pub", nil)
	pub.pub(t, "ex/5", 1, "while kept", 0)
	pub.pub(t, "ex/3", 1, "while kept", 0)

	// Expired 2 s after the detach, found by the next scan (every 1 s):
	// both are gone 3.5 s after the disconnects. A loaded machine gets
	// 1.5 s more, logged.
	time.Sleep(3500*time.Millisecond - time.Since(gone))
	for metric(t, n, expired) < 2 && time.Since(gone) < 5*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	if got := metric(t, n, expired); got != 2 {
		t.Fatalf("%s is %v %v after the disconnects, want 2", expired, got, time.Since(gone).Round(time.Millisecond))
	} else if d := time.Since(gone); d > 3600*time.Millisecond {
		t.Logf("the sessions expired %v after the disconnects", d.Round(time.Millisecond))
	}
	pub.pub(t, "ex/5", 1, "after expiry", 0x10)
	pub.pub(t, "ex/3", 1, "after expiry", 0x10)
	s5 = connectV5(t, n, "ex5", persistent(2))
	if s5.ack.SessionPresent {
		t.Error("v5: CONNACK session present 1 after the session expired, want 0")
	}
	s3, present := connectV3Session(t, n, "ex3")
	if present {
		t.Error("v3: CONNACK session present 1 after the session expired, want 0")
	}
	s5.quiet(t, quietFor)
	s3.quiet(t, 0)
}

// 5. Delayed wills: sent at min(will delay, session expiry) after an
// abrupt close, not at all when the client resumes the session before.
func TestPersistentDelayedWill(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	sub := connectV5(t, n, "dw-sub", nil)
	sub.sub(t, paho.SubscribeOptions{Topic: "dw/#", QoS: 1})
	// All three start together; the wills are due 2 s after the closes.
	a, _ := dialSession(t, n, true, "dw-a", true, 10, &rawWill{topic: "dw/a", payload: "a is gone", qos: 1, props: willDelay(2)})
	b, _ := dialSession(t, n, true, "dw-b", true, 10, &rawWill{topic: "dw/b", payload: "b is gone", qos: 1, props: willDelay(2)})
	c, _ := dialSession(t, n, true, "dw-c", true, 2, &rawWill{topic: "dw/c", payload: "c is gone", qos: 1, props: willDelay(10)})
	closed := time.Now()
	a.nc.Close()
	b.nc.Close()
	c.nc.Close()
	// b comes back at once, without a will: its pending will is dropped.
	if _, present := dialSession(t, n, true, "dw-b", false, 10, nil); !present {
		t.Fatal("dw-b: CONNACK session present 0 on resuming, want 1")
	}
	if d := time.Since(closed); d > time.Second {
		t.Fatalf("dw-b took %v to reconnect; the test needs it back within 1 s", d)
	}

	got := map[string]time.Duration{}
	deadline := time.After(4500 * time.Millisecond)
wait:
	for {
		select {
		case m := <-sub.msgs:
			at := time.Since(closed)
			want5(t, "will subscriber", m, m.Topic, string(m.Payload), 1)
			if _, dup := got[m.Topic]; dup {
				t.Errorf("will %s arrived twice", show5(m))
			}
			got[m.Topic] = at
			switch m.Topic {
			case "dw/a":
				if string(m.Payload) != "a is gone" {
					t.Errorf("will %s", show5(m))
				}
			case "dw/c":
				if string(m.Payload) != "c is gone" {
					t.Errorf("will %s", show5(m))
				}
			default:
				t.Errorf("unexpected will %s, %v after the close (its client resumed the session)", show5(m), at)
			}
		case <-deadline:
			break wait
		}
	}
	// Due 2 s after the detach, which follows the close: 1.9 s leaves
	// room for the millisecond rounding of the store's timestamps.
	if at, ok := got["dw/a"]; !ok {
		t.Error("no will for dw-a (will delay 2 s, session expiry 10 s) within 4.5 s")
	} else if at < 1900*time.Millisecond {
		t.Errorf("the will of dw-a (will delay 2 s) arrived %v after the close", at)
	}
	if at, ok := got["dw/c"]; !ok {
		t.Error("no will for dw-c (will delay 10 s, session expiry 2 s) within 4.5 s: due at the session expiry")
	} else if at < 1900*time.Millisecond {
		t.Errorf("the will of dw-c (session expiry 2 s) arrived %v after the close", at)
	}
	// dw-c's session ended with its will.
	if _, present := dialSession(t, n, true, "dw-c", false, 10, nil); present {
		t.Error("dw-c: CONNACK session present 1 after its session expired, want 0")
	}
}

// 6. A QoS 1 message sent and not acknowledged is sent again, with DUP and
// its packet id, when the session resumes; once acknowledged, never again.
func TestPersistentQoS1Redelivery(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	r, _ := dialSession(t, n, true, "rd", true, 300, nil)
	if got := r.subscribe(0, rawSub{"rd/t", 1}); !bytes.Equal(got, []byte{1}) {
		t.Fatalf("SUBACK % x", got)
	}
	pub := connectV5(t, n, "rd-pub", nil)
	pub.pub(t, "rd/t", 1, "unacked", 0)
	m := r.nextPub()
	if m.topic != "rd/t" || m.payload != "unacked" || m.qos != 1 || m.dup || m.retain {
		t.Fatalf("first delivery %v; want rd/t \"unacked\" QoS 1 dup false", m)
	}
	r.nc.Close() // no PUBACK

	r, present := dialSession(t, n, true, "rd", false, 300, nil)
	if !present {
		t.Fatal("CONNACK session present 0 on resuming, want 1")
	}
	again := r.nextPub()
	if again.topic != "rd/t" || again.payload != "unacked" || again.qos != 1 || !again.dup || again.id != m.id {
		t.Fatalf("redelivery %v; want rd/t \"unacked\" QoS 1 dup true packet id %d", again, m.id)
	}
	r.send(frame(ptPuback<<4, u16(again.id)))
	pub.pub(t, "rd/t", 1, "next", 0)
	next := r.nextPub()
	if next.payload != "next" || next.qos != 1 || next.dup || next.id == m.id {
		t.Fatalf("got %v; want \"next\" QoS 1 dup false with a packet id other than %d", next, m.id)
	}
	r.send(frame(ptPuback<<4, u16(next.id)))
	r.rawQuiet(quietFor)
	r.disconnectRaw(nil)
	r.waitClosed()

	r, present = dialSession(t, n, true, "rd", false, 300, nil)
	if !present {
		t.Fatal("CONNACK session present 0 on resuming again, want 1")
	}
	r.rawQuiet(quietFor) // both were acknowledged
}

// 7. QoS 2 stays exactly once across a reconnect, outbound and inbound.
func TestPersistentQoS2AcrossReconnect(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	t.Run("outbound", func(t *testing.T) {
		r, _ := dialSession(t, n, true, "q2out", true, 300, nil)
		if got := r.subscribe(0, rawSub{"q2out/t", 2}); !bytes.Equal(got, []byte{2}) {
			t.Fatalf("SUBACK % x", got)
		}
		pub := connectV5(t, n, "q2out-pub", nil)
		pub.pub(t, "q2out/t", 2, "once", 0)
		m := r.nextPub()
		if m.topic != "q2out/t" || m.payload != "once" || m.qos != 2 || m.dup {
			t.Fatalf("got %v; want q2out/t \"once\" QoS 2 dup false", m)
		}
		r.send(frame(ptPubrec<<4, u16(m.id)))
		p, err := r.read(waitFor)
		if err != nil || p.typ != ptPubrel || p.flags != 2 {
			t.Fatalf("after PUBREC: packet type %d flags %#x body % x, err %v; want PUBREL", p.typ, p.flags, p.body, err)
		}
		ackOK(t, "PUBREL", p, m.id)
		r.nc.Close() // no PUBCOMP

		r, present := dialSession(t, n, true, "q2out", false, 300, nil)
		if !present {
			t.Fatal("CONNACK session present 0 on resuming, want 1")
		}
		p, err = r.read(waitFor)
		if err != nil {
			t.Fatalf("after resuming: %v; want PUBREL for packet id %d", err, m.id)
		}
		if p.typ != ptPubrel || p.flags != 2 {
			t.Fatalf("after resuming: packet type %d flags %#x body % x; want PUBREL for packet id %d (not the PUBLISH again)", p.typ, p.flags, p.body, m.id)
		}
		ackOK(t, "PUBREL", p, m.id)
		r.send(frame(ptPubcomp<<4, u16(m.id)))
		r.rawQuiet(quietFor)
		r.disconnectRaw(nil)
		r.waitClosed()
		r, _ = dialSession(t, n, true, "q2out", false, 300, nil)
		r.rawQuiet(quietFor) // the flow is complete
	})
	t.Run("inbound", func(t *testing.T) {
		sub := connectV5(t, n, "q2in-sub", nil)
		sub.sub(t, paho.SubscribeOptions{Topic: "q2in/t", QoS: 2})
		r, _ := dialSession(t, n, true, "q2in", true, 300, nil)
		r.publish("q2in/t", 2, 9, "once")
		ackOK(t, "PUBREC", r.expect(ptPubrec), 9)
		want5(t, "subscriber", sub.next(t), "q2in/t", "once", 2)
		r.nc.Close() // no PUBREL

		r, present := dialSession(t, n, true, "q2in", false, 300, nil)
		if !present {
			t.Fatal("CONNACK session present 0 on resuming, want 1")
		}
		r.send(frame(0x30|0x08|2<<1, mstr("q2in/t"), u16(9), []byte{0}, []byte("once"))) // DUP
		ackOK(t, "PUBREC for the resent PUBLISH", r.expect(ptPubrec), 9)
		sub.quiet(t, quietFor)
		r.send(frame(ptPubrel<<4|2, u16(9)))
		ackOK(t, "PUBCOMP", r.expect(ptPubcomp), 9)
		sub.quiet(t, quietFor)
		// Packet id 9 is free again: a new message.
		r.publish("q2in/t", 2, 9, "twice")
		ackOK(t, "PUBREC", r.expect(ptPubrec), 9)
		r.send(frame(ptPubrel<<4|2, u16(9)))
		ackOK(t, "PUBCOMP", r.expect(ptPubcomp), 9)
		want5(t, "subscriber", sub.next(t), "q2in/t", "twice", 2)
		sub.quiet(t, quietFor)
	})
}

// 8. A connection with the same client id and clean start 0 takes the
// session over, subscriptions included.
func TestPersistentTakeover(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	a := connectV5(t, n, "tko", persistent(300))
	a.sub(t, paho.SubscribeOptions{Topic: "tko/t", QoS: 1})
	pub := connectV5(t, n, "tko-pub", nil)
	pub.pub(t, "tko/t", 1, "to a", 0)
	want5(t, "a", a.next(t), "tko/t", "to a", 1)
	b := connectV5(t, n, "tko", persistent(300))
	select {
	case d := <-a.disc:
		if d.ReasonCode != 0x8e {
			t.Fatalf("A got DISCONNECT %#x, want 0x8e (session taken over)", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("A got no DISCONNECT")
	}
	if !b.ack.SessionPresent {
		t.Fatal("B's CONNACK has session present 0, want 1")
	}
	pub.pub(t, "tko/t", 1, "to b", 0)
	want5(t, "b", b.next(t), "tko/t", "to b", 1)
	b.quiet(t, quietFor)
	a.quiet(t, 0)
}

// 9. An inbox queue holds SessionInboxSize messages: QoS 1 and 2 beyond
// are dropped; QoS 0 drops the oldest with QoS0DropOldest.
func TestPersistentQueueLimits(t *testing.T) {
	const dropped = "bifromq_inbox_messages_dropped_total"
	const queued = "bifromq_inbox_messages_queued_total"
	t.Run("QoS 1 drops the newest", func(t *testing.T) {
		cfg := NodeConfig(t)
		cfg.Tenants.Defaults.SessionInboxSize = 5
		n := StartNode(t, cfg)
		s := connectV5(t, n, "ql1", persistent(300))
		s.sub(t, paho.SubscribeOptions{Topic: "ql/t", QoS: 1})
		leaveV5(t, n, s)
		pub := connectV5(t, n, "ql1-pub", nil)
		payloads := numbered("m", 0, 8)
		for _, p := range payloads {
			pub.pub(t, "ql/t", 1, p, 0)
		}
		if got := metric(t, n, dropped); got != 3 {
			t.Errorf("%s is %v, want 3", dropped, got)
		}
		s = connectV5(t, n, "ql1", persistent(300))
		if !s.ack.SessionPresent {
			t.Fatal("CONNACK session present 0 on resuming, want 1")
		}
		wantSeq5(t, s, payloads[:5], always("ql/t"), always[byte](1))
		s.quiet(t, quietFor)
	})
	t.Run("QoS 0 drops the oldest", func(t *testing.T) {
		cfg := NodeConfig(t)
		cfg.Tenants.Defaults.SessionInboxSize = 5
		cfg.Tenants.Defaults.QoS0DropOldest = true
		n := StartNode(t, cfg)
		s := connectV5(t, n, "ql0", persistent(300))
		s.sub(t, paho.SubscribeOptions{Topic: "ql/t", QoS: 1})
		leaveV5(t, n, s)
		pub := connectV5(t, n, "ql0-pub", nil)
		payloads := numbered("m", 0, 8)
		// One at a time: each is queued before the next is published.
		for i, p := range payloads {
			pub.pub(t, "ql/t", 0, p, 0)
			waitMetric(t, n, queued, float64(i+1))
		}
		s = connectV5(t, n, "ql0", persistent(300))
		if !s.ack.SessionPresent {
			t.Fatal("CONNACK session present 0 on resuming, want 1")
		}
		wantSeq5(t, s, payloads[3:], always("ql/t"), always[byte](0))
		s.quiet(t, quietFor)
		t.Logf("%s after 3 QoS 0 messages dropped as the oldest: %v", dropped, metric(t, n, dropped))
	})
}

// 10. The session expiry a v5 DISCONNECT may set.
func TestPersistentDisconnectExpiry(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	thirty, zero := uint32(30), uint32(0)
	for _, tc := range []struct {
		name  string
		clean bool
	}{{"clean start 1", true}, {"clean start 0", false}} {
		t.Run("expiry 0 then 30, "+tc.name, func(t *testing.T) {
			id := fmt.Sprintf("de-zero-%v", tc.clean)
			r, _ := dialSession(t, n, true, id, tc.clean, 0, nil)
			r.disconnectRaw(&thirty)
			p, err := r.read(waitFor)
			if err != nil {
				t.Fatalf("waiting for DISCONNECT 0x82: %v", err)
			}
			if p.typ != ptDisconnect || len(p.body) < 1 || p.body[0] != 0x82 {
				t.Fatalf("got packet type %d body % x, want DISCONNECT 0x82 (protocol error)", p.typ, p.body)
			}
			r.waitClosed()
			// The session ended with its connection (expiry 0).
			if _, present := dialSession(t, n, true, id, false, 30, nil); present {
				t.Fatal("CONNACK session present 1, want 0: the session had expiry 0")
			}
		})
	}
	t.Run("expiry 30 then 0", func(t *testing.T) {
		pub := connectV5(t, n, "de-pub", nil)
		r, _ := dialSession(t, n, true, "de-30", true, 30, nil)
		if got := r.subscribe(0, rawSub{"de/t", 1}); !bytes.Equal(got, []byte{1}) {
			t.Fatalf("SUBACK % x", got)
		}
		pub.pub(t, "de/t", 1, "live", 0)
		if m := r.nextPub(); m.payload != "live" {
			t.Fatalf("got %v", m)
		}
		before := metric(t, n, clientDisconnects)
		r.disconnectRaw(&zero)
		r.waitClosed()
		waitMetric(t, n, clientDisconnects, before+1)
		pub.pub(t, "de/t", 1, "after delete", 0x10)
		if _, present := dialSession(t, n, true, "de-30", false, 30, nil); present {
			t.Fatal("CONNACK session present 1, want 0: DISCONNECT set session expiry 0")
		}
	})
}

// 11. MaxTopicFiltersPerInbox bounds a persistent session's
// subscriptions.
func TestPersistentMaxTopicFilters(t *testing.T) {
	cfg := NodeConfig(t)
	cfg.Tenants.Defaults.MaxTopicFiltersPerInbox = 2
	n := StartNode(t, cfg)
	s := connectV5(t, n, "mtf", persistent(300))
	s.sub(t, paho.SubscribeOptions{Topic: "mtf/1", QoS: 1}, paho.SubscribeOptions{Topic: "mtf/2", QoS: 1})
	if got := s.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "mtf/3", QoS: 1}}}); !bytes.Equal(got, []byte{0x97}) {
		t.Fatalf("third filter: SUBACK % x, want 97 (quota exceeded)", got)
	}
	// Subscribing again to a filter held is no new filter.
	s.sub(t, paho.SubscribeOptions{Topic: "mtf/1", QoS: 2})
	pub := connectV5(t, n, "mtf-pub", nil)
	pub.pub(t, "mtf/3", 1, "refused filter", 0x10)
	pub.pub(t, "mtf/2", 1, "granted filter", 0)
	want5(t, "mtf", s.next(t), "mtf/2", "granted filter", 1)
	s.quiet(t, quietFor)

	r, _ := dialSession(t, n, false, "mtf3", false, 0, nil)
	if got := r.subscribe(0, rawSub{"mtf3/1", 1}, rawSub{"mtf3/2", 1}, rawSub{"mtf3/3", 1}); !bytes.Equal(got, []byte{1, 1, 0x80}) {
		t.Fatalf("v3 SUBACK % x, want 01 01 80", got)
	}
}

// 12. Messages a publisher sends without waiting for each acknowledgement
// are queued for a persistent session in publish order (MQTT-4.6.0-6).
func TestPersistentPipelinedOrder(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	s := connectV5(t, n, "po", persistent(300))
	s.sub(t, paho.SubscribeOptions{Topic: "po/#", QoS: 2})
	leaveV5(t, n, s)
	// A transient subscriber shows the order dist keeps.
	live := connectV5(t, n, "po-live", nil)
	live.sub(t, paho.SubscribeOptions{Topic: "po/t", QoS: 2})
	r := dialRaw(t, n, true, "po-pub", nil, nil)
	const count = 200
	payloads := numbered("m", 0, count)
	for i, p := range payloads {
		r.publish("po/t", 1, uint16(i+1), p) // all before any PUBACK
	}
	for i := range count {
		ackOK(t, "PUBACK", r.expect(ptPuback), uint16(i+1))
	}
	wantSeq5(t, live, payloads, always("po/t"), always[byte](1))
	s = connectV5(t, n, "po", persistent(300))
	if !s.ack.SessionPresent {
		t.Fatal("CONNACK session present 0 on resuming, want 1")
	}
	var got []string
	for range count {
		m := s.next(t)
		got = append(got, string(m.Payload))
	}
	for i := range got {
		if got[i] != payloads[i] {
			t.Errorf("offline queue: message %d is %q, want %q; order received: %q", i, got[i], payloads[i], got)
			break
		}
	}
	// Online: the session is attached, messages still go through the
	// inbox.
	for i, p := range payloads {
		r.publish("po/u", 1, uint16(i+1), p)
	}
	for i := range count {
		ackOK(t, "PUBACK", r.expect(ptPuback), uint16(i+1))
	}
	got = got[:0]
	for range count {
		got = append(got, string(s.next(t).Payload))
	}
	for i := range got {
		if got[i] != payloads[i] {
			t.Errorf("online: message %d is %q, want %q; order received: %q", i, got[i], payloads[i], got)
			break
		}
	}
	s.quiet(t, quietFor)
}
