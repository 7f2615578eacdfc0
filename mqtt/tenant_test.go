package mqtt

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/bifromq-go/bifromq/mqtt/auth"
	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

// Tests of authentication, ACLs, tenant isolation and the enforcement of
// every tenant setting, with raw clients that see the exact codes.

func usersProvider(t *testing.T) auth.Provider {
	t.Helper()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	acl := []auth.Rule{
		{Allow: false, Topics: []string{"secret/#"}},
		{Allow: true, Topics: []string{"#"}},
	}
	f, err := auth.NewFile(auth.UsersFile{Users: []auth.User{
		{Username: "a1", PasswordHash: string(h), Tenant: "A", ACL: acl},
		{Username: "a2", PasswordHash: string(h), Tenant: "A", ACL: acl},
		{Username: "b1", PasswordHash: string(h), Tenant: "B", ACL: acl},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func login(v packet.Version, id, user, pw string) *packet.Connect {
	return &packet.Connect{Version: v, CleanStart: true, ClientID: id, UsernameFlag: true, Username: user,
		PasswordFlag: true, Password: []byte(pw)}
}

func TestAuthRefusals(t *testing.T) {
	s := startServer(t, Options{Auth: usersProvider(t)})
	// v5: 0x86 bad user name or password.
	c := dial(t, s)
	if ack := c.connect(login(packet.V5, "x", "a1", "wrong")); ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("v5 wrong password: %v", ack.ReasonCode)
	}
	c.expectClosed()
	// v3: return code 4.
	c = dial(t, s)
	c.send(login(packet.V311, "x", "nobody", "pw"))
	c.expectHex("20 02 00 04")
	c.expectClosed()
	// Enhanced auth with a method the provider lacks: 0x8C.
	c = dial(t, s)
	cp := v5Connect("x", packet.Properties{AuthMethod: "SCRAM-SHA-1"})
	if ack := c.connect(cp); ack.ReasonCode != packet.BadAuthenticationMethod {
		t.Fatalf("unknown method: %v", ack.ReasonCode)
	}
	// A will to a denied topic: 0x87 (v5), 5 (v3).
	c = dial(t, s)
	cp = login(packet.V5, "w", "a1", "pw")
	cp.WillFlag, cp.Will = true, packet.Will{Topic: "secret/x", Payload: []byte("w")}
	if ack := c.connect(cp); ack.ReasonCode != packet.NotAuthorized {
		t.Fatalf("denied will: %v", ack.ReasonCode)
	}
	c = dial(t, s)
	cp.Version = packet.V311
	c.send(cp)
	c.expectHex("20 02 00 05")
}

func TestACLDenials(t *testing.T) {
	for _, code := range []packet.ReasonCode{packet.NotAuthorized, packet.UnspecifiedError} {
		t.Run(code.String(), func(t *testing.T) {
			s := startServer(t, Options{Auth: usersProvider(t), DenySubscribeCode: code})
			c := dial(t, s)
			c.connect(login(packet.V5, "c", "a1", "pw"))
			ack := c.subscribe(1, 0, packet.Subscription{Filter: "secret/+"}, packet.Subscription{Filter: "open/+", QoS: 1})
			if ack.ReasonCodes[0] != code || ack.ReasonCodes[1] != 1 {
				t.Fatalf("SUBACK %v", ack.ReasonCodes)
			}
			c.send(pub("secret/x", 1, 5, "no"))
			if a, ok := c.read().(*packet.Puback); !ok || a.ReasonCode != packet.NotAuthorized {
				t.Fatalf("denied v5 publish: %+v", a)
			}
			c.send(pub("secret/x", 2, 6, "no"))
			if a, ok := c.read().(*packet.Pubrec); !ok || a.ReasonCode != packet.NotAuthorized {
				t.Fatalf("denied v5 QoS 2 publish: %+v", a)
			}
		})
	}
	// v3: dropped (acknowledged) by default; disconnect when configured.
	for _, mode := range []V3Deny{V3DenyDrop, V3DenyDisconnect} {
		t.Run("v3 "+string(mode), func(t *testing.T) {
			s := startServer(t, Options{Auth: usersProvider(t), DenyV3Publish: mode})
			sub := dial(t, s)
			sub.connect(login(packet.V311, "s", "a2", "pw"))
			sub.subscribe(1, 0, packet.Subscription{Filter: "#"})
			c := dial(t, s)
			c.connect(login(packet.V311, "c", "a1", "pw"))
			ack := c.subscribe(1, 0, packet.Subscription{Filter: "secret/#"})
			if ack.ReasonCodes[0] != packet.UnspecifiedError {
				t.Fatalf("v3 denied SUBACK %v", ack.ReasonCodes)
			}
			c.send(pub("secret/x", 1, 7, "no"))
			if mode == V3DenyDisconnect {
				c.expectClosed()
			} else {
				c.expectHex("40 02 00 07")
			}
			sub.expectSilence(200 * time.Millisecond)
		})
	}
}

// TestTenantIsolation: two tenants use the same topics and client ids;
// each sees only its own messages and retained messages, and $share
// groups are per tenant.
func TestTenantIsolation(t *testing.T) {
	s := startServer(t, Options{Auth: usersProvider(t)})
	a, b := dial(t, s), dial(t, s)
	a.connect(login(packet.V5, "same-id", "a1", "pw"))
	b.connect(login(packet.V5, "same-id", "b1", "pw")) // not a takeover: another tenant
	pa, pb := dial(t, s), dial(t, s)
	pa.connect(login(packet.V5, "pub", "a2", "pw"))
	pb.connect(login(packet.V5, "pub", "b1", "pw"))
	r := pub("iso/r", 1, 1, "retained-A")
	r.Retain = true
	pa.send(r)
	pa.read()
	for _, c := range []*client{a, b} {
		c.subscribe(1, 0, packet.Subscription{Filter: "iso/#", QoS: 1}, packet.Subscription{Filter: "$share/g/iso/s", QoS: 1})
	}
	if m := a.readPublish(); string(m.Payload) != "retained-A" || !m.Retain {
		t.Fatalf("tenant A's retained message: %+v", m)
	}
	b.expectSilence(200 * time.Millisecond)
	pb.send(pub("iso/x", 1, 2, "from-B"))
	pb.read()
	pb.send(pub("iso/s", 1, 3, "shared-B"))
	pb.read()
	for _, want := range []string{"from-B", "shared-B"} {
		m := b.readPublish()
		if string(m.Payload) != want {
			t.Fatalf("tenant B got %q, want %q", m.Payload, want)
		}
		b.send(&packet.Puback{PacketID: m.PacketID})
	}
	a.expectSilence(200 * time.Millisecond)
}

// connectWith connects a v5 client to a server with the tenant settings
// changed by f, and returns both.
func connectWith(t *testing.T, f func(*settings.Settings), props packet.Properties) (*Server, *client, *packet.Connack) {
	t.Helper()
	s := startServer(t, Options{Settings: tenantSettings(t, f)})
	c := dial(t, s)
	return s, c, c.connect(v5Connect("c", props))
}

func TestSettingsEnforced(t *testing.T) {
	t.Run("protocol versions", func(t *testing.T) {
		s := startServer(t, Options{Settings: tenantSettings(t, func(st *settings.Settings) { st.MQTT5Enabled, st.MQTT3Enabled = false, false })})
		c := dial(t, s)
		if ack := c.connect(v5Connect("c", packet.Properties{})); ack.ReasonCode != packet.UnsupportedProtocolVersion {
			t.Fatalf("v5 disabled: %v", ack.ReasonCode)
		}
		c = dial(t, s)
		c.v = packet.V31
		c.send(&packet.Connect{Version: packet.V31, CleanStart: true, ClientID: "c"})
		c.expectHex("20 02 00 01")
		c = dial(t, s)
		if ack := c.connect(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: "c"}); ack.ReasonCode != 0 {
			t.Fatalf("3.1.1 enabled: %v", ack.ReasonCode)
		}
	})
	t.Run("maximumQoS", func(t *testing.T) {
		_, c, ack := connectWith(t, func(st *settings.Settings) { st.MaximumQoS = 1 }, packet.Properties{})
		if !ack.Properties.Has(packet.PropMaximumQoS) || ack.Properties.MaximumQoS != 1 {
			t.Fatalf("CONNACK Maximum QoS: %+v", ack.Properties)
		}
		if a := c.subscribe(1, 0, packet.Subscription{Filter: "q", QoS: 2}); a.ReasonCodes[0] != 1 {
			t.Fatalf("granted %v", a.ReasonCodes)
		}
		c.send(pub("q", 2, 1, "x"))
		if d, ok := c.read().(*packet.Disconnect); !ok || d.ReasonCode != packet.QoSNotSupported {
			t.Fatalf("QoS 2 publish: %+v", d)
		}
	})
	t.Run("retainEnabled", func(t *testing.T) {
		_, c, ack := connectWith(t, func(st *settings.Settings) { st.RetainEnabled = false }, packet.Properties{})
		if !ack.Properties.Has(packet.PropRetainAvailable) || ack.Properties.RetainAvailable != 0 {
			t.Fatal("CONNACK does not say retain is unavailable")
		}
		p := pub("r", 0, 0, "x")
		p.Retain = true
		c.send(p)
		if d, ok := c.read().(*packet.Disconnect); !ok || d.ReasonCode != packet.RetainNotSupported {
			t.Fatalf("retained publish: %+v", d)
		}
	})
	t.Run("feature switches", func(t *testing.T) {
		_, c, ack := connectWith(t, func(st *settings.Settings) {
			st.WildcardSubscriptionEnabled, st.SharedSubscriptionEnabled, st.SubscriptionIdentifierEnabled = false, false, false
		}, packet.Properties{})
		for _, id := range []packet.PropID{packet.PropWildcardSubAvailable, packet.PropSharedSubAvailable, packet.PropSubIDAvailable} {
			if !ack.Properties.Has(id) {
				t.Fatalf("CONNACK lacks property %v = 0", id)
			}
		}
		a := c.subscribe(1, 0, packet.Subscription{Filter: "a/+"}, packet.Subscription{Filter: "$share/g/a"}, packet.Subscription{Filter: "a"})
		if fmt.Sprint(a.ReasonCodes) != fmt.Sprint([]packet.ReasonCode{packet.WildcardSubscriptionsNotSupported, packet.SharedSubscriptionsNotSupported, 0}) {
			t.Fatalf("SUBACK %v", a.ReasonCodes)
		}
		if a := c.subscribe(2, 7, packet.Subscription{Filter: "b"}); a.ReasonCodes[0] != packet.SubscriptionIdentifiersNotSupported {
			t.Fatalf("subscription id: %v", a.ReasonCodes)
		}
	})
	t.Run("topic limits", func(t *testing.T) {
		_, c, _ := connectWith(t, func(st *settings.Settings) { st.MaxTopicLevels, st.MaxTopicLength, st.MaxTopicLevelLength = 3, 20, 5 }, packet.Properties{})
		a := c.subscribe(1, 0, packet.Subscription{Filter: "a/b/c/d"}, packet.Subscription{Filter: "abcdef"},
			packet.Subscription{Filter: "a/b/c"}, packet.Subscription{Filter: strings.Repeat("a/", 10) + "a"})
		if fmt.Sprint(a.ReasonCodes) != fmt.Sprint([]packet.ReasonCode{0x8F, 0x8F, 0, 0x8F}) {
			t.Fatalf("SUBACK %v", a.ReasonCodes)
		}
		c.send(pub("a/b/c/d", 0, 0, "x"))
		if d, ok := c.read().(*packet.Disconnect); !ok || d.ReasonCode != packet.TopicNameInvalid {
			t.Fatalf("publish over the levels: %+v", d)
		}
	})
	t.Run("maxTopicAlias", func(t *testing.T) {
		_, c, ack := connectWith(t, func(st *settings.Settings) { st.MaxTopicAlias = 3 }, packet.Properties{})
		if ack.Properties.TopicAliasMaximum != 3 {
			t.Fatalf("CONNACK Topic Alias Maximum %d", ack.Properties.TopicAliasMaximum)
		}
		p := pub("t", 0, 0, "x")
		p.Properties.TopicAlias = 4
		c.send(p)
		if d, ok := c.read().(*packet.Disconnect); !ok || d.ReasonCode != packet.TopicAliasInvalid {
			t.Fatalf("alias over the maximum: %+v", d)
		}
	})
	t.Run("receivingMaximum", func(t *testing.T) {
		_, _, ack := connectWith(t, func(st *settings.Settings) { st.ReceivingMaximum = 7 }, packet.Properties{})
		if ack.Properties.ReceiveMaximum != 7 {
			t.Fatalf("CONNACK Receive Maximum %d", ack.Properties.ReceiveMaximum)
		}
		// Exceeding it: TestInboundReceiveMaximum.
	})
	t.Run("maxUserPayloadBytes", func(t *testing.T) {
		_, c, _ := connectWith(t, func(st *settings.Settings) { st.MaxUserPayloadBytes = 10 }, packet.Properties{})
		c.send(pub("p", 1, 1, "0123456789"))
		if a := c.read().(*packet.Puback); a.ReasonCode != packet.NoMatchingSubscribers {
			t.Fatalf("10 bytes: %v", a.ReasonCode)
		}
		c.send(pub("p", 1, 2, "0123456789x"))
		if a := c.read().(*packet.Puback); a.ReasonCode != packet.QuotaExceeded {
			t.Fatalf("11 bytes: %v", a.ReasonCode)
		}
	})
	t.Run("maxLastWillBytes", func(t *testing.T) {
		s := startServer(t, Options{Settings: tenantSettings(t, func(st *settings.Settings) { st.MaxLastWillBytes = 4 })})
		c := dial(t, s)
		cp := v5Connect("w", packet.Properties{})
		cp.WillFlag, cp.Will = true, packet.Will{Topic: "w", Payload: []byte("12345")}
		if ack := c.connect(cp); ack.ReasonCode != packet.PacketTooLarge {
			t.Fatalf("will over the limit: %v", ack.ReasonCode)
		}
	})
	t.Run("maxTopicFiltersPerSub", func(t *testing.T) {
		_, c, _ := connectWith(t, func(st *settings.Settings) { st.MaxTopicFiltersPerSub = 2 }, packet.Properties{})
		a := c.subscribe(1, 0, packet.Subscription{Filter: "a"}, packet.Subscription{Filter: "b"}, packet.Subscription{Filter: "c"})
		if fmt.Sprint(a.ReasonCodes) != fmt.Sprint([]packet.ReasonCode{0, 0, packet.QuotaExceeded}) {
			t.Fatalf("SUBACK %v", a.ReasonCodes)
		}
	})
	t.Run("maxSharedGroupMembers", func(t *testing.T) {
		s, c, _ := connectWith(t, func(st *settings.Settings) { st.MaxSharedGroupMembers = 1 }, packet.Properties{})
		c.subscribe(1, 0, packet.Subscription{Filter: "$share/g/t"})
		c2 := dial(t, s)
		c2.connect(v5Connect("c2", packet.Properties{}))
		if a := c2.subscribe(1, 0, packet.Subscription{Filter: "$share/g/t"}); a.ReasonCodes[0] != packet.QuotaExceeded {
			t.Fatalf("second member: %v", a.ReasonCodes)
		}
	})
	t.Run("msgPubPerSec", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := startServer(t, Options{Registerer: reg, Settings: tenantSettings(t, func(st *settings.Settings) { st.MsgPubPerSec = 5 })})
		c := dial(t, s)
		c.connect(v5Connect("c", packet.Properties{}))
		throttled := 0
		for i := uint16(1); i <= 20; i++ {
			c.send(pub("r", 1, i, "x"))
			if a := c.read().(*packet.Puback); a.ReasonCode == packet.QuotaExceeded {
				throttled++
			}
		}
		if throttled < 10 {
			t.Fatalf("20 publishes at once with 5/s allowed: %d throttled", throttled)
		}
		if got := gathered(t, reg, `bifromq_mqtt_events_total{tenant="DevOnly",type="throttled"}`); got != float64(throttled) {
			t.Fatalf("throttled events %v, want %d", got, throttled)
		}
	})
	t.Run("bandwidth", func(t *testing.T) {
		// 20 KB through a 10 KB/s inbound limit (burst 10 KB) takes about
		// a second; so does 20 KB out through a 10 KB/s outbound limit.
		s := startServer(t, Options{Settings: tenantSettings(t, func(st *settings.Settings) {
			st.InBoundBandWidth, st.OutBoundBandWidth = 10_000, 10_000
		})})
		sub := dial(t, s)
		sub.connect(v5Connect("sub", packet.Properties{}))
		sub.subscribe(1, 0, packet.Subscription{Filter: "bw"})
		c := dial(t, s)
		c.connect(v5Connect("c", packet.Properties{}))
		start := time.Now()
		payload := string(bytes.Repeat([]byte("x"), 1000))
		for i := uint16(1); i <= 20; i++ {
			c.send(pub("bw", 1, i, payload))
		}
		for i := 0; i < 20; i++ {
			c.read()
		}
		in := time.Since(start)
		for i := 0; i < 20; i++ {
			sub.readPublish()
		}
		if in < 700*time.Millisecond {
			t.Fatalf("20 KB in %v through 10 KB/s", in)
		}
		if all := time.Since(start); all < 700*time.Millisecond {
			t.Fatalf("delivered in %v through 10 KB/s", all)
		}
	})
}
