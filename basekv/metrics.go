package basekv

import "github.com/prometheus/client_golang/prometheus"

// metrics are a node's basekv metrics, shared by its stores.
type metrics struct {
	applied         prometheus.Counter
	proposals       prometheus.Counter
	retries         prometheus.Counter
	splits          prometheus.Counter
	merges          prometheus.Counter
	confChanges     *prometheus.CounterVec
	batchSize       prometheus.Histogram
	proposalLatency prometheus.Histogram
	mutateLatency   prometheus.Histogram
	diskFree        prometheus.Gauge
	diskFull        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "bifromq", "basekv"
	m := &metrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "applied_entries_total", Help: "Raft entries applied by the node's range replicas."}),
		proposals: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "proposals_total", Help: "Group-committed proposals made through this node."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "retries_total", Help: "Client attempts retried (stale route, no leader, timeout)."}),
		splits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "splits_total", Help: "Range splits made through this node."}),
		merges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "merges_total", Help: "Range merges made through this node."}),
		confChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "config_changes_total", Help: "Replica changes made through this node, by action and outcome."},
			[]string{"action", "outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "batch_size", Help: "Mutations per group-committed proposal.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		proposalLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "proposal_seconds", Help: "Latency of one proposal.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)}),
		mutateLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "mutate_seconds", Help: "Latency of Store.Mutate, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)}),
	}
	m.diskFree = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "disk_free_bytes", Help: "Free space under the node's data directory."})
	m.diskFull = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "disk_full", Help: "1 while the node refuses writes for lack of disk space."})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.applied, m.proposals, m.retries, m.splits, m.merges, m.confChanges,
			m.batchSize, m.proposalLatency, m.mutateLatency, m.diskFree, m.diskFull} {
			reg.MustRegister(c)
		}
	}
	return m
}
