package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/dist"
)

// DelivererName names the inbox deliverer in routes: a persistent
// subscription's receiver is dist.ReceiverID(DelivererName, client id),
// added with the inbox's incarnation.
const DelivererName = "inbox"

// Router is what the inbox service needs of dist: unrouting the filters
// of expired inboxes and publishing their wills. dist.Service implements
// it.
type Router interface {
	RemoveRoute(ctx context.Context, r dist.Route, incarnation uint64) (bool, error)
	PubAsync(tenant string, msg *dist.Message, done func(int, error))
}

// Retainer keeps retained messages: a delayed will with RETAIN is stored
// as its topic's retained message before it is published
// (MQTT-3.1.2-17). retain.Client implements it. Safe for concurrent use.
type Retainer interface {
	Retain(ctx context.Context, tenant string, msg *dist.Message) error
}

// ServiceOptions configure a Service; zero values take the defaults.
type ServiceOptions struct {
	// Retain stores the delayed wills published with RETAIN; nil when
	// the broker keeps no retained messages (such a will is published
	// only).
	Retain Retainer
	// ExpiryInterval is how often the expiry scan runs (session expiry
	// and delayed wills fire within it). Default 1s.
	ExpiryInterval time.Duration
	// Timeout bounds one store call. Default 10s.
	Timeout    time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Validate reports bad options.
func (o *ServiceOptions) Validate() error {
	var errs []error
	if o.ExpiryInterval < 0 {
		errs = append(errs, fmt.Errorf("inbox: ExpiryInterval %v is negative", o.ExpiryInterval))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("inbox: Timeout %v is negative", o.Timeout))
	}
	return errors.Join(errs...)
}

// Service is the node's inbox service: dist's deliverer for persistent
// subscriptions (it queues each message durably in the inbox, then wakes
// the session when it is online here), and the owner of the expiry scan
// that deletes expired inboxes (unrouting their filters) and publishes
// delayed wills.
type Service struct {
	*Client // the store client: Attach, Subscribe, Insert, Fetch, ...
	router  Router
	opts    ServiceOptions
	m       *serviceMetrics
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	mu        sync.RWMutex
	listeners map[listenKey]*listener
}

type listener struct{ wake func() }

type listenKey struct{ tenant, id string }

// NewService starts the service. Close stops it.
func NewService(c *Client, router Router, o ServiceOptions) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.ExpiryInterval == 0 {
		o.ExpiryInterval = time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{Client: c, router: router, opts: o, m: newServiceMetrics(o.Registerer), stop: make(chan struct{}),
		listeners: make(map[listenKey]*listener)}
	s.wg.Add(1)
	go s.expiryLoop()
	return s, nil
}

// Close stops the expiry scan. Idempotent.
func (s *Service) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}

// Listen registers wake, called (without blocking) after messages are
// queued for the inbox; the returned func unregisters it.
func (s *Service) Listen(tenant, id string, wake func()) (cancel func()) {
	k := listenKey{tenant, id}
	l := &listener{wake: wake}
	s.mu.Lock()
	s.listeners[k] = l
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		// Only our own registration: a takeover may have replaced it.
		if s.listeners[k] == l {
			delete(s.listeners, k)
		}
		s.mu.Unlock()
	}
}

// Deliver implements dist.Deliverer: each inbox gets its messages in
// one replicated write, in batch order (so one publisher's messages keep
// their order in the inbox), each message once for all of its matching
// filters; Deliver returns once every write is applied.
func (s *Service) Deliver(ctx context.Context, batch []dist.Delivery) []dist.Result {
	type inboxKey struct {
		tenant, id string
		inc        uint64
	}
	type pending struct {
		items []InsertItem
		idx   [][]int // the deliveries of each item
		byMsg map[*dist.Message]int
		res   []dist.Result
	}
	inboxes := make(map[inboxKey]*pending)
	var order []inboxKey
	results := make([]dist.Result, len(batch))
	for i, d := range batch {
		_, id, ok := dist.SplitReceiver(d.Route.Receiver)
		if !ok || len(id) == 0 {
			results[i] = dist.NoReceiver
			continue
		}
		k := inboxKey{d.Route.Tenant, string(id), d.Route.Incarnation}
		p := inboxes[k]
		if p == nil {
			p = &pending{byMsg: make(map[*dist.Message]int)}
			inboxes[k] = p
			order = append(order, k)
		}
		j, seen := p.byMsg[d.Message]
		if !seen {
			j = len(p.items)
			p.byMsg[d.Message] = j
			p.items = append(p.items, InsertItem{Message: d.Message})
			p.idx = append(p.idx, nil)
		}
		p.items[j].Filters = append(p.items[j].Filters, SubscriberFilter(d.Route))
		p.idx[j] = append(p.idx[j], i)
	}
	var wg sync.WaitGroup
	for _, k := range order {
		p := inboxes[k]
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.res = make([]dist.Result, len(p.items))
			rs, err := s.InsertBatch(ctx, k.tenant, k.id, k.inc, p.items)
			for j := range p.items {
				switch {
				case errors.Is(err, ErrNoInbox):
					p.res[j] = dist.NoReceiver
				case err != nil:
					p.res[j] = dist.Failed
				case rs[j].Gone:
					p.res[j] = dist.NoReceiver
				default:
					p.res[j] = dist.Delivered
					if rs[j].Dropped {
						s.m.dropped.Inc()
						s.opts.Logger.Info("inbox full: message dropped", "tenant", k.tenant, "inbox", k.id,
							"topic", p.items[j].Message.Topic)
					}
					if rs[j].Stored {
						s.m.inserted.Inc()
					}
				}
			}
			if err != nil && !errors.Is(err, ErrNoInbox) {
				s.opts.Logger.Warn("inbox insert failed", "tenant", k.tenant, "inbox", k.id, "err", err)
			}
		}()
	}
	wg.Wait()
	s.mu.RLock()
	for _, k := range order {
		p := inboxes[k]
		stored := false
		for j, r := range p.res {
			for _, i := range p.idx[j] {
				results[i] = r
			}
			stored = stored || r == dist.Delivered
		}
		if l := s.listeners[listenKey{k.tenant, k.id}]; l != nil && stored {
			l.wake()
		}
	}
	s.mu.RUnlock()
	return results
}

func (s *Service) expiryLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.expireOnce()
		}
	}
}

// expireOnce runs the expiry scan until a round finds nothing more.
func (s *Service) expireOnce() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		items, err := s.Expire(ctx, 1000)
		cancel()
		if err != nil {
			s.opts.Logger.Warn("inbox expiry scan", "err", err)
		}
		for _, e := range items {
			s.handleExpired(e)
		}
		if len(items) < 1000 {
			return
		}
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

func (s *Service) handleExpired(e Expired) {
	if e.Will != nil {
		s.m.wills.Inc()
		m := e.Will.Message
		if m.Retain && s.opts.Retain != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			if err := s.opts.Retain.Retain(ctx, e.Tenant, m); err != nil {
				s.opts.Logger.Warn("storing a delayed will as retained", "tenant", e.Tenant, "inbox", e.ID, "topic", m.Topic, "err", err)
			}
			cancel()
		}
		s.router.PubAsync(e.Tenant, m, func(_ int, err error) {
			if err != nil && !errors.Is(err, dist.ErrClosed) {
				s.opts.Logger.Warn("publishing a delayed will", "tenant", e.Tenant, "inbox", e.ID, "err", err)
			}
		})
	}
	if e.Deleted {
		s.m.expired.Inc()
		s.Unroute(e.Tenant, e.ID, e.Incarnation, e.Filters)
	}
}

// Unroute removes the routes of an inbox's filters (for the given
// incarnation).
func (s *Service) Unroute(tenant, id string, inc uint64, filters []string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for _, f := range filters {
		r, err := Route(tenant, id, f)
		if err != nil {
			continue
		}
		if _, err := s.router.RemoveRoute(ctx, r, inc); err != nil {
			s.opts.Logger.Warn("unrouting an inbox filter", "tenant", tenant, "inbox", id, "filter", f, "err", err)
		}
	}
}

// Route is the dist route of an inbox's subscription to filter.
func Route(tenant, id, filter string) (dist.Route, error) {
	kind, group, f, err := dist.ParseFilter(filter)
	if err != nil {
		return dist.Route{}, err
	}
	return dist.Route{Tenant: tenant, Filter: f, Kind: kind, Group: group,
		Receiver: dist.ReceiverID(DelivererName, []byte(id))}, nil
}

type serviceMetrics struct {
	inserted, dropped, expired, wills prometheus.Counter
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "bifromq", Subsystem: "inbox", Name: name, Help: help})
	}
	m := &serviceMetrics{
		inserted: c("messages_queued_total", "Messages queued in inboxes."),
		dropped:  c("messages_dropped_total", "Messages dropped because an inbox queue was full (the drop policy)."),
		expired:  c("sessions_expired_total", "Inboxes deleted at session expiry."),
		wills:    c("delayed_wills_total", "Delayed wills published by the expiry scan."),
	}
	if reg != nil {
		reg.MustRegister(m.inserted, m.dropped, m.expired, m.wills)
	}
	return m
}
