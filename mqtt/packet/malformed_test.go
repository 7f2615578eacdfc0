package packet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// malformed lists packets a strict receiver must refuse, each with the
// reason code it must report, named after the rule it breaks.
var malformed = []struct {
	name string
	v    Version
	hex  string
	want ReasonCode
}{
	// Fixed header and remaining length [MQTT-2.1, 1.5.5].
	{"reserved packet type 0", V311, "00 00", MalformedPacket},
	{"AUTH before v5", V311, "f0 00", MalformedPacket},
	{"remaining length over 4 bytes", V311, "30 ff ff ff ff 7f", MalformedPacket},
	{"remaining length not minimal", V5, "c0 80 00", MalformedPacket},
	{"PUBLISH QoS 3", V311, "36 03 00 01 61", MalformedPacket},
	{"PUBLISH DUP on QoS 0", V311, "38 03 00 01 61", MalformedPacket},
	{"PUBREL flags 0", V311, "60 02 00 01", MalformedPacket},
	{"PUBACK reserved flags", V311, "42 02 00 01", MalformedPacket},
	{"SUBSCRIBE flags 0", V311, "80 06 00 01 00 01 61 00", MalformedPacket},
	{"UNSUBSCRIBE flags 0", V311, "a0 05 00 01 00 01 61", MalformedPacket},
	{"PINGREQ reserved flags", V311, "c1 00", MalformedPacket},
	{"PINGREQ with a body", V311, "c0 01 00", MalformedPacket},
	{"CONNECT reserved header flags", V311, "11 0c 00 04 4d 51 54 54 04 02 00 3c 00 00", MalformedPacket},
	{"v3 DISCONNECT with a body", V311, "e0 01 00", MalformedPacket},
	{"v3 UNSUBACK with codes", V311, "b0 03 00 01 00", MalformedPacket},
	// UTF-8 strings [MQTT-1.5.4].
	{"topic with U+0000", V311, "30 05 00 03 61 00 62", MalformedPacket},
	{"topic with a surrogate", V311, "30 05 00 03 ed a0 80", MalformedPacket},
	{"topic with an overlong encoding", V311, "30 04 00 02 c0 af", MalformedPacket},
	{"topic with a truncated sequence", V311, "30 03 00 01 e2", MalformedPacket},
	{"client identifier with U+0000", V311, "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 00", MalformedPacket},
	{"topic filter not UTF-8", V311, "82 06 00 01 00 01 ff 00", MalformedPacket},
	{"user property not UTF-8", V5, "30 0b 00 01 61 07 26 00 01 ff 00 01 62", MalformedPacket},
	{"string longer than the packet", V311, "30 03 00 05 61", MalformedPacket},
	// Topic names [MQTT-3.3.2-2, 4.7].
	{"PUBLISH topic with +", V311, "30 05 00 03 61 2f 2b", TopicNameInvalid},
	{"PUBLISH topic with #", V5, "30 04 00 01 23 00", TopicNameInvalid},
	{"PUBLISH empty topic (v3)", V311, "30 02 00 00", ProtocolError},
	{"PUBLISH empty topic without alias (v5)", V5, "30 03 00 00 00", ProtocolError},
	{"will topic with a wildcard", V311, "10 13 00 04 4d 51 54 54 04 06 00 3c 00 00 00 03 61 2f 23 00 00", TopicNameInvalid},
	// Packet identifier 0 [MQTT-2.2.1-3].
	{"PUBLISH QoS 1 packet id 0", V311, "32 05 00 01 61 00 00", ProtocolError},
	{"PUBACK packet id 0", V311, "40 02 00 00", ProtocolError},
	{"PUBREL packet id 0", V5, "62 02 00 00", ProtocolError},
	{"SUBSCRIBE packet id 0", V311, "82 06 00 00 00 01 61 00", ProtocolError},
	{"UNSUBSCRIBE packet id 0", V311, "a2 05 00 00 00 01 61", ProtocolError},
	{"SUBACK packet id 0", V311, "90 03 00 00 00", ProtocolError},
	// SUBSCRIBE / UNSUBSCRIBE payloads [MQTT-3.8.3, 3.10.3].
	{"SUBSCRIBE without filters", V311, "82 02 00 01", ProtocolError},
	{"UNSUBSCRIBE without filters", V311, "a2 02 00 01", ProtocolError},
	{"SUBSCRIBE v3 reserved option bits", V311, "82 06 00 01 00 01 61 04", MalformedPacket},
	{"SUBSCRIBE v5 reserved option bits", V5, "82 07 00 01 00 00 01 61 40", MalformedPacket},
	{"SUBSCRIBE QoS 3", V311, "82 06 00 01 00 01 61 03", MalformedPacket},
	{"SUBSCRIBE retain handling 3", V5, "82 07 00 01 00 00 01 61 30", ProtocolError},
	// Properties [MQTT-2.2.2].
	{"duplicate property", V5, "30 0e 00 01 61 0a 02 00 00 00 01 02 00 00 00 02", ProtocolError},
	{"property not allowed on PUBLISH", V5, "30 09 00 01 61 05 11 00 00 00 01", MalformedPacket},
	{"reason string on PUBLISH", V5, "30 08 00 01 61 04 1f 00 01 61", MalformedPacket},
	{"unknown property identifier", V5, "30 06 00 01 61 02 7f 00", MalformedPacket},
	{"property length past the packet", V5, "30 05 00 01 61 09 01", MalformedPacket},
	{"property value past the property length", V5, "30 06 00 01 61 02 02 00", MalformedPacket},
	{"topic alias 0", V5, "30 07 00 01 61 03 23 00 00", TopicAliasInvalid},
	{"payload format 2", V5, "30 06 00 01 61 02 01 02", ProtocolError},
	{"subscription identifier 0", V5, "82 09 00 01 02 0b 00 00 01 61 00", ProtocolError},
	{"two subscription identifiers on SUBSCRIBE", V5, "82 0b 00 01 04 0b 01 0b 02 00 01 61 00", ProtocolError},
	{"receive maximum 0", V5, "10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", ProtocolError},
	{"maximum packet size 0", V5, "10 12 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 00", ProtocolError},
	{"request problem information 2", V5, "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 17 02 00 00", ProtocolError},
	{"authentication data without method", V5, "10 11 00 04 4d 51 54 54 05 02 00 3c 04 16 00 01 aa 00 00", ProtocolError},
	// CONNECT [MQTT-3.1.2].
	{"CONNECT reserved flag", V311, "10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00", MalformedPacket},
	{"CONNECT will QoS 3", V311, "10 0c 00 04 4d 51 54 54 04 1e 00 3c 00 00", MalformedPacket},
	{"CONNECT will QoS without will", V311, "10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00", MalformedPacket},
	{"CONNECT will retain without will", V311, "10 0c 00 04 4d 51 54 54 04 22 00 3c 00 00", MalformedPacket},
	{"CONNECT password without user name (v3)", V311, "10 0e 00 04 4d 51 54 54 04 42 00 3c 00 00 00 00", MalformedPacket},
	{"CONNECT level 6", V311, "10 0c 00 04 4d 51 54 54 06 02 00 3c 00 00", UnsupportedProtocolVersion},
	{"CONNECT MQIsdp level 4", V311, "10 0e 00 06 4d 51 49 73 64 70 04 02 00 3c 00 00", UnsupportedProtocolVersion},
	{"CONNECT unknown protocol name", V311, "10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00", UnsupportedProtocolVersion},
	{"CONNECT trailing bytes", V311, "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 00 ff", MalformedPacket},
	{"CONNECT truncated", V311, "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 05", MalformedPacket},
	// Reason codes not allowed on the packet [MQTT-2.4].
	{"PUBACK reason 0x04", V5, "40 03 00 01 04", ProtocolError},
	{"PUBREL reason 0x10", V5, "62 03 00 01 10", ProtocolError},
	{"DISCONNECT reason 0x10", V5, "e0 01 10", ProtocolError},
	{"CONNACK v3 return code 6", V311, "20 02 00 06", MalformedPacket},
	{"CONNACK reserved acknowledge flags", V311, "20 02 02 00", MalformedPacket},
	{"CONNACK session present with a failure", V5, "20 03 01 87 00", ProtocolError},
	{"SUBACK v3 code 3", V311, "90 03 00 01 03", ProtocolError},
	{"SUBACK v5 code 0x10", V5, "90 04 00 01 00 10", ProtocolError},
	{"UNSUBACK v5 code 0x01", V5, "b0 04 00 01 00 01", ProtocolError},
	{"AUTH reason without property length", V5, "f0 01 18", MalformedPacket},
	{"AUTH reason 0x87", V5, "f0 02 87 00", ProtocolError},
}

func TestMalformed(t *testing.T) {
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := hex.DecodeString(strings.ReplaceAll(tc.hex, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			p, err := decodeOne(t, raw, tc.v, MaxPacketSize)
			if err == nil {
				t.Fatalf("decoded %s, want error %v", dump(p), tc.want)
			}
			if !errors.Is(err, tc.want) || CodeOf(err) != tc.want {
				t.Fatalf("error %v (code %#x), want code %#x", err, byte(CodeOf(err)), byte(tc.want))
			}
		})
	}
}

func TestValidateTopicFilter(t *testing.T) {
	good := []string{"#", "+", "a", "/", "a/b", "a/+/b", "+/+", "a/#", "/#", "a//b", "+/#",
		"$SYS/#", "$share/g/#", "$share/g/a/+/b", "$oshare/g/a", "sport/tennis/+/\u00e9"}
	bad := []string{"", "a/#/b", "a#", "#a", "a/b#", "a+", "+a", "a/b+/c", "a/+b", "##", "++",
		"$share/", "$share/g", "$share//a", "$share/g/", "$share/g+/a", "$share/g#/a", "$oshare/g",
		"a\x00b", "\xff", "\xed\xa0\x80", strings.Repeat("a", 65536)}
	for _, f := range good {
		if err := ValidateTopicFilter(f); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
	for _, f := range bad {
		err := ValidateTopicFilter(f)
		if !errors.Is(err, TopicFilterInvalid) {
			t.Errorf("%q: got %v, want %v", f, err, TopicFilterInvalid)
		}
	}
}

func TestValidateTopicName(t *testing.T) {
	for _, n := range []string{"a", "/", "a/b", "$SYS/x", "a//b", " ", "\u00e9/\u6e29"} {
		if err := ValidateTopicName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "+", "#", "a/+", "a/#", "a\x00", "\xed\xb0\x80", strings.Repeat("x", 65536)} {
		if err := ValidateTopicName(n); !errors.Is(err, TopicNameInvalid) {
			t.Errorf("%q: got %v, want %v", n, err, TopicNameInvalid)
		}
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// TestPacketTooLarge checks that a packet over the negotiated maximum is
// refused from its fixed header, before its body is read or allocated.
func TestPacketTooLarge(t *testing.T) {
	body := append([]byte{0, 1, 'a'}, bytes.Repeat([]byte("x"), 1<<20)...)
	raw := append([]byte{0x30}, appendVarint(nil, uint32(len(body)))...)
	raw = append(raw, body...)
	src := &countingReader{r: bytes.NewReader(raw)}
	r := NewReader(src, 1024)
	defer r.Release()
	h, _, err := r.ReadPacket()
	if !errors.Is(err, PacketTooLarge) {
		t.Fatalf("got %v, want %v", err, PacketTooLarge)
	}
	if h.Type != PUBLISH || h.Remaining != len(body) {
		t.Fatalf("header %+v", h)
	}
	if src.n > ReadBufferSize {
		t.Fatalf("read %d bytes of a refused packet", src.n)
	}
	// Exactly at the limit is accepted.
	small := []byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}
	r2 := NewReader(bytes.NewReader(small), len(small))
	defer r2.Release()
	if _, _, err := r2.ReadPacket(); err != nil {
		t.Fatalf("packet at the limit: %v", err)
	}
	r3 := NewReader(bytes.NewReader(small), len(small)-1)
	defer r3.Release()
	if _, _, err := r3.ReadPacket(); !errors.Is(err, PacketTooLarge) {
		t.Fatalf("packet one byte over the limit: %v", err)
	}
}

// TestReaderStream checks packet framing over a stream that delivers one
// byte at a time, a large body that grows its buffer, and the EOF rules.
func TestReaderStream(t *testing.T) {
	var stream []byte
	var want []Packet
	for _, e := range corpus() {
		if e.v != V311 {
			continue
		}
		b, err := Encode(e.p, e.v)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
		want = append(want, e.p)
	}
	big := &Publish{QoS: 1, PacketID: 9, Topic: []byte("big"), Payload: bytes.Repeat([]byte("0123456789"), 50000)}
	b, _ := Encode(big, V311)
	stream = append(stream, b...)
	want = append(want, big)

	r := NewReader(io.LimitReader(&oneByteReader{b: stream}, int64(len(stream))), MaxPacketSize)
	defer r.Release()
	for i, w := range want {
		h, body, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		p, err := Decode(h, body, V311)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		wb, _ := Encode(w, V311)
		gb, _ := Encode(p, V311)
		if !bytes.Equal(wb, gb) {
			t.Fatalf("packet %d: got %s want %s", i, dump(p), dump(w))
		}
	}
	if _, _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want EOF", err)
	}
	r2 := NewReader(bytes.NewReader([]byte{0x30, 0x05, 0x00}), MaxPacketSize)
	defer r2.Release()
	if _, _, err := r2.ReadPacket(); err != io.ErrUnexpectedEOF {
		t.Fatalf("inside a packet: %v, want ErrUnexpectedEOF", err)
	}
}

type oneByteReader struct {
	b []byte
}

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}
