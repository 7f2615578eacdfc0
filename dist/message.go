package dist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// Message is a published message as dist hands it to deliverers. One
// Message is shared by every delivery of a Pub: nobody may modify it once
// it is handed to Pub.
type Message struct {
	Topic     string
	Payload   []byte
	QoS       byte
	Retain    bool
	Publisher string // the publishing client's id, for $oshare pinning and no-local
	// Expires is when the message expires (MQTT 5 Message Expiry
	// Interval counted from its arrival); zero means never.
	Expires time.Time

	// The properties that travel with the message unchanged (MQTT 5
	// §3.3.2.3): dist reads none of them.
	PayloadFormat   byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	User            []packet.UserProperty
}

// Size is the message's approximate memory footprint in bytes, for queue
// budgets.
func (m *Message) Size() int {
	n := 96 + len(m.Topic) + len(m.Payload) + len(m.Publisher) + len(m.ContentType) +
		len(m.ResponseTopic) + len(m.CorrelationData)
	for _, u := range m.User {
		n += 32 + len(u.Key) + len(u.Value)
	}
	return n
}

// Expired reports whether the message has expired at now.
func (m *Message) Expired(now time.Time) bool { return !m.Expires.IsZero() && !now.Before(m.Expires) }

// The binary encoding of a Message (for the stores that keep messages:
// inbox, retain). Version byte 1, then:
//
//	bytes topic, bytes payload, byte qos|retain<<2, bytes publisher,
//	varint expires (unix ms, 0 none), byte payload format,
//	bytes content type, bytes response topic, bytes correlation data,
//	uvarint n user properties, n x (bytes key, bytes value)
//
// bytes is a uvarint length then the bytes.
const messageVersion = 1

// ErrBadMessage is wrapped by UnmarshalBinary errors.
var ErrBadMessage = errors.New("dist: malformed message encoding")

// AppendBinary appends m's encoding to b.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, messageVersion)
	b = appendBytes(b, m.Topic)
	b = appendBytes(b, m.Payload)
	flags := m.QoS & 3
	if m.Retain {
		flags |= 4
	}
	b = append(b, flags)
	b = appendBytes(b, m.Publisher)
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixMilli()
	}
	b = binary.AppendVarint(b, exp)
	b = append(b, m.PayloadFormat)
	b = appendBytes(b, m.ContentType)
	b = appendBytes(b, m.ResponseTopic)
	b = appendBytes(b, m.CorrelationData)
	b = binary.AppendUvarint(b, uint64(len(m.User)))
	for _, u := range m.User {
		b = appendBytes(b, u.Key)
		b = appendBytes(b, u.Value)
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (m *Message) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary implements encoding.BinaryUnmarshaler. The message
// does not alias b.
func (m *Message) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); v != messageVersion {
		return fmt.Errorf("%w: version %d", ErrBadMessage, v)
	}
	*m = Message{}
	m.Topic = string(d.bytes())
	m.Payload = d.copy()
	flags := d.byte()
	m.QoS, m.Retain = flags&3, flags&4 != 0
	m.Publisher = string(d.bytes())
	if exp := d.varint(); exp != 0 {
		m.Expires = time.UnixMilli(exp)
	}
	m.PayloadFormat = d.byte()
	m.ContentType = string(d.bytes())
	m.ResponseTopic = string(d.bytes())
	m.CorrelationData = d.copy()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = ErrBadMessage
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		m.User = append(m.User, packet.UserProperty{Key: string(d.bytes()), Value: string(d.bytes())})
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrBadMessage, len(d.b))
	}
	return d.err
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the encoding; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrBadMessage
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if d.err != nil || l > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:l]
	d.b = d.b[l:]
	return v
}

func (d *decoder) copy() []byte {
	v := d.bytes()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}
