package retain

import "github.com/prometheus/client_golang/prometheus"

// metrics of one Client.
type metrics struct {
	puts       *prometheus.CounterVec // by result
	matches    *prometheus.CounterVec // by result
	matchTime  prometheus.Histogram
	matchFound prometheus.Histogram
	matchRead  prometheus.Histogram
	gcRemoved  prometheus.Counter
	gcPasses   *prometheus.CounterVec // by result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		puts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "retain", Name: "puts_total",
			Help: "Retain calls by result: new, replaced, cleared, noop (cleared a topic holding nothing), error.",
		}, []string{"result"}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "retain", Name: "matches_total", Help: "Match calls by result: ok, error.",
		}, []string{"result"}),
		matchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "retain", Name: "match_seconds", Help: "Latency of Match calls.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 8),
		}),
		matchFound: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "retain", Name: "match_messages", Help: "Messages returned per Match call.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		matchRead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "retain", Name: "match_keys_read",
			Help:    "Keys the match walk read per Match call: matches, expired ones and one per distinct level at '+' levels.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		gcRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "retain", Name: "gc_removed_total", Help: "Expired retained messages removed by GC.",
		}),
		gcPasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "retain", Name: "gc_passes_total", Help: "GC passes (calls and background) by result: ok, error.",
		}, []string{"result"}),
	}
	if reg != nil {
		cs := []prometheus.Collector{m.puts, m.matches, m.matchTime, m.matchFound, m.matchRead, m.gcRemoved, m.gcPasses}
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				for _, done := range cs[:i] {
					reg.Unregister(done)
				}
				return nil, err
			}
		}
	}
	return m, nil
}
