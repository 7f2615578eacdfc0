package basekv

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

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

// rangeCollector exports per-range gauges of a node's local replicas at
// scrape time: estimated size on disk, applied index, entries applied,
// and whether this replica leads.
type rangeCollector struct {
	n                               *Node
	size, applied, entries, leading *prometheus.Desc
}

func newRangeCollector(n *Node) *rangeCollector {
	labels := []string{"store", "range"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("bifromq_basekv_range_"+name, help, labels, nil)
	}
	return &rangeCollector{n: n,
		size:    d("size_bytes", "Estimated disk usage of a local range replica's keys."),
		applied: d("applied_index", "Raft index a local range replica has applied."),
		entries: d("applied_entries_total", "Raft entries a local range replica applied since it started."),
		leading: d("leader", "1 when this node's replica leads the range."),
	}
}

func (c *rangeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.applied
	ch <- c.entries
	ch <- c.leading
}

func (c *rangeCollector) Collect(ch chan<- prometheus.Metric) {
	c.n.mu.Lock()
	stores := make([]*Store, 0, len(c.n.mu.stores))
	for _, s := range c.n.mu.stores {
		stores = append(stores, s)
	}
	c.n.mu.Unlock()
	for _, s := range stores {
		s.mu.RLock()
		rsms := make([]*rangeSM, 0, len(s.mu.ranges))
		for _, r := range s.mu.ranges {
			rsms = append(rsms, r)
		}
		s.mu.RUnlock()
		for _, r := range rsms {
			r.mu.RLock()
			desc, applied := r.desc, r.applied
			r.mu.RUnlock()
			if desc == nil {
				continue
			}
			id := strconv.FormatUint(desc.ID, 10)
			lo, hi := dataSpan(desc.Start, desc.End)
			if size, err := s.db.EstimateDiskUsage(lo, hi); err == nil {
				ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(size), s.name, id)
			}
			ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(applied), s.name, id)
			ch <- prometheus.MustNewConstMetric(c.entries, prometheus.CounterValue, float64(r.entries.Load()), s.name, id)
			leading := 0.0
			if s.isLeader(desc.ID, r.replica) {
				leading = 1
			}
			ch <- prometheus.MustNewConstMetric(c.leading, prometheus.GaugeValue, leading, s.name, id)
		}
	}
}
