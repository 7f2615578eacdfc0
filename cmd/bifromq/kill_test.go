package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// mqttConn is a raw MQTT 3.1.1 client.
type mqttConn struct {
	t       *testing.T
	timeout time.Duration // read timeout; default 10 s
	nc      net.Conn
	rd      *packet.Reader
	mu      sync.Mutex // writes
}

func dialMQTT(t *testing.T, addr, id string, clean bool) (*mqttConn, bool) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &mqttConn{t: t, nc: nc, rd: packet.NewReader(nc, packet.MaxPacketSize)}
	c.send(&packet.Connect{Version: packet.V311, ClientID: id, CleanStart: clean, KeepAlive: 60})
	ack, ok := c.read().(*packet.Connack)
	if !ok || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	return c, ack.SessionPresent
}

func (c *mqttConn) send(p packet.Packet) error {
	b, err := packet.Encode(p, packet.V311)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.nc.Write(b)
	return err
}

// read returns the next packet, or nil on an error or timeout.
func (c *mqttConn) read() packet.Packet {
	d := c.timeout
	if d == 0 {
		d = 10 * time.Second
	}
	c.nc.SetReadDeadline(time.Now().Add(d))
	h, body, err := c.rd.ReadPacket()
	if err != nil {
		return nil
	}
	p, err := packet.Decode(h, body, packet.V311)
	if err != nil {
		c.t.Fatalf("decoding %s: %v", h.Type, err)
	}
	return p
}

// TestKill9KeepsAcknowledgedMessages: a publisher sends 10,000 QoS 1
// messages to a persistent subscriber that is offline; the broker is
// killed with SIGKILL at a random point and restarted on the same data
// directory; every message whose PUBACK the publisher received is then
// delivered to the subscriber (duplicates only as QoS 1 allows).
func TestKill9KeepsAcknowledgedMessages(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bifromq.yaml")
	if err := os.WriteFile(cfg, []byte("tenants:\n  defaults:\n    sessionInboxSize: 20000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	b := startBrokerIn(t, data, "--config", cfg)
	killed := false
	defer func() {
		if !killed {
			b.cmd.Process.Kill()
			<-b.copied
			b.cmd.Wait()
		}
	}()

	sub, _ := dialMQTT(t, b.mqttTCP, "kill-sub", false)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "kill/t", QoS: 1}}})
	if _, ok := sub.read().(*packet.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	sub.send(&packet.Disconnect{})
	sub.nc.Close()

	const total = 10_000
	killAt := 500 + rand.IntN(9000)
	pub, _ := dialMQTT(t, b.mqttTCP, "kill-pub", true)
	acked := make(map[uint32]bool)
	var ackMu sync.Mutex
	readerDone := make(chan struct{})
	window := make(chan struct{}, 100) // publisher's own in-flight window
	ids := make(map[uint16]uint32)     // packet id -> seq, under ackMu
	go func() {
		defer close(readerDone)
		for {
			p := pub.read()
			a, ok := p.(*packet.Puback)
			if !ok {
				return // the broker died
			}
			ackMu.Lock()
			acked[ids[a.PacketID]] = true
			n := len(acked)
			ackMu.Unlock()
			<-window
			if n == killAt {
				b.cmd.Process.Signal(os.Kill)
			}
		}
	}()
	sent := 0
	for seq := uint32(0); seq < total; seq++ {
		select {
		case window <- struct{}{}:
		case <-readerDone:
		}
		id := uint16(seq%65535) + 1
		ackMu.Lock()
		ids[id] = seq
		ackMu.Unlock()
		payload := binary.BigEndian.AppendUint32(nil, seq)
		if pub.send(&packet.Publish{QoS: 1, PacketID: id, Topic: []byte("kill/t"), Payload: payload}) != nil {
			break
		}
		sent++
		select {
		case <-readerDone:
			seq = total // stop: the broker is gone
		default:
		}
	}
	<-readerDone
	killed = true
	<-b.copied
	b.cmd.Wait()
	pub.nc.Close()
	ackMu.Lock()
	nAcked := len(acked)
	ackMu.Unlock()
	t.Logf("sent %d, acknowledged %d, kill -9 after ack %d", sent, nAcked, killAt)
	if nAcked < killAt {
		t.Fatalf("only %d acknowledged before the kill at %d", nAcked, killAt)
	}

	b2 := startBrokerIn(t, data, "--config", cfg)
	defer func() {
		b2.cmd.Process.Kill()
		<-b2.copied
		b2.cmd.Wait()
	}()
	sub, present := dialMQTT(t, b2.mqttTCP, "kill-sub", false)
	defer sub.nc.Close()
	if !present {
		t.Fatal("the persistent session did not survive the kill")
	}
	got := make(map[uint32]int)
	last := -1
	reordered := 0
	for {
		p := sub.read() // 10 s without a message ends the stream
		m, ok := p.(*packet.Publish)
		if !ok {
			break
		}
		seq := binary.BigEndian.Uint32(m.Payload)
		if int(seq) < last && !m.Dup {
			reordered++
		}
		last = int(seq)
		got[seq]++
		sub.send(&packet.Puback{PacketID: m.PacketID})
		if len(got) >= sent {
			break
		}
		if len(got) >= nAcked {
			sub.timeout = time.Second // the rest were never acknowledged: they may or may not come
		}
	}
	lost := 0
	for seq := range acked {
		if got[seq] == 0 {
			lost++
		}
	}
	t.Logf("delivered after restart: %d distinct messages", len(got))
	if lost > 0 {
		t.Fatalf("%d acknowledged messages lost (of %d)", lost, nAcked)
	}
	if reordered > 0 {
		t.Errorf("%d messages out of order without DUP", reordered)
	}
}
