package testsuite

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/standalone"
)

// benchConn is a minimal MQTT 3.1.1 client for load: one writer lock and
// a reader goroutine owned by the caller.
type benchConn struct {
	nc net.Conn
	rd *packet.Reader
	mu sync.Mutex
}

func benchDial(tb testing.TB, n *standalone.Node, id string, clean bool) *benchConn {
	tb.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", Port(tb, n, mqtt.TCP)))
	if err != nil {
		tb.Fatal(err)
	}
	c := &benchConn{nc: nc, rd: packet.NewReader(nc, packet.MaxPacketSize)}
	c.send(tb, &packet.Connect{Version: packet.V311, ClientID: id, CleanStart: clean, KeepAlive: 300})
	if _, ok := c.read(tb).(*packet.Connack); !ok {
		tb.Fatal("no CONNACK")
	}
	return c
}

func (c *benchConn) send(tb testing.TB, p packet.Packet) {
	b, err := packet.Encode(p, packet.V311)
	if err != nil {
		tb.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.nc.Write(b); err != nil {
		tb.Error(err)
	}
}

func (c *benchConn) read(tb testing.TB) packet.Packet {
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	h, body, err := c.rd.ReadPacket()
	if err != nil {
		return nil
	}
	p, err := packet.Decode(h, body, packet.V311)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkPersistentP2P measures QoS 1 point-to-point traffic through
// persistent sessions: 100 publishers, each on its own topic, 100 online
// persistent subscribers (clean session 0), one per topic; every message
// is queued durably in the subscriber's inbox (Raft-applied) before the
// publisher's PUBACK, fetched, delivered and committed. Reports msgs/s
// and the p50/p99 publish-to-receive latency; then the offline enqueue
// rate (subscribers disconnected). Broker and clients share the process.
//
//	go test ./testsuite -run '^$' -bench PersistentP2P -benchtime 100x
//
// -benchtime Nx sends N messages per publisher.
func BenchmarkPersistentP2P(b *testing.B) { benchP2P(b, 100, false, 1) }

// BenchmarkTransientP2P is the same traffic through clean sessions: 20
// pairs at QoS 0 and QoS 1.
//
//	go test ./testsuite -run '^$' -bench TransientP2P -benchtime 2000x
func BenchmarkTransientP2P(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprint("qos=", qos), func(b *testing.B) { benchP2P(b, 20, true, qos) })
	}
}

func benchP2P(b *testing.B, pairs int, clean bool, qos byte) {
	const window = 16
	cfg := NodeConfig(b)
	cfg.Tenants.Defaults.SessionInboxSize = 100_000
	n := StartNode(b, cfg)
	perPub := b.N

	subs := make([]*benchConn, pairs)
	for i := range subs {
		subs[i] = benchDial(b, n, fmt.Sprint("psub-", i), clean)
		subs[i].send(b, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: fmt.Sprint("p2p/", i), QoS: packet.QoS(qos)}}})
		if _, ok := subs[i].read(b).(*packet.Suback); !ok {
			b.Fatal("no SUBACK")
		}
	}
	pubs := make([]*benchConn, pairs)
	for i := range pubs {
		pubs[i] = benchDial(b, n, fmt.Sprint("ppub-", i), true)
	}
	// publish sends perPub QoS 1 messages from every publisher, at most
	// window unacknowledged each, and waits for every PUBACK.
	publish := func() {
		var wg sync.WaitGroup
		for i, c := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots := make(chan struct{}, window)
				acked := make(chan struct{})
				go func() {
					defer close(acked)
					for k := 0; k < perPub && qos > 0; k++ {
						if _, ok := c.read(b).(*packet.Puback); !ok {
							b.Error("publisher lost its connection")
							return
						}
						<-slots
					}
				}()
				for k := 0; k < perPub; k++ {
					if qos > 0 {
						slots <- struct{}{}
					}
					payload := binary.BigEndian.AppendUint64(make([]byte, 0, 64), uint64(time.Now().UnixNano()))
					payload = payload[:64]
					id := uint16(0)
					if qos > 0 {
						id = uint16(k%65535) + 1
					}
					c.send(b, &packet.Publish{QoS: packet.QoS(qos), PacketID: id, Topic: []byte(fmt.Sprint("p2p/", i)), Payload: payload})
				}
				<-acked
			}()
		}
		wg.Wait()
	}

	var received atomic.Int64
	lat := make([][]time.Duration, pairs)
	var rwg sync.WaitGroup
	for i, c := range subs {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for k := 0; k < perPub; k++ {
				m, ok := c.read(b).(*packet.Publish)
				if !ok {
					b.Errorf("subscriber %d got %d of %d", i, k, perPub)
					return
				}
				lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(m.Payload))))
				if m.QoS > 0 {
					c.send(b, &packet.Puback{PacketID: m.PacketID})
				}
				received.Add(1)
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	publish()
	rwg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	total := pairs * perPub
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}

	if clean {
		for _, c := range append(subs, pubs...) {
			c.nc.Close()
		}
		return
	}
	// Offline enqueue: the subscribers go away; the same load is queued.
	for _, c := range subs {
		c.send(b, &packet.Disconnect{})
		c.nc.Close()
	}
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	publish()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "offline-msgs/s")
	for _, c := range pubs {
		c.nc.Close()
	}
}
