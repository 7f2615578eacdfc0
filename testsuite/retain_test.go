package testsuite

import (
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
)

// wantRetained requires a retained message (RETAIN set) with this topic,
// payload and QoS.
func wantRetained(t *testing.T, who string, m *paho.Publish, topic, payload string, qos byte) {
	t.Helper()
	if m == nil {
		t.Fatalf("%s: no message; want retained topic %q payload %q", who, topic, payload)
	}
	if m.Topic != topic || string(m.Payload) != payload || m.QoS != qos || !m.Retain {
		t.Fatalf("%s: got %s; want retained topic %q payload %q QoS %d", who, show5(m), topic, payload, qos)
	}
}

// nextByTopic receives n messages on c, by topic (the last of a topic).
func nextByTopic(t *testing.T, c *v5Client, n int) map[string]*paho.Publish {
	t.Helper()
	got := map[string]*paho.Publish{}
	for range n {
		m := c.next(t)
		got[m.Topic] = m
	}
	return got
}

func pubRetained(t *testing.T, c *v5Client, topic string, qos byte, payload string) {
	t.Helper()
	c.publish(t, &paho.Publish{Topic: topic, QoS: qos, Retain: true, Payload: []byte(payload)})
}

// TestRetainBasics: a retained message is kept per topic (the last one
// wins), delivered on subscribe with RETAIN set at min(QoS), cleared by an
// empty payload; live messages carry RETAIN only with retain-as-published;
// v3 subscribers get retained messages with RETAIN set and live ones
// without.
func TestRetainBasics(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	pub := connectV5(t, n, "rpub", nil)
	if pub.ack.Properties != nil && !pub.ack.Properties.RetainAvailable {
		t.Fatal("CONNACK says retain is not available")
	}
	pubRetained(t, pub, "rb/a", 1, "old")
	pubRetained(t, pub, "rb/a", 1, "a1")
	pubRetained(t, pub, "rb/b/c", 2, "bc")
	pubRetained(t, pub, "rb/x", 0, "x")
	pubRetained(t, pub, "rb/x", 1, "") // clears rb/x (QoS 1: acknowledged once kept)

	s := connectV5(t, n, "rsub", nil)
	s.sub(t, paho.SubscribeOptions{Topic: "rb/#", QoS: 1})
	got := nextByTopic(t, s, 2)
	wantRetained(t, "rsub", got["rb/a"], "rb/a", "a1", 1)
	wantRetained(t, "rsub", got["rb/b/c"], "rb/b/c", "bc", 1) // QoS 2 retained, subscribed at 1
	s.quiet(t, 300*time.Millisecond)

	// Live: RETAIN only with retain-as-published.
	rap := connectV5(t, n, "rrap", nil)
	rap.sub(t, paho.SubscribeOptions{Topic: "rb/live", QoS: 0, RetainAsPublished: true})
	pubRetained(t, pub, "rb/live", 0, "L")
	if m := s.next(t); m.Retain || string(m.Payload) != "L" {
		t.Fatalf("live message without RAP: %s", show5(m))
	}
	if m := rap.next(t); !m.Retain || string(m.Payload) != "L" {
		t.Fatalf("live message with RAP: %s", show5(m))
	}

	// v3: retained on subscribe with RETAIN, live without.
	v3 := connectV3(t, n, "rv3", nil)
	v3.sub(t, map[string]byte{"rb/a": 1})
	if m := v3.next(t); !m.Retained() || string(m.Payload()) != "a1" {
		t.Fatalf("v3 retained: %s", show3(m))
	}
	pubRetained(t, pub, "rb/a", 1, "a2")
	if m := v3.next(t); m.Retained() || string(m.Payload()) != "a2" {
		t.Fatalf("v3 live: %s", show3(m))
	}
}

// TestRetainHandling: retain handling 0 sends retained messages on every
// subscribe, 1 only when the subscription is new, 2 never; shared
// subscriptions get none.
func TestRetainHandling(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	pub := connectV5(t, n, "hpub", nil)
	pubRetained(t, pub, "rh/t", 1, "r")
	c := connectV5(t, n, "hsub", nil)
	for _, step := range []struct {
		filter string
		rh     byte
		want   bool
	}{
		{"rh/t", 0, true},
		{"rh/t", 0, true},  // again: a re-subscribe with 0 sends again
		{"rh/t", 1, false}, // exists already
		{"rh/+", 1, true},  // new
		{"rh/#", 2, false},
		{"$share/g/rh/t", 0, false},
	} {
		c.sub(t, paho.SubscribeOptions{Topic: step.filter, QoS: 1, RetainHandling: step.rh})
		if step.want {
			wantRetained(t, step.filter, c.next(t), "rh/t", "r", 1)
		}
		c.quiet(t, 300*time.Millisecond)
	}
}

// TestRetainExpiryLimitRestart: an expired retained message is not sent;
// RetainMessageMatchLimit caps the messages per subscription; retained
// messages survive a restart of the broker.
func TestRetainExpiryLimitRestart(t *testing.T) {
	cfg := NodeConfig(t)
	cfg.Tenants.Defaults.RetainMessageMatchLimit = 3
	n := StartNode(t, cfg)
	pub := connectV5(t, n, "lpub", nil)
	exp := uint32(1)
	pub.publish(t, &paho.Publish{Topic: "lim/exp", QoS: 1, Retain: true, Payload: []byte("soon gone"),
		Properties: &paho.PublishProperties{MessageExpiry: &exp}})
	for _, tp := range []string{"lim/a", "lim/b", "lim/c", "lim/d", "lim/e"} {
		pubRetained(t, pub, tp, 1, tp)
	}
	time.Sleep(1100 * time.Millisecond)
	s := connectV5(t, n, "lsub", nil)
	s.sub(t, paho.SubscribeOptions{Topic: "lim/#", QoS: 1})
	var topics []string
	for range 3 {
		m := s.next(t)
		if !m.Retain || m.Topic == "lim/exp" {
			t.Fatalf("got %s", show5(m))
		}
		topics = append(topics, m.Topic)
	}
	s.quiet(t, 300*time.Millisecond)
	s2 := connectV5(t, n, "lsub2", nil)
	s2.sub(t, paho.SubscribeOptions{Topic: "lim/exp", QoS: 1})
	s2.quiet(t, 300*time.Millisecond)
	sort.Strings(topics)
	t.Logf("limit 3 sent %v", topics)

	// Restart on the same data dir.
	n.Close()
	n = StartNode(t, cfg)
	s3 := connectV5(t, n, "lsub3", nil)
	s3.sub(t, paho.SubscribeOptions{Topic: "lim/e", QoS: 1})
	wantRetained(t, "after restart", s3.next(t), "lim/e", "lim/e", 1)
}

// TestRetainWill: a will with RETAIN is published as a retained message
// (MQTT-3.1.2-17): a client subscribing after it gets it on subscribe. A
// will due at once (transient session) and a delayed one (kept by the
// inbox until its delay has passed) alike; a will without RETAIN is
// published only.
func TestRetainWill(t *testing.T) {
	n := StartNode(t, NodeConfig(t))
	live := connectV5(t, n, "rw-live", nil)
	live.sub(t, paho.SubscribeOptions{Topic: "rw/#", QoS: 1})

	now := dialRaw(t, n, true, "rw-now", &rawWill{topic: "rw/now", payload: "gone now", qos: 1, retain: true}, nil)
	plain := dialRaw(t, n, true, "rw-plain", &rawWill{topic: "rw/plain", payload: "not kept", qos: 1}, nil)
	later, _ := dialSession(t, n, true, "rw-later", true, 10,
		&rawWill{topic: "rw/later", payload: "gone later", qos: 1, retain: true, props: willDelay(1)})
	now.nc.Close()
	plain.nc.Close()
	later.nc.Close()
	// The live subscriber sees all three (the delayed one about a second
	// later); each is stored, if at all, before it is published.
	if seen := nextByTopic(t, live, 3); seen["rw/now"] == nil || seen["rw/plain"] == nil || seen["rw/later"] == nil {
		t.Fatalf("live subscriber got wills %v, want rw/now, rw/plain and rw/later", slices.Sorted(maps.Keys(seen)))
	}

	late := connectV5(t, n, "rw-late", nil)
	late.sub(t, paho.SubscribeOptions{Topic: "rw/#", QoS: 1})
	got := nextByTopic(t, late, 2)
	wantRetained(t, "rw-late", got["rw/now"], "rw/now", "gone now", 1)
	wantRetained(t, "rw-late", got["rw/later"], "rw/later", "gone later", 1)
	late.quiet(t, quietFor) // and not rw/plain
}
