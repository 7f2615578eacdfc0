package mqtt

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// TestSharedLeastBusy: a $share group sends each message to its least busy
// member. One member takes its messages and never acknowledges them; the
// other acknowledges each (and proves with a PINGREQ that the server has
// handled the PUBACK before the next message is published). Only the first
// message, when both are idle, may go to the member that never acks.
func TestSharedLeastBusy(t *testing.T) {
	s := startServer(t, Options{})
	members := map[string]*client{}
	got := make(chan [2]string, 64) // member, payload
	failed := make(chan error, 2)
	for _, id := range []string{"busy", "idle"} {
		c := dial(t, s)
		c.connect(v5Connect(id, packet.Properties{}))
		if ack := c.subscribe(1, 0, packet.Subscription{Filter: "$share/g/lb", QoS: 1}); ack.ReasonCodes[0] != 1 {
			t.Fatalf("%s: SUBACK %v", id, ack.ReasonCodes)
		}
		members[id] = c
		go func() {
			for {
				h, body, err := c.rd.ReadPacket()
				if err != nil {
					failed <- err
					return
				}
				if h.Type == packet.PINGRESP {
					continue
				}
				var p packet.Publish
				if h.Type != packet.PUBLISH {
					failed <- fmt.Errorf("%s: unexpected %s", id, h.Type)
					return
				}
				if err := p.Unpack(h.Flags, body, packet.V5); err != nil {
					failed <- err
					return
				}
				payload := string(p.Payload) // body is the reader's until its next ReadPacket
				if id == "idle" {
					ack, _ := packet.Encode(&packet.Puback{PacketID: p.PacketID}, packet.V5)
					ping, _ := packet.Encode(&packet.Pingreq{}, packet.V5)
					if _, err := c.nc.Write(append(ack, ping...)); err != nil {
						failed <- err
						return
					}
					if h, _, err := c.rd.ReadPacket(); err != nil || h.Type != packet.PINGRESP {
						failed <- fmt.Errorf("%s: waiting for PINGRESP: got %s, %v", id, h.Type, err)
						return
					}
				}
				got <- [2]string{id, payload}
			}
		}()
	}
	p := dial(t, s)
	p.connect(v5Connect("pub", packet.Properties{}))
	counts := map[string]int{}
	for i := range 40 {
		p.send(pub("lb", 1, uint16(i+1), strconv.Itoa(i)))
		if _, ok := p.read().(*packet.Puback); !ok {
			t.Fatalf("message %d: no PUBACK", i)
		}
		select {
		case g := <-got:
			if g[1] != strconv.Itoa(i) {
				t.Fatalf("message %d: %s got %q", i, g[0], g[1])
			}
			counts[g[0]]++
		case err := <-failed:
			t.Fatalf("message %d: a member's connection failed: %v", i, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d reached no member (so far %v)", i, counts)
		}
	}
	if counts["busy"] > 1 {
		t.Errorf("the member that never acknowledges got %d of 40 messages (%v), want at most the first", counts["busy"], counts)
	}
	for _, c := range members {
		c.nc.Close()
	}
}
