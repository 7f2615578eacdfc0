package mqtt

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EventType names what happened.
type EventType string

// Event types.
const (
	EventConnected      EventType = "connected"       // a session began (CONNACK success)
	EventConnectRefused EventType = "connect_refused" // CONNECT refused (Reason: the reason code)
	EventDisconnected   EventType = "disconnected"    // a connection ended (Reason: why)
	EventKicked         EventType = "kicked"          // taken over by a newer connection
	EventDropped        EventType = "dropped"         // a message for a subscriber dropped (Reason)
	EventThrottled      EventType = "throttled"       // a publish over MsgPubPerSec
	EventPubDenied      EventType = "pub_denied"      // the ACL denied a publish (Topic)
	EventSubDenied      EventType = "sub_denied"      // the ACL denied a subscription (Topic: the filter)
	EventWillPublished  EventType = "will_published"
	EventLimitExceeded  EventType = "limit_exceeded" // a tenant setting refused something (Reason: which)
)

// Event is one thing that happened to a client.
type Event struct {
	Type     EventType
	Time     time.Time
	Tenant   string
	User     string
	ClientID string
	Reason   string
	Topic    string
}

// EventCollector receives events. Report is called synchronously from
// connection goroutines (and dist's lanes for drops): it must be fast and
// must not block; an implementation that does I/O queues internally.
type EventCollector interface {
	Report(e Event)
}

// eventMetrics counts every event by type and tenant, then hands it to
// the configured collector.
type eventMetrics struct {
	counts *prometheus.CounterVec
	next   EventCollector
}

func newEventMetrics(reg prometheus.Registerer, next EventCollector) *eventMetrics {
	m := &eventMetrics{
		counts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bifromq", Subsystem: "mqtt",
			Name: "events_total", Help: "Client events by type and tenant."}, []string{"type", "tenant"}),
		next: next,
	}
	if reg != nil {
		reg.MustRegister(m.counts)
	}
	return m
}

func (m *eventMetrics) Report(e Event) {
	m.counts.WithLabelValues(string(e.Type), e.Tenant).Inc()
	if m.next != nil {
		m.next.Report(e)
	}
}

// event reports an event about c.
func (c *conn) event(t EventType, reason, topic string) {
	c.s.events.Report(Event{Type: t, Time: time.Now(), Tenant: c.tenant, User: c.user, ClientID: c.clientID,
		Reason: reason, Topic: topic})
}
