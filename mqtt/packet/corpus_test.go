package packet

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/corpus.txt from the corpus table")

// corpusEntry is one packet of the golden corpus, named after the spec
// clause it exercises.
type corpusEntry struct {
	name string
	v    Version
	p    Packet
}

func mark(p Properties, ids ...PropID) Properties {
	for _, id := range ids {
		p.Mark(id)
	}
	return p
}

// corpus lists every packet type of every version, with every v5 property.
// The bytes in testdata/corpus.txt were produced from it with -rewrite and
// are checked independently against the paho decoders (TestCorpusAgainstPaho).
func corpus() []corpusEntry {
	var es []corpusEntry
	add := func(name string, v Version, p Packet) { es = append(es, corpusEntry{name, v, p}) }
	for _, v := range []Version{V31, V311, V5} {
		tag := "v" + strings.ReplaceAll(v.String(), ".", "")
		add(tag+"/connect/minimal [3.1]", v, &Connect{CleanStart: true, KeepAlive: 60, ClientID: "c1"})
		add(tag+"/connect/will-user-password [3.1.2.5-3.1.3.5]", v, &Connect{KeepAlive: 30, ClientID: "dev-7",
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("s3cret"),
			WillFlag: true, Will: Will{QoS: 1, Retain: true, Topic: "dev/7/status", Payload: []byte("offline")}})
		add(tag+"/connect/will-qos2 [3.1.2.6]", v, &Connect{CleanStart: true, ClientID: "w",
			WillFlag: true, Will: Will{QoS: 2, Topic: "a/b", Payload: nil}})
		add(tag+"/connack/accepted [3.2]", v, &Connack{})
		if v != V31 {
			add(tag+"/connack/session-present [3.2.2.1.1]", v, &Connack{SessionPresent: true})
		}
		add(tag+"/connack/not-authorized [3.2.2.2]", v, &Connack{ReasonCode: NotAuthorized})
		add(tag+"/connack/bad-credentials [3.2.2.2]", v, &Connack{ReasonCode: BadUserNameOrPassword})
		add(tag+"/connack/unavailable [3.2.2.2]", v, &Connack{ReasonCode: ServerUnavailable})
		add(tag+"/publish/qos0 [3.3]", v, &Publish{Topic: []byte("a/b"), Payload: []byte("hello")})
		add(tag+"/publish/qos0-retain-empty [3.3.1.3]", v, &Publish{Retain: true, Topic: []byte("a/b")})
		add(tag+"/publish/qos1 [3.3.2.2]", v, &Publish{QoS: 1, Topic: []byte("t"), PacketID: 1, Payload: []byte{0, 1, 2}})
		add(tag+"/publish/qos2-dup [3.3.1.1]", v, &Publish{Dup: true, QoS: 2, Topic: []byte("x/y/z"), PacketID: 65535, Payload: []byte("p")})
		add(tag+"/publish/utf8-topic [1.5.4]", v, &Publish{Topic: []byte("sensor/temp/\u00e9\u6e29"), Payload: []byte("21.5")})
		add(tag+"/puback [3.4]", v, &Puback{PacketID: 7})
		add(tag+"/pubrec [3.5]", v, &Pubrec{PacketID: 8})
		add(tag+"/pubrel [3.6]", v, &Pubrel{PacketID: 9})
		add(tag+"/pubcomp [3.7]", v, &Pubcomp{PacketID: 10})
		add(tag+"/subscribe/one [3.8]", v, &Subscribe{PacketID: 11, Subscriptions: []Subscription{{Filter: "a/+/c", QoS: 1}}})
		add(tag+"/subscribe/many [3.8.3]", v, &Subscribe{PacketID: 12, Subscriptions: []Subscription{
			{Filter: "#", QoS: 0}, {Filter: "a/b", QoS: 2}, {Filter: "$SYS/#", QoS: 1}}})
		add(tag+"/suback [3.9]", v, &Suback{PacketID: 12, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS2, GrantedQoS1}})
		if v != V31 {
			add(tag+"/suback/failure [3.9.3]", v, &Suback{PacketID: 13, ReasonCodes: []ReasonCode{UnspecifiedError, GrantedQoS1}})
		}
		add(tag+"/unsubscribe [3.10]", v, &Unsubscribe{PacketID: 14, Filters: []string{"a/+/c", "#"}})
		if v == V5 {
			add(tag+"/unsuback [3.11]", v, &Unsuback{PacketID: 14, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}})
		} else {
			add(tag+"/unsuback [3.11]", v, &Unsuback{PacketID: 14})
		}
		add(tag+"/pingreq [3.12]", v, &Pingreq{})
		add(tag+"/pingresp [3.13]", v, &Pingresp{})
		add(tag+"/disconnect [3.14]", v, &Disconnect{})
	}
	// v5 only: every property, reason codes, the short forms.
	add("v50/connect/all-properties [3.1.2.11]", V5, &Connect{CleanStart: true, KeepAlive: 10, ClientID: "props",
		Properties: mark(Properties{SessionExpiry: 3600, AuthMethod: "SCRAM-SHA-1", AuthData: []byte{1, 2, 3},
			RequestProblemInfo: 0, RequestResponseInfo: 1, ReceiveMaximum: 20, TopicAliasMaximum: 5,
			User: []UserProperty{{"region", "eu"}, {"region", "us"}}, MaximumPacketSize: 65536}, PropRequestProblemInfo),
		WillFlag: true, Will: Will{QoS: 1, Topic: "will/t", Payload: []byte("bye"),
			Properties: mark(Properties{PayloadFormat: 0, MessageExpiry: 120, ContentType: "text/plain",
				ResponseTopic: "reply/here", CorrelationData: []byte("corr"), WillDelay: 30,
				User: []UserProperty{{"k", "v"}}}, PropPayloadFormat)}})
	add("v50/connect/password-without-user [3.1.2.9]", V5, &Connect{ClientID: "p", PasswordFlag: true, Password: []byte("token")})
	add("v50/connect/empty-client-id [3.1.3.1]", V5, &Connect{CleanStart: true})
	add("v50/connack/all-properties [3.2.2.3]", V5, &Connack{Properties: mark(Properties{SessionExpiry: 60,
		AssignedClientID: "auto-1", ServerKeepAlive: 30, AuthMethod: "m", AuthData: []byte("d"),
		ResponseInfo: "resp/", ServerReference: "other:1883", ReasonString: "welcome",
		ReceiveMaximum: 200, TopicAliasMaximum: 10, MaximumQoS: 1, RetainAvailable: 0,
		User: []UserProperty{{"a", "b"}}, MaximumPacketSize: 1048576, WildcardSubAvailable: 1,
		SubIDAvailable: 1, SharedSubAvailable: 0}, PropRetainAvailable, PropSharedSubAvailable)})
	add("v50/connack/quota-exceeded [3.2.2.2]", V5, &Connack{ReasonCode: QuotaExceeded,
		Properties: Properties{ReasonString: "too many connections"}})
	add("v50/publish/all-properties [3.3.2.3]", V5, &Publish{QoS: 1, Topic: []byte("req/1"), PacketID: 300,
		Properties: Properties{PayloadFormat: 1, MessageExpiry: 10, ContentType: "application/json",
			ResponseTopic: "resp/1", CorrelationData: []byte{0xde, 0xad}, SubscriptionIDs: []uint32{1, 268435455},
			TopicAlias: 3, User: []UserProperty{{"x", "1"}, {"x", "2"}}}, Payload: []byte(`{"a":1}`)})
	add("v50/publish/alias-only [3.3.2.3.4]", V5, &Publish{Properties: Properties{TopicAlias: 3}, Payload: []byte("v")})
	add("v50/puback/no-subscribers [3.4.2.1]", V5, &Puback{PacketID: 1, ReasonCode: NoMatchingSubscribers})
	add("v50/puback/with-properties [3.4.2.2]", V5, &Puback{PacketID: 2, ReasonCode: NotAuthorized,
		Properties: Properties{ReasonString: "denied", User: []UserProperty{{"acl", "rule-3"}}}})
	add("v50/pubrec/reason [3.5.2.1]", V5, &Pubrec{PacketID: 3, ReasonCode: QuotaExceeded})
	add("v50/pubrel/not-found [3.6.2.1]", V5, &Pubrel{PacketID: 4, ReasonCode: PacketIdentifierNotFound})
	add("v50/pubcomp/properties [3.7.2.2]", V5, &Pubcomp{PacketID: 5, Properties: Properties{ReasonString: "ok"}})
	add("v50/subscribe/options [3.8.3.1]", V5, &Subscribe{PacketID: 20,
		Properties: Properties{SubscriptionIDs: []uint32{42}, User: []UserProperty{{"u", "v"}}},
		Subscriptions: []Subscription{
			{Filter: "a/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "$share/g1/b/+", QoS: 1, RetainHandling: 1}}})
	add("v50/suback/codes [3.9.3]", V5, &Suback{PacketID: 20, Properties: Properties{ReasonString: "partial"},
		ReasonCodes: []ReasonCode{GrantedQoS2, NotAuthorized, TopicFilterInvalid, SharedSubscriptionsNotSupported,
			SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported, QuotaExceeded}})
	add("v50/unsubscribe/properties [3.10.2.1]", V5, &Unsubscribe{PacketID: 21,
		Properties: Properties{User: []UserProperty{{"why", "done"}}}, Filters: []string{"a/#"}})
	add("v50/unsuback/codes [3.11.3]", V5, &Unsuback{PacketID: 21, Properties: Properties{ReasonString: "r"},
		ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted, NotAuthorized, TopicFilterInvalid}})
	add("v50/disconnect/reason-only [3.14.2.1]", V5, &Disconnect{ReasonCode: ServerShuttingDown})
	add("v50/disconnect/with-will [3.14.2.1]", V5, &Disconnect{ReasonCode: DisconnectWithWillMessage})
	add("v50/disconnect/properties [3.14.2.2]", V5, &Disconnect{ReasonCode: UseAnotherServer,
		Properties: Properties{SessionExpiry: 0xFFFFFFFF, ServerReference: "b:1883", ReasonString: "move",
			User: []UserProperty{{"k", "v"}}}})
	add("v50/auth/success [3.15]", V5, &Auth{})
	add("v50/auth/continue [3.15.2.1]", V5, &Auth{ReasonCode: ContinueAuthentication,
		Properties: Properties{AuthMethod: "SCRAM-SHA-256", AuthData: []byte("challenge"), ReasonString: "step 2",
			User: []UserProperty{{"a", "b"}}}})
	add("v50/auth/reauthenticate [3.15.2.1]", V5, &Auth{ReasonCode: ReAuthenticate,
		Properties: Properties{AuthMethod: "SCRAM-SHA-256"}})
	return es
}

// golden is one entry of testdata/corpus.txt.
type golden struct {
	name string
	v    Version
	raw  []byte
	dump string
}

const corpusFile = "testdata/corpus.txt"

// dump renders a packet for the golden file: its non-zero fields in
// declaration order, byte slices quoted, properties as Properties.String.
func dump(p Packet) string {
	var b strings.Builder
	b.WriteString(p.Type().String())
	dumpValue(&b, reflect.ValueOf(p).Elem())
	return b.String()
}

func dumpValue(b *strings.Builder, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if props, ok := v.Addr().Interface().(*Properties); ok {
			b.WriteString(props.String())
			return
		}
		b.WriteString("{")
		first := true
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !v.Type().Field(i).IsExported() || f.IsZero() {
				continue
			}
			if props, ok := f.Addr().Interface().(*Properties); ok && props.String() == "{}" {
				continue
			}
			if !first {
				b.WriteString(" ")
			}
			first = false
			b.WriteString(v.Type().Field(i).Name + ":")
			dumpValue(b, f)
		}
		b.WriteString("}")
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			fmt.Fprintf(b, "%q", v.Bytes())
			return
		}
		b.WriteString("[")
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			dumpValue(b, v.Index(i))
		}
		b.WriteString("]")
	case reflect.String:
		fmt.Fprintf(b, "%q", v.String())
	default:
		if rc, ok := v.Interface().(ReasonCode); ok {
			fmt.Fprintf(b, "0x%02x", byte(rc))
			return
		}
		fmt.Fprint(b, v.Interface())
	}
}

func readCorpus(t testing.TB) []golden {
	t.Helper()
	f, err := os.Open(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var gs []golden
	var g golden
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, val, _ := strings.Cut(line, ": ")
		switch key {
		case "name":
			g = golden{name: val}
		case "version":
			fmt.Sscan(val, (*byte)(&g.v))
		case "hex":
			g.raw, err = hex.DecodeString(strings.ReplaceAll(val, " ", ""))
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
		case "decoded":
			g.dump = val
			gs = append(gs, g)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return gs
}

func spacedHex(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}

func decodeOne(t testing.TB, raw []byte, v Version, max int) (Packet, error) {
	t.Helper()
	r := NewReader(bytes.NewReader(raw), max)
	defer r.Release()
	h, body, err := r.ReadPacket()
	if err != nil {
		return nil, err
	}
	if r.Buffered() != 0 {
		return nil, fmt.Errorf("%d bytes after the packet", r.Buffered())
	}
	return Decode(h, bytes.Clone(body), v)
}

func TestCorpusGolden(t *testing.T) {
	if *rewrite {
		var b strings.Builder
		b.WriteString("# Golden MQTT packets: name [spec clause], protocol level, wire bytes, decoded form.\n")
		b.WriteString("# Generated by `go test ./mqtt/packet -run TestCorpusGolden -rewrite`; every entry must\n")
		b.WriteString("# decode to its decoded form and encode back to the same bytes.\n")
		for _, e := range corpus() {
			raw, err := Encode(e.p, e.v)
			if err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			p, err := decodeOne(t, raw, e.v, MaxPacketSize)
			if err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			fmt.Fprintf(&b, "\nname: %s\nversion: %d\nhex: %s\ndecoded: %s\n", e.name, e.v, spacedHex(raw), dump(p))
		}
		if err := os.WriteFile(corpusFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gs := readCorpus(t)
	if len(gs) != len(corpus()) {
		t.Fatalf("%s has %d entries, the corpus table %d: run with -rewrite", corpusFile, len(gs), len(corpus()))
	}
	seen := map[Type]map[Version]bool{}
	for _, g := range gs {
		t.Run(g.name, func(t *testing.T) {
			p, err := decodeOne(t, g.raw, g.v, MaxPacketSize)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := dump(p); got != g.dump {
				t.Fatalf("decoded\n got %s\nwant %s", got, g.dump)
			}
			out, err := Encode(p, g.v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(out, g.raw) {
				t.Fatalf("re-encoded\n got %s\nwant %s", spacedHex(out), spacedHex(g.raw))
			}
		})
		if seen[Type(g.raw[0]>>4)] == nil {
			seen[Type(g.raw[0]>>4)] = map[Version]bool{}
		}
		seen[Type(g.raw[0]>>4)][g.v] = true
	}
	for ty := CONNECT; ty <= AUTH; ty++ {
		for _, v := range []Version{V31, V311, V5} {
			if ty == AUTH && v != V5 {
				continue
			}
			if !seen[ty][v] {
				t.Errorf("the corpus has no %s for %s", ty, v)
			}
		}
	}
}
