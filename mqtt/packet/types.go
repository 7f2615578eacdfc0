package packet

import "strconv"

// Type is a control packet type (the high nibble of the first byte).
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
	"PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Version is the protocol level of a connection.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// Valid reports whether v is a level this package speaks.
func (v Version) Valid() bool { return v == V31 || v == V311 || v == V5 }

// QoS is a quality-of-service level.
type QoS byte

// QoS levels.
const (
	AtMostOnce  QoS = 0
	AtLeastOnce QoS = 1
	ExactlyOnce QoS = 2
)

// FixedHeader is the first part of every packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // remaining length: bytes after the fixed header
}

// Len is the encoded length of the fixed header.
func (h FixedHeader) Len() int { return 1 + varintLen(uint32(h.Remaining)) }

// MaxRemaining is the largest remaining length a variable byte integer
// holds (four bytes).
const MaxRemaining = 268435455

// MaxPacketSize is the largest packet the protocol can express.
const MaxPacketSize = MaxRemaining + 5

// Packet is a control packet. Every packet type of this package implements
// it with a pointer receiver.
type Packet interface {
	// Type is the control packet type.
	Type() Type
	// Append encodes the packet for version v and appends it to dst.
	Append(dst []byte, v Version) ([]byte, error)
	// Unpack decodes the packet from flags (the fixed header's low nibble)
	// and body (the bytes after the fixed header) for version v, reusing
	// the receiver's memory. See the package doc for aliasing.
	Unpack(flags byte, body []byte, v Version) error
}

// New returns an empty packet of type t, or nil for a reserved type.
func New(t Type) Packet {
	switch t {
	case CONNECT:
		return &Connect{}
	case CONNACK:
		return &Connack{}
	case PUBLISH:
		return &Publish{}
	case PUBACK:
		return &Puback{}
	case PUBREC:
		return &Pubrec{}
	case PUBREL:
		return &Pubrel{}
	case PUBCOMP:
		return &Pubcomp{}
	case SUBSCRIBE:
		return &Subscribe{}
	case SUBACK:
		return &Suback{}
	case UNSUBSCRIBE:
		return &Unsubscribe{}
	case UNSUBACK:
		return &Unsuback{}
	case PINGREQ:
		return &Pingreq{}
	case PINGRESP:
		return &Pingresp{}
	case DISCONNECT:
		return &Disconnect{}
	case AUTH:
		return &Auth{}
	}
	return nil
}

// Decode decodes one packet whose fixed header is h and whose body is body,
// for version v. For a CONNECT, v is ignored (the packet names its own
// version). The returned packet aliases body as the package doc says.
func Decode(h FixedHeader, body []byte, v Version) (Packet, error) {
	if h.Remaining != len(body) {
		return nil, errorf(MalformedPacket, "remaining length %d but %d body bytes", h.Remaining, len(body))
	}
	p := New(h.Type)
	if p == nil || (h.Type == AUTH && v != V5) {
		return nil, errorf(MalformedPacket, "reserved packet type %d", h.Type)
	}
	if err := p.Unpack(h.Flags, body, v); err != nil {
		return nil, err
	}
	return p, nil
}

// Encode encodes p for version v into a new slice.
func Encode(p Packet, v Version) ([]byte, error) { return p.Append(nil, v) }

// PropertiesOf returns the properties of p, or nil for a packet type that
// has none (PINGREQ, PINGRESP). A CONNECT's will properties are in
// Connect.Will.
func PropertiesOf(p Packet) *Properties {
	switch p := p.(type) {
	case *Connect:
		return &p.Properties
	case *Connack:
		return &p.Properties
	case *Publish:
		return &p.Properties
	case *Puback:
		return &p.Properties
	case *Pubrec:
		return &p.Properties
	case *Pubrel:
		return &p.Properties
	case *Pubcomp:
		return &p.Properties
	case *Subscribe:
		return &p.Properties
	case *Suback:
		return &p.Properties
	case *Unsubscribe:
		return &p.Properties
	case *Unsuback:
		return &p.Properties
	case *Disconnect:
		return &p.Properties
	case *Auth:
		return &p.Properties
	}
	return nil
}
