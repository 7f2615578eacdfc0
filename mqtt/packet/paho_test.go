package packet

import (
	"bytes"
	"testing"

	paho5 "github.com/eclipse/paho.golang/packets"
	paho3 "github.com/eclipse/paho.mqtt.golang/packets"
)

// TestCorpusAgainstPaho checks the golden bytes with two independent
// codecs: every v3 entry must decode with paho.mqtt.golang and re-encode to
// the same bytes; every v5 entry must decode with paho.golang to the same
// packet type and main fields, and re-encode to the same bytes when it has
// no properties (paho orders properties its own way) and paho does not
// choose a longer form.
func TestCorpusAgainstPaho(t *testing.T) {
	for _, g := range readCorpus(t) {
		t.Run(g.name, func(t *testing.T) {
			ours, err := decodeOne(t, g.raw, g.v, MaxPacketSize)
			if err != nil {
				t.Fatal(err)
			}
			if g.v != V5 {
				cp, err := paho3.ReadPacket(bytes.NewReader(g.raw))
				if err != nil {
					t.Fatalf("paho.mqtt.golang cannot decode: %v", err)
				}
				var out bytes.Buffer
				if err := cp.Write(&out); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), g.raw) {
					t.Fatalf("paho.mqtt.golang re-encodes\n%s\nour bytes\n%s", spacedHex(out.Bytes()), spacedHex(g.raw))
				}
				return
			}
			if ours.Type() == DISCONNECT && len(g.raw) == 2 {
				// paho.golang v0.23.0 cannot read a DISCONNECT with a
				// remaining length of 0, which MQTT 5 §3.14.2.1 allows.
				return
			}
			cp, err := paho5.ReadPacket(bytes.NewReader(g.raw))
			if err != nil {
				t.Fatalf("paho.golang cannot decode: %v", err)
			}
			if byte(cp.Type) != byte(ours.Type()) {
				t.Fatalf("paho.golang sees type %d, we %s", cp.Type, ours.Type())
			}
			comparePaho5(t, ours, cp)
			// paho writes the long form of the acknowledgements,
			// DISCONNECT and AUTH (reason code and property length even
			// when they may be omitted), so only the other types compare.
			switch ours.Type() {
			case PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT, AUTH:
				return
			}
			if props := PropertiesOf(ours); (props == nil || props.String() == "{}") && !hasWillProps(ours) {
				var out bytes.Buffer
				if _, err := cp.WriteTo(&out); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), g.raw) {
					t.Fatalf("paho.golang re-encodes\n%s\nour bytes\n%s", spacedHex(out.Bytes()), spacedHex(g.raw))
				}
			}
		})
	}
}

func hasWillProps(p Packet) bool {
	c, ok := p.(*Connect)
	return ok && c.Will.Properties.String() != "{}"
}

func comparePaho5(t *testing.T, ours Packet, cp *paho5.ControlPacket) {
	t.Helper()
	check := func(what string, got, want any) {
		t.Helper()
		if !equalish(got, want) {
			t.Errorf("%s: paho.golang %v, ours %v", what, got, want)
		}
	}
	switch p := ours.(type) {
	case *Connect:
		c := cp.Content.(*paho5.Connect)
		check("client id", c.ClientID, p.ClientID)
		check("clean start", c.CleanStart, p.CleanStart)
		check("keep alive", c.KeepAlive, p.KeepAlive)
		check("username", c.Username, p.Username)
		check("password", c.Password, p.Password)
		check("will flag", c.WillFlag, p.WillFlag)
		check("will topic", c.WillTopic, p.Will.Topic)
		check("will payload", c.WillMessage, p.Will.Payload)
		check("will qos", c.WillQOS, byte(p.Will.QoS))
		if c.Properties.SessionExpiryInterval != nil {
			check("session expiry", *c.Properties.SessionExpiryInterval, p.Properties.SessionExpiry)
		}
		check("user properties", len(c.Properties.User), len(p.Properties.User))
		if c.WillProperties != nil {
			check("will correlation data", c.WillProperties.CorrelationData, p.Will.Properties.CorrelationData)
		}
	case *Connack:
		c := cp.Content.(*paho5.Connack)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
		check("session present", c.SessionPresent, p.SessionPresent)
		check("assigned client id", c.Properties.AssignedClientID, p.Properties.AssignedClientID)
		check("reason string", c.Properties.ReasonString, p.Properties.ReasonString)
	case *Publish:
		c := cp.Content.(*paho5.Publish)
		check("topic", c.Topic, string(p.Topic))
		check("payload", c.Payload, p.Payload)
		check("qos", c.QoS, byte(p.QoS))
		check("packet id", c.PacketID, p.PacketID)
		check("retain", c.Retain, p.Retain)
		check("dup", c.Duplicate, p.Dup)
		check("content type", c.Properties.ContentType, p.Properties.ContentType)
		check("correlation data", c.Properties.CorrelationData, p.Properties.CorrelationData)
		if c.Properties.TopicAlias != nil {
			check("topic alias", *c.Properties.TopicAlias, p.Properties.TopicAlias)
		}
	case *Puback:
		c := cp.Content.(*paho5.Puback)
		check("packet id", c.PacketID, p.PacketID)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
	case *Pubrec:
		c := cp.Content.(*paho5.Pubrec)
		check("packet id", c.PacketID, p.PacketID)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
	case *Pubrel:
		c := cp.Content.(*paho5.Pubrel)
		check("packet id", c.PacketID, p.PacketID)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
	case *Pubcomp:
		c := cp.Content.(*paho5.Pubcomp)
		check("packet id", c.PacketID, p.PacketID)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
	case *Subscribe:
		c := cp.Content.(*paho5.Subscribe)
		check("packet id", c.PacketID, p.PacketID)
		check("filters", len(c.Subscriptions), len(p.Subscriptions))
		for i, s := range c.Subscriptions {
			o := p.Subscriptions[i]
			check("filter", s.Topic, o.Filter)
			check("qos", s.QoS, byte(o.QoS))
			check("no local", s.NoLocal, o.NoLocal)
			check("retain as published", s.RetainAsPublished, o.RetainAsPublished)
			check("retain handling", s.RetainHandling, o.RetainHandling)
		}
	case *Suback:
		c := cp.Content.(*paho5.Suback)
		check("packet id", c.PacketID, p.PacketID)
		check("codes", len(c.Reasons), len(p.ReasonCodes))
	case *Unsubscribe:
		c := cp.Content.(*paho5.Unsubscribe)
		check("packet id", c.PacketID, p.PacketID)
		check("filters", c.Topics, p.Filters)
	case *Unsuback:
		c := cp.Content.(*paho5.Unsuback)
		check("packet id", c.PacketID, p.PacketID)
		check("codes", len(c.Reasons), len(p.ReasonCodes))
	case *Disconnect:
		c := cp.Content.(*paho5.Disconnect)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
		check("server reference", c.Properties.ServerReference, p.Properties.ServerReference)
	case *Auth:
		c := cp.Content.(*paho5.Auth)
		check("reason code", c.ReasonCode, byte(p.ReasonCode))
		check("auth method", c.Properties.AuthMethod, p.Properties.AuthMethod)
	}
}

func equalish(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		bb, _ := b.([]byte)
		return bytes.Equal(a, bb)
	case []string:
		bb, _ := b.([]string)
		if len(a) != len(bb) {
			return false
		}
		for i := range a {
			if a[i] != bb[i] {
				return false
			}
		}
		return true
	}
	return a == b
}
