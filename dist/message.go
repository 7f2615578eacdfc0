package dist

import (
	"errors"
	"fmt"
	"time"

	"github.com/bifromq-go/bifromq/internal/wire"
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
	// Props are the properties that travel with the message unchanged
	// (MQTT 5 §3.3.2.3); nil when it has none, as most messages do, so
	// a Message stays small. dist reads none of them.
	Props *Props
}

// Props are a message's MQTT 5 properties that dist carries unchanged.
// Like its Message, a Props is not modified once handed to Pub.
type Props struct {
	PayloadFormat   byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	User            []packet.UserProperty
}

// Empty reports whether p carries nothing: a Message needs no Props then.
func (p *Props) Empty() bool {
	return p.PayloadFormat == 0 && p.ContentType == "" && p.ResponseTopic == "" &&
		len(p.CorrelationData) == 0 && len(p.User) == 0
}

// Size is the message's approximate memory footprint in bytes, for queue
// budgets.
func (m *Message) Size() int {
	n := 96 + len(m.Topic) + len(m.Payload) + len(m.Publisher)
	if p := m.Props; p != nil {
		n += 80 + len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData)
		for _, u := range p.User {
			n += 32 + len(u.Key) + len(u.Value)
		}
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

// noProps encodes a Message without Props.
var noProps Props

// AppendBinary appends m's encoding to b.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, messageVersion)
	b = wire.AppendBytes(b, m.Topic)
	b = wire.AppendBytes(b, m.Payload)
	flags := m.QoS & 3
	if m.Retain {
		flags |= 4
	}
	b = append(b, flags)
	b = wire.AppendBytes(b, m.Publisher)
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixMilli()
	}
	b = wire.AppendVarint(b, exp)
	p := m.Props
	if p == nil {
		p = &noProps
	}
	b = append(b, p.PayloadFormat)
	b = wire.AppendBytes(b, p.ContentType)
	b = wire.AppendBytes(b, p.ResponseTopic)
	b = wire.AppendBytes(b, p.CorrelationData)
	b = wire.AppendUvarint(b, uint64(len(p.User)))
	for _, u := range p.User {
		b = wire.AppendBytes(b, u.Key)
		b = wire.AppendBytes(b, u.Value)
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (m *Message) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary implements encoding.BinaryUnmarshaler. The message
// does not alias b.
func (m *Message) UnmarshalBinary(b []byte) error {
	return m.decode(wire.NewDecoder(b), true)
}

// DecodeFrom reads one message from d, leaving what follows it.
func (m *Message) DecodeFrom(d *wire.Decoder) error { return m.decode(d, false) }

func (m *Message) decode(d *wire.Decoder, all bool) error {
	if v := d.Byte(); v != messageVersion {
		return fmt.Errorf("%w: version %d", ErrBadMessage, v)
	}
	*m = Message{}
	m.Topic = d.String()
	m.Payload = d.Copy()
	flags := d.Byte()
	m.QoS, m.Retain = flags&3, flags&4 != 0
	m.Publisher = d.String()
	if exp := d.Varint(); exp != 0 {
		m.Expires = time.UnixMilli(exp)
	}
	var p Props
	p.PayloadFormat = d.Byte()
	p.ContentType = d.String()
	p.ResponseTopic = d.String()
	p.CorrelationData = d.Copy()
	n := d.Count()
	for i := 0; i < n && d.Err == nil; i++ {
		p.User = append(p.User, packet.UserProperty{Key: d.String(), Value: d.String()})
	}
	if !p.Empty() {
		held := p // p stays on the stack when there is nothing to keep
		m.Props = &held
	}
	var err error
	if all {
		err = d.Done()
	} else {
		err = d.Err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	return nil
}
