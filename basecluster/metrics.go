package basecluster

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	members   prometheus.Gauge
	joins     prometheus.Counter
	rejoins   prometheus.Counter
	deltasIn  prometheus.Counter
	deltasOut prometheus.Counter
	pushPulls prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "bifromq", "cluster"
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "members", Help: "Live members this node sees, itself included."}),
		joins:     c("joins_total", "Join attempts (seeds, re-joins, explicit)."),
		rejoins:   c("rejoins_total", "Re-joins of seeds or lost members that reached someone."),
		deltasIn:  c("crdt_deltas_received_total", "CRDT deltas received by gossip."),
		deltasOut: c("crdt_deltas_sent_total", "CRDT deltas queued for gossip."),
		pushPulls: c("crdt_state_merges_total", "Full CRDT states merged from push-pull."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.members, m.joins, m.rejoins, m.deltasIn, m.deltasOut, m.pushPulls} {
			reg.MustRegister(col)
		}
	}
	return m
}
