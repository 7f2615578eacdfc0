package dist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Receivers. A route's receiver names the deliverer that owns it and the
// receiver within it: deliverer name, a 0 byte, then the deliverer's own
// id (a node's transient sessions, an inbox, ...). dist reads only the
// deliverer name.

// ReceiverID builds a receiver from a deliverer name (no 0 byte) and an
// id.
func ReceiverID(deliverer string, id []byte) []byte {
	b := append([]byte(deliverer), 0)
	return append(b, id...)
}

// SplitReceiver returns a receiver's deliverer name and id.
func SplitReceiver(r []byte) (deliverer string, id []byte, ok bool) {
	i := bytes.IndexByte(r, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(r[:i]), r[i+1:], true
}

// Delivery is one message for one receiver through one matched route.
type Delivery struct {
	Route   Route
	Message *Message
}

// Result is a deliverer's answer for one delivery.
type Result byte

// Delivery results.
const (
	Delivered  Result = iota // accepted (for a persistent receiver: durable)
	NoReceiver               // the receiver is gone: dist removes the route
	Failed                   // not delivered this time
)

// Deliverer delivers to the receivers it owns. Deliver is called
// concurrently for different batches, must answer one Result per delivery
// in order, and for QoS 1 and 2 must return only once each Delivered
// message is durable where the receiver is persistent. The batch slice is
// reused after Deliver returns: keep the Messages, not the slice.
type Deliverer interface {
	Deliver(ctx context.Context, batch []Delivery) []Result
}

// InlineDeliverer marks a Deliverer whose Deliver does no I/O and bounds
// its own waits (the node's transient sessions, which only queue copies on
// connections). Service.PubInline calls it on the publisher's goroutine,
// with the publisher's context, with no hand-off to a lane (the lowest
// latency; the lanes batch whenever publishes queue up).
type InlineDeliverer interface {
	Deliverer
	DeliversInline()
}

// Service routes published messages: it matches them against the routes
// in the dist.worker store, picks one member per shared group, groups the
// deliveries by deliverer and unroutes receivers that are gone.
//
// Publishes are batched: PubAsync queues a message on one of a fixed set
// of lanes, chosen by tenant and publisher, and each lane's goroutine takes
// what has queued up (up to MaxBatch), matches each distinct topic once,
// and hands every deliverer one batch for all of it. A lane handles its
// batches one after another and completes them in order, so one
// publisher's messages reach every receiver in the order they were
// published (MQTT 4.6), and their completions run in that order too.
// PubInline skips the lane only when nothing of the lane is pending, so
// that order holds either way.
//
// All methods are safe for concurrent use.
type Service struct {
	worker  *Worker
	opts    ServiceOptions
	metrics *serviceMetrics
	lanes   []*lane
	unroute chan Route
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	mu     sync.RWMutex
	owners map[string]Deliverer
	cache  routeCache
}

// ServiceOptions configures a Service; zero values take the defaults.
type ServiceOptions struct {
	// Lanes is the number of publish lanes. Default 2 x GOMAXPROCS.
	Lanes int
	// LaneQueue is how many publishes may wait on one lane; PubAsync
	// blocks when its lane is full. Default 1024.
	LaneQueue int
	// MaxBatch is the most publishes one lane handles at once. Default 256.
	MaxBatch int
	// Timeout bounds one batch's matching and delivery. Default 10s.
	Timeout time.Duration
	// Logger receives the service's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the service's metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// Validate reports bad options.
func (o *ServiceOptions) Validate() error {
	var errs []error
	if o.Lanes < 0 {
		errs = append(errs, fmt.Errorf("dist: Lanes %d is negative", o.Lanes))
	}
	if o.LaneQueue < 0 {
		errs = append(errs, fmt.Errorf("dist: LaneQueue %d is negative", o.LaneQueue))
	}
	if o.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("dist: MaxBatch %d is negative", o.MaxBatch))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("dist: Timeout %v is negative", o.Timeout))
	}
	return errors.Join(errs...)
}

func (o *ServiceOptions) ensureDefaults() {
	if o.Lanes == 0 {
		o.Lanes = 2 * runtime.GOMAXPROCS(0)
	}
	if o.LaneQueue == 0 {
		o.LaneQueue = 1024
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 256
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ErrClosed is reported for publishes the service could not handle
// because it was closed.
var ErrClosed = errors.New("dist: service closed")

// lane is one publish lane: its queue, and the publishes queued or being
// handled (a publish may go inline only when there are none).
type lane struct {
	ch      chan *pubReq
	pending atomic.Int64
}

type pubReq struct {
	tenant string
	msg    *Message
	done   func(int, error)
	// filled while the batch is handled
	accepted int
	errs     []error
}

// pubReqs recycles pubReqs once completed.
var pubReqs = sync.Pool{New: func() any { return new(pubReq) }}

func putPubReq(r *pubReq) {
	clear(r.errs)
	*r = pubReq{errs: r.errs[:0]}
	pubReqs.Put(r)
}

// NewService starts a service over w. Close stops it.
func NewService(w *Worker, o ServiceOptions) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.ensureDefaults()
	s := &Service{
		worker:  w,
		opts:    o,
		metrics: newServiceMetrics(o.Registerer),
		lanes:   make([]*lane, o.Lanes),
		unroute: make(chan Route, 1024),
		stop:    make(chan struct{}),
		owners:  make(map[string]Deliverer),
	}
	for i := range s.lanes {
		s.lanes[i] = &lane{ch: make(chan *pubReq, o.LaneQueue)}
		s.wg.Add(1)
		go s.runLane(s.lanes[i])
	}
	s.wg.Add(1)
	go s.runUnroute()
	return s, nil
}

// Close stops the lanes; publishes still queued complete with ErrClosed.
// Idempotent.
func (s *Service) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		for _, l := range s.lanes {
			for {
				select {
				case r := <-l.ch:
					if r.done != nil {
						r.done(0, ErrClosed)
					}
					l.pending.Add(-1)
					putPubReq(r)
					continue
				default:
				}
				break
			}
		}
	})
	return nil
}

// Register makes d the deliverer of receivers named name.
func (s *Service) Register(name string, d Deliverer) {
	s.mu.Lock()
	s.owners[name] = d
	s.mu.Unlock()
}

// Unregister removes the deliverer named name.
func (s *Service) Unregister(name string) {
	s.mu.Lock()
	delete(s.owners, name)
	s.mu.Unlock()
}

// AddRoute adds r for the given incarnation of its receiver; false when a
// newer incarnation already holds it.
func (s *Service) AddRoute(ctx context.Context, r Route, incarnation uint64) (bool, error) {
	defer s.cache.invalidate()
	return s.worker.AddRoute(ctx, r, incarnation)
}

// RemoveRoute removes r unless a newer incarnation holds it.
func (s *Service) RemoveRoute(ctx context.Context, r Route, incarnation uint64) (bool, error) {
	defer s.cache.invalidate()
	return s.worker.RemoveRoute(ctx, r, incarnation)
}

// ErrNoDeliverer is reported (and counted as failed) for a route whose
// deliverer is not registered on this node.
var ErrNoDeliverer = errors.New("dist: no deliverer for the receiver")

// PubAsync queues msg for tenant's matching routes and returns; done (if
// not nil) is called, on the lane's goroutine, with the number of
// deliveries accepted and the failures joined, once every deliverer has
// answered. done must not block. PubAsync blocks while the lane is full,
// which paces a fast publisher; msg must not change afterwards.
func (s *Service) PubAsync(tenant string, msg *Message, done func(int, error)) {
	l := s.lane(tenant, msg.Publisher)
	r := pubReqs.Get().(*pubReq)
	r.tenant, r.msg, r.done = tenant, msg, done
	l.pending.Add(1)
	select {
	case <-s.stop:
	default:
		select {
		case l.ch <- r:
			return
		case <-s.stop:
		}
	}
	l.pending.Add(-1)
	putPubReq(r)
	if done != nil {
		done(0, ErrClosed)
	}
}

// PubInline delivers msg on the caller's goroutine when it can: its lane
// has nothing pending (so nothing of this publisher is, and order holds),
// its routes are cached, and they all belong to one InlineDeliverer (or
// there are none). Then it returns the number of deliveries accepted, the
// failures joined, and true; ctx is handed to the deliverer. Otherwise it
// does nothing and returns false, quickly: use PubAsync.
func (s *Service) PubInline(ctx context.Context, tenant string, msg *Message) (int, error, bool) {
	if s.lane(tenant, msg.Publisher).pending.Load() != 0 {
		return 0, nil, false
	}
	return s.pubInline(ctx, tenant, msg)
}

// lane returns the lane of (tenant, publisher): FNV-1a of tenant, 0,
// publisher, computed inline (no allocation).
func (s *Service) lane(tenant, publisher string) *lane {
	h := uint32(2166136261)
	for _, part := range [2]string{tenant, publisher} {
		for i := 0; i < len(part); i++ {
			h = (h ^ uint32(part[i])) * 16777619
		}
		h *= 16777619 // the 0 separator
	}
	return s.lanes[h%uint32(len(s.lanes))]
}

// inlineScratch is the reusable state of one inline publish.
type inlineScratch struct {
	deliveries []Delivery
}

var inlineScratches = sync.Pool{New: func() any { return new(inlineScratch) }}

func (s *Service) pubInline(ctx context.Context, tenant string, msg *Message) (int, error, bool) {
	routes, ok := s.cache.get(tenant, msg.Topic, time.Now().UnixNano())
	if !ok {
		return 0, nil, false
	}
	select {
	case <-s.stop:
		return 0, nil, false // PubAsync reports ErrClosed
	default:
	}
	sc := inlineScratches.Get().(*inlineScratch)
	defer func() {
		clear(sc.deliveries)
		sc.deliveries = sc.deliveries[:0]
		inlineScratches.Put(sc)
	}()
	var owner []byte
	for _, rt := range pickShared(routes, msg.Publisher) {
		name, ok := delivererOf(rt.Receiver)
		if !ok {
			continue
		}
		if owner == nil {
			owner = name
		} else if !bytes.Equal(owner, name) {
			return 0, nil, false // more than one deliverer: the lane groups them
		}
		sc.deliveries = append(sc.deliveries, Delivery{Route: rt, Message: msg})
	}
	var d Deliverer
	if owner != nil {
		s.mu.RLock()
		d = s.owners[string(owner)]
		s.mu.RUnlock()
		if _, inline := d.(InlineDeliverer); !inline {
			return 0, nil, false
		}
	}
	var accepted int
	var errs []error
	if len(sc.deliveries) > 0 {
		results := d.Deliver(ctx, sc.deliveries)
		for i := range sc.deliveries {
			switch s.tally(results, i, sc.deliveries[i].Route) {
			case Delivered:
				accepted++
			case Failed:
				errs = append(errs, deliveryFailed(sc.deliveries[i].Route))
			}
		}
	}
	s.metrics.pubs.Inc()
	s.metrics.inline.Inc()
	return accepted, errors.Join(errs...), true
}

// delivererOf returns the deliverer name of a receiver.
func delivererOf(receiver []byte) ([]byte, bool) {
	i := bytes.IndexByte(receiver, 0)
	if i < 0 {
		return nil, false
	}
	return receiver[:i], true
}

// tally returns delivery i's result (Failed when the deliverer answered
// none), counts it, and queues the route for removal when the receiver is
// gone.
func (s *Service) tally(results []Result, i int, rt Route) Result {
	res := Failed
	if i < len(results) {
		res = results[i]
	}
	switch res {
	case Delivered:
		s.metrics.delivered.Inc()
	case NoReceiver:
		s.metrics.noReceiver.Inc()
		select {
		case s.unroute <- rt:
		default: // a later delivery will find it again
		}
	default:
		res = Failed
		s.metrics.failed.Inc()
	}
	return res
}

func deliveryFailed(rt Route) error {
	return fmt.Errorf("dist: delivery to %q failed", rt.Receiver)
}

// Pub delivers msg to tenant's matching routes and returns how many
// deliveries were accepted. Deliveries that failed are reported in the
// error; receivers that are gone are unrouted.
func (s *Service) Pub(ctx context.Context, tenant string, msg *Message) (int, error) {
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	s.PubAsync(tenant, msg, func(n int, err error) { ch <- result{n, err} })
	select {
	case r := <-ch:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *Service) runLane(l *lane) {
	defer s.wg.Done()
	batch := make([]*pubReq, 0, s.opts.MaxBatch)
	var sc laneScratch
	defer sc.release()
	for {
		select {
		case r := <-l.ch:
			batch = append(batch, r)
		case <-s.stop:
			return
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-l.ch:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.handle(batch, &sc)
		for _, r := range batch {
			putPubReq(r)
		}
		// Only now: a publish that finds the lane empty may go inline,
		// after every earlier one has completed.
		l.pending.Add(-int64(len(batch)))
		clear(batch)
		batch = batch[:0]
	}
}

// laneScratch is one lane's reusable state for handle.
type laneScratch struct {
	matched map[topicKey][]Route
	owners  []ownerBatch
	// The batches' context: made when the last one has less than half of
	// Timeout left, so each batch gets between Timeout/2 and Timeout
	// without a context and timer per batch.
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// context returns the context of a batch starting at now.
func (sc *laneScratch) context(now time.Time, timeout time.Duration) context.Context {
	if sc.ctx == nil || sc.deadline.Sub(now) < timeout/2 {
		if sc.cancel != nil {
			sc.cancel()
		}
		sc.deadline = now.Add(timeout)
		sc.ctx, sc.cancel = context.WithDeadline(context.Background(), sc.deadline)
	}
	return sc.ctx
}

// release cancels the last batch context.
func (sc *laneScratch) release() {
	if sc.cancel != nil {
		sc.cancel()
	}
}

type topicKey struct{ tenant, topic string }

// ownerBatch is one deliverer's share of a batch.
type ownerBatch struct {
	name       []byte
	deliveries []Delivery
	reqs       []*pubReq
}

// handle matches and delivers one batch, then completes it in order.
func (s *Service) handle(batch []*pubReq, sc *laneScratch) {
	start := time.Now()
	ctx := sc.context(start, s.opts.Timeout)
	s.metrics.batchSize.Observe(float64(len(batch)))
	if sc.matched == nil {
		sc.matched = make(map[topicKey][]Route)
	}
	defer func() {
		clear(sc.matched)
		for i := range sc.owners {
			clear(sc.owners[i].deliveries)
			clear(sc.owners[i].reqs)
			sc.owners[i].deliveries, sc.owners[i].reqs = sc.owners[i].deliveries[:0], sc.owners[i].reqs[:0]
		}
		sc.owners = sc.owners[:0]
	}()
	now := start.UnixNano()
	for _, r := range batch {
		k := topicKey{r.tenant, r.msg.Topic}
		routes, ok := sc.matched[k]
		if !ok {
			routes, ok = s.cache.get(r.tenant, r.msg.Topic, now)
		}
		if !ok {
			gen := s.cache.gen.Load()
			var err error
			if routes, err = s.worker.Match(ctx, r.tenant, r.msg.Topic); err != nil {
				r.errs = append(r.errs, err)
				continue
			}
			s.cache.put(r.tenant, r.msg.Topic, routes, gen, now)
		}
		sc.matched[k] = routes
		for _, rt := range pickShared(routes, r.msg.Publisher) {
			name, ok := delivererOf(rt.Receiver)
			if !ok {
				continue
			}
			ob := sc.owner(name)
			ob.deliveries = append(ob.deliveries, Delivery{Route: rt, Message: r.msg})
			ob.reqs = append(ob.reqs, r)
		}
	}
	m := s.metrics
	for oi := range sc.owners {
		ob := &sc.owners[oi]
		s.mu.RLock()
		d := s.owners[string(ob.name)]
		s.mu.RUnlock()
		if d == nil {
			for _, r := range ob.reqs {
				r.errs = append(r.errs, fmt.Errorf("%w %q", ErrNoDeliverer, ob.name))
			}
			m.noDeliverer.Add(float64(len(ob.reqs)))
			continue
		}
		results := d.Deliver(ctx, ob.deliveries)
		for i, r := range ob.reqs {
			switch s.tally(results, i, ob.deliveries[i].Route) {
			case Delivered:
				r.accepted++
			case Failed:
				r.errs = append(r.errs, deliveryFailed(ob.deliveries[i].Route))
			}
		}
	}
	for _, r := range batch {
		m.pubs.Inc()
		if r.done != nil {
			r.done(r.accepted, errors.Join(r.errs...))
		}
	}
}

// owner returns the batch of the deliverer named name, adding it.
func (sc *laneScratch) owner(name []byte) *ownerBatch {
	for i := range sc.owners {
		if bytes.Equal(sc.owners[i].name, name) {
			return &sc.owners[i]
		}
	}
	if len(sc.owners) < cap(sc.owners) {
		sc.owners = sc.owners[:len(sc.owners)+1]
		ob := &sc.owners[len(sc.owners)-1]
		ob.name = append(ob.name[:0], name...)
		return ob
	}
	sc.owners = append(sc.owners, ownerBatch{name: append([]byte(nil), name...)})
	return &sc.owners[len(sc.owners)-1]
}

// runUnroute removes the routes of receivers reported gone, each with the
// incarnation Match found, so a newer add of the same route survives.
func (s *Service) runUnroute() {
	defer s.wg.Done()
	for {
		select {
		case r := <-s.unroute:
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			_, err := s.worker.RemoveRoute(ctx, r, r.Incarnation)
			s.cache.invalidate()
			if err != nil {
				s.opts.Logger.Warn("unrouting a gone receiver", "tenant", r.Tenant, "filter", r.Filter, "err", err)
			} else {
				s.metrics.unrouted.Inc()
			}
			cancel()
		case <-s.stop:
			return
		}
	}
}

// oneMemberEach reports whether no shared group has two routes (as when
// every member node aggregates its members into one route). Quadratic in
// the shared routes, without allocating: for the few routes of a topic.
func oneMemberEach(routes []Route) bool {
	if len(routes) > 64 {
		return false
	}
	for i := range routes {
		if routes[i].Kind == Normal {
			continue
		}
		for j := range i {
			if routes[j].Kind == routes[i].Kind && routes[j].Group == routes[i].Group && routes[j].Filter == routes[i].Filter {
				return false
			}
		}
	}
	return true
}

// pickShared keeps every normal route and one member per shared group: a
// random one for $share, and for $oshare the member the publisher hashes
// to (rendezvous hashing), so one publisher's messages keep their order.
func pickShared(routes []Route, publisher string) []Route {
	shared := false
	for i := range routes {
		if routes[i].Kind != Normal {
			shared = true
			break
		}
	}
	if !shared || oneMemberEach(routes) {
		return routes // the common cases: nothing to choose, nothing to copy
	}
	type groupKey struct {
		kind          RouteKind
		group, filter string
	}
	groups := make(map[groupKey][]Route)
	var out []Route
	for _, r := range routes {
		if r.Kind == Normal {
			out = append(out, r)
			continue
		}
		k := groupKey{r.Kind, r.Group, r.Filter}
		groups[k] = append(groups[k], r)
	}
	for k, members := range groups {
		if k.kind == Shared {
			out = append(out, members[rand.IntN(len(members))])
			continue
		}
		best, bestScore := 0, uint64(0)
		for i, m := range members {
			h := fnv.New64a()
			h.Write([]byte(publisher))
			h.Write([]byte{0})
			h.Write(m.Receiver)
			if s := h.Sum64(); i == 0 || s > bestScore {
				best, bestScore = i, s
			}
		}
		out = append(out, members[best])
	}
	return out
}
