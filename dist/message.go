package dist

import (
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
