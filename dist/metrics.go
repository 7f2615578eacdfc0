package dist

import "github.com/prometheus/client_golang/prometheus"

type serviceMetrics struct {
	pubs       prometheus.Counter
	deliveries *prometheus.CounterVec
	// deliveries by result, resolved once
	delivered, noReceiver, failed, noDeliverer prometheus.Counter
	unrouted                                   prometheus.Counter
	inline                                     prometheus.Counter
	batchSize                                  prometheus.Histogram
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		pubs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dist", Name: "pubs_total", Help: "Messages published through dist.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "dist", Name: "deliveries_total",
			Help: "Deliveries by result: delivered, no_receiver (unrouted), failed, no_deliverer.",
		}, []string{"result"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dist", Name: "unrouted_total", Help: "Routes removed because their receiver was gone.",
		}),
		inline: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dist", Name: "pubs_inline_total",
			Help: "Messages delivered on the publisher's goroutine (cached routes, one inline deliverer, an idle lane).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "dist", Name: "batch_size", Help: "Publishes handled per lane batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 6),
		}),
	}
	m.delivered = m.deliveries.WithLabelValues("delivered")
	m.noReceiver = m.deliveries.WithLabelValues("no_receiver")
	m.failed = m.deliveries.WithLabelValues("failed")
	m.noDeliverer = m.deliveries.WithLabelValues("no_deliverer")
	if reg != nil {
		reg.MustRegister(m.pubs, m.deliveries, m.unrouted, m.inline, m.batchSize)
	}
	return m
}
