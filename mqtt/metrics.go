package mqtt

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// metrics are the Server's Prometheus metrics. Per-type counters are
// resolved once so the packet path does no label lookups.
type metrics struct {
	connections *prometheus.GaugeVec
	accepted    *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	decodeErrs  *prometheus.CounterVec
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	packetsIn   [16]prometheus.Counter
	packetsOut  [16]prometheus.Counter

	published      prometheus.Counter
	dropped        map[string]prometheus.Counter
	queuedBytes    prometheus.Gauge
	takeovers      prometheus.Counter
	willsPublished prometheus.Counter
}

// Reasons a connection is refused before or at CONNECT (label "reason").
const (
	rejectMaxConnections = "max_connections"
	rejectHandshake      = "handshake"
	rejectConnectTimeout = "connect_timeout"
	rejectNotConnect     = "first_packet_not_connect"
	rejectBadConnect     = "bad_connect"
	rejectClientID       = "client_id"
	rejectKeepAlive      = "keep_alive"
	rejectAuthMethod     = "auth_method"
	rejectShuttingDown   = "shutting_down"
	rejectSessionStore   = "session_store"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "bifromq", "mqtt"
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections", Help: "Open client connections by listener."}, []string{"listener"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_accepted_total", Help: "Connections accepted by listener."}, []string{"listener"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_rejected_total", Help: "Connections refused before or at CONNECT, by reason."}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "disconnects_total", Help: "Connections closed after CONNACK, by reason."}, []string{"reason"}),
		decodeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "decode_errors_total", Help: "Packets refused by the decoder, by reason code."}, []string{"reason"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "received_bytes_total", Help: "Bytes of MQTT packets received."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "sent_bytes_total", Help: "Bytes of MQTT packets sent."}),
	}
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "packets_received_total", Help: "MQTT packets received by type."}, []string{"type"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "packets_sent_total", Help: "MQTT packets sent by type."}, []string{"type"})
	for t := packet.CONNECT; t <= packet.AUTH; t++ {
		m.packetsIn[t] = in.WithLabelValues(t.String())
		m.packetsOut[t] = out.WithLabelValues(t.String())
	}
	m.published = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "messages_published_total", Help: "PUBLISH messages received from clients and handed to dist."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "messages_dropped_total", Help: "Messages for subscribers dropped, by reason."}, []string{"reason"})
	m.dropped = make(map[string]prometheus.Counter)
	for _, r := range dropReasons {
		m.dropped[r] = dropped.WithLabelValues(r)
	}
	m.queuedBytes = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "queued_bytes", Help: "Bytes of messages waiting in sessions' outbound queues (bounded by the queue budget)."})
	m.takeovers = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "session_takeovers_total", Help: "Connections closed because a newer one took their session over."})
	m.willsPublished = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "wills_published_total", Help: "Will messages published after an abnormal close."})
	m.packetsIn[0] = in.WithLabelValues("RESERVED")
	m.packetsOut[0] = out.WithLabelValues("RESERVED")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.accepted, m.rejected, m.disconnects,
			m.decodeErrs, m.bytesIn, m.bytesOut, in, out, m.published, dropped, m.queuedBytes,
			m.takeovers, m.willsPublished} {
			reg.MustRegister(c)
		}
	}
	return m
}

func (m *metrics) decodeError(err error) {
	m.decodeErrs.WithLabelValues(packet.CodeOf(err).String()).Inc()
}
