package mqtt

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/inbox"
)

// Router is what the frontend needs of dist (dist.Service implements it).
// All methods are called concurrently.
type Router interface {
	// PubAsync routes msg; done is called once, in publish order for one
	// (tenant, publisher), with the accepted delivery count, and must not
	// block. PubAsync may block to pace a fast publisher.
	PubAsync(tenant string, msg *dist.Message, done func(int, error))
	// PubInline delivers msg on the caller's goroutine when it can and
	// returns the accepted count, the failures and true; false means
	// nothing was done (use PubAsync). ctx goes to the deliverer.
	PubInline(ctx context.Context, tenant string, msg *dist.Message) (int, error, bool)
	AddRoute(ctx context.Context, r dist.Route, incarnation uint64) (bool, error)
	RemoveRoute(ctx context.Context, r dist.Route, incarnation uint64) (bool, error)
	// Register makes d the deliverer of the receivers named name.
	Register(name string, d dist.Deliverer)
	Unregister(name string)
}

// SessionStore keeps persistent sessions (inbox.Service implements it).
// All methods are called concurrently; see package inbox for each one's
// contract.
type SessionStore interface {
	Attach(ctx context.Context, r inbox.AttachRequest) (*inbox.AttachResult, error)
	Detach(ctx context.Context, tenant, id string, inc uint64, expiry uint32, owner string, will *inbox.Will, sentTail uint64) (bool, []string, error)
	Subscribe(ctx context.Context, tenant, id string, inc uint64, filter string, o inbox.SubOptions, maxFilters int) error
	Unsubscribe(ctx context.Context, tenant, id string, inc uint64, filter string) (bool, error)
	Commit(ctx context.Context, tenant, id string, inc uint64, entries []inbox.Pos) error
	MarkReceived(ctx context.Context, tenant, id string, inc uint64, seq uint64) error
	SetQoS2In(ctx context.Context, tenant, id string, inc uint64, add bool, pid uint16) error
	Fetch(ctx context.Context, tenant, id string, q inbox.Queue, from uint64, max int) ([]inbox.Entry, error)
	// Exists reports whether a session is stored (a local read).
	Exists(ctx context.Context, tenant, id string) (bool, error)
	// Listen registers wake, called after messages are queued for the
	// inbox; the returned func unregisters it.
	Listen(tenant, id string, wake func()) func()
	// Unroute removes the routes of a deleted inbox's filters.
	Unroute(tenant, id string, inc uint64, filters []string)
	// SweepOrphans detaches the sessions an earlier run of node left
	// attached when it died.
	SweepOrphans(ctx context.Context, node, instance string) (int, error)
}

// RetainStore keeps retained messages (retain.Client implements it). Safe
// for concurrent use.
type RetainStore interface {
	// Retain stores msg as its topic's retained message; an empty payload
	// clears the topic.
	Retain(ctx context.Context, tenant string, msg *dist.Message) error
	// Match returns up to limit retained messages matching filter.
	Match(ctx context.Context, tenant, filter string, limit int) ([]*dist.Message, error)
}

// Transient sessions are routed per node: the first session of this
// server to subscribe to a (tenant, filter) adds one route whose receiver
// is the server's deliverer, the last to unsubscribe removes it, and the
// server fans each delivery out to its local subscribers. The route table
// grows with the filters, not with the sessions.

// localKey names an aggregated route.
type localKey struct {
	tenant string
	kind   dist.RouteKind
	group  string
	filter string
}

// localEntry is one aggregated route and its local subscribers.
type localEntry struct {
	// mu serializes adding and removing the route, and is held across the
	// store call, so a subscribe and an unsubscribe of the same filter
	// never race in the store.
	mu     sync.Mutex
	routed bool
	// Under localIndex.mu:
	subs    map[*conn]subscription
	pending int // subscribes between lookup and registration
}

// localIndex is the server's table of aggregated routes; it is the
// dist.Deliverer of the server's transient sessions.
type localIndex struct {
	s       *Server
	name    string // deliverer name in the routes
	lastInc atomic.Uint64

	mu      sync.RWMutex
	entries map[localKey]*localEntry
}

func newLocalIndex(s *Server) *localIndex {
	return &localIndex{s: s, name: "mqtt." + s.opts.NodeID, entries: make(map[localKey]*localEntry)}
}

// incarnation returns a number above every one this process used before,
// and above those of earlier processes (it starts from the clock), so a
// removal always wins over older adds and loses to newer ones.
func (x *localIndex) incarnation() uint64 {
	now := uint64(time.Now().UnixNano())
	for {
		last := x.lastInc.Load()
		next := max(now, last+1)
		if x.lastInc.CompareAndSwap(last, next) {
			return next
		}
	}
}

func (x *localIndex) route(k localKey) dist.Route {
	return dist.Route{Tenant: k.tenant, Filter: k.filter, Kind: k.kind, Group: k.group,
		Receiver: dist.ReceiverID(x.name, nil)}
}

// subscribe registers c's subscription under k, adding the route when c is
// the first local subscriber. A subscription already held by c is
// replaced (its options change, the route stays).
func (x *localIndex) subscribe(ctx context.Context, k localKey, c *conn, sub subscription) error {
	x.mu.Lock()
	e := x.entries[k]
	if e == nil {
		e = &localEntry{subs: make(map[*conn]subscription)}
		x.entries[k] = e
	}
	e.pending++
	x.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	if !e.routed {
		if _, err = x.s.opts.Router.AddRoute(ctx, x.route(k), x.incarnation()); err == nil {
			e.routed = true
		}
	}
	x.mu.Lock()
	e.pending--
	if err == nil {
		e.subs[c] = sub
	}
	x.dropIfEmpty(k, e)
	x.mu.Unlock()
	return err
}

// unsubscribe removes c's subscription under k, and the route when it was
// the last. It reports whether c held it.
func (x *localIndex) unsubscribe(ctx context.Context, k localKey, c *conn) bool {
	x.mu.Lock()
	e := x.entries[k]
	if e == nil {
		x.mu.Unlock()
		return false
	}
	_, held := e.subs[c]
	delete(e.subs, c)
	e.pending++ // keep e while the route is removed
	x.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	x.mu.RLock()
	last := len(e.subs) == 0 && e.pending == 1
	x.mu.RUnlock()
	if last && e.routed {
		// A failed removal leaves a route with no subscriber; its first
		// delivery answers NoReceiver and dist removes it then.
		if _, err := x.s.opts.Router.RemoveRoute(ctx, x.route(k), x.incarnation()); err != nil {
			x.s.log.Warn("removing a route", "tenant", k.tenant, "filter", k.filter, "err", err)
		}
		e.routed = false
	}
	x.mu.Lock()
	e.pending--
	x.dropIfEmpty(k, e)
	x.mu.Unlock()
	return held
}

// members counts this server's subscribers of a shared group.
func (x *localIndex) members(k localKey) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e := x.entries[k]; e != nil {
		return len(e.subs)
	}
	return 0
}

// dropIfEmpty forgets an entry nobody holds or waits for. Under x.mu.
func (x *localIndex) dropIfEmpty(k localKey, e *localEntry) {
	if len(e.subs) == 0 && e.pending == 0 && !e.routed && x.entries[k] == e {
		delete(x.entries, k)
	}
}

// target is one session's share of a Deliver batch: one copy per message
// for all of the session's matching non-shared subscriptions (the highest
// QoS, every subscription identifier), plus one per shared subscription.
type target struct {
	c      *conn
	msg    *dist.Message
	qos    byte
	rap    bool // retain as published (any matching subscription asks)
	ids    []uint32
	shared bool // through a shared subscription: never merged with others
	// An entry fetched from a persistent session's inbox.
	stored bool
	queue  inbox.Queue
	seq    uint64
	dup    bool // resent after a resume
}

// DeliversInline marks the index as a dist.InlineDeliverer: Deliver does
// no I/O (it queues copies on connections); it waits for a full session
// while the session drains, and at most roomWait for one that does not.
func (x *localIndex) DeliversInline() {}

// deliverScratch is one Deliver call's reusable state.
type deliverScratch struct {
	copies  []target
	merged  map[copyKey]int // index in copies; only for big batches, small ones scan
	waiting []int
	rooms   []<-chan struct{}
}

type copyKey struct {
	c   *conn
	msg *dist.Message
}

var deliverScratches = sync.Pool{New: func() any { return new(deliverScratch) }}

// Deliver implements dist.Deliverer: it fans each delivery out to the
// local subscribers of its route and queues the copies on their sessions.
// A full session queue gets a wait for room (see offer) while it drains;
// one that takes nothing for roomWait is marked slow.
func (x *localIndex) Deliver(ctx context.Context, batch []dist.Delivery) []dist.Result {
	rd := readerOf(ctx) // on a publisher's reader: it writes the copies when it flushes
	results := make([]dist.Result, len(batch))
	sc := deliverScratches.Get().(*deliverScratch)
	defer func() {
		clear(sc.copies)
		clear(sc.rooms)
		sc.copies, sc.waiting, sc.rooms = sc.copies[:0], sc.waiting[:0], sc.rooms[:0]
		if sc.merged != nil {
			clear(sc.merged)
		}
		deliverScratches.Put(sc)
	}()
	merging := false
	x.mu.RLock()
	for i, d := range batch {
		r := d.Route
		e := x.entries[localKey{r.Tenant, r.Kind, r.Group, r.Filter}]
		if e == nil || (len(e.subs) == 0 && e.pending == 0) {
			results[i] = dist.NoReceiver
			continue
		}
		m := d.Message
		if r.Kind != dist.Normal {
			if c, sub, ok := pickMember(e.subs, r.Kind, m.Publisher); ok {
				sc.copies = append(sc.copies, target{c: c, msg: m, qos: min(m.QoS, sub.qos), rap: sub.rap, ids: sub.ids(), shared: true})
			}
			continue
		}
		for c, sub := range e.subs {
			if sub.noLocal && c.clientID == m.Publisher {
				continue
			}
			j := -1
			if merging {
				if k, ok := sc.merged[copyKey{c, m}]; ok {
					j = k
				}
			} else {
				for k := range sc.copies {
					if t := &sc.copies[k]; t.c == c && t.msg == m && !t.shared {
						j = k
						break
					}
				}
			}
			if j >= 0 {
				t := &sc.copies[j]
				t.qos = max(t.qos, min(m.QoS, sub.qos))
				t.rap = t.rap || sub.rap
				if sub.id != 0 {
					t.ids = append(t.ids, sub.id)
				}
				continue
			}
			sc.copies = append(sc.copies, target{c: c, msg: m, qos: min(m.QoS, sub.qos), rap: sub.rap, ids: sub.ids()})
			if merging {
				sc.merged[copyKey{c, m}] = len(sc.copies) - 1
			} else if len(sc.copies) == 32 {
				merging = true
				if sc.merged == nil {
					sc.merged = make(map[copyKey]int, 64)
				}
				for k := range sc.copies {
					if !sc.copies[k].shared {
						sc.merged[copyKey{sc.copies[k].c, sc.copies[k].msg}] = k
					}
				}
			}
		}
	}
	x.mu.RUnlock()
	// A session whose queue is full gets a short wait for room (the
	// publishers slow down to what the subscribers take); one still full
	// after it is slow: its messages are dropped, and nobody waits for it
	// again until it drains.
	for i := range sc.copies {
		t := &sc.copies[i]
		if room := t.c.out.offer(*t, true, rd); room != nil {
			sc.waiting = append(sc.waiting, i)
			sc.rooms = append(sc.rooms, room)
		}
	}
	if len(sc.waiting) > 0 {
		if rd != nil {
			rd.flushOut() // nothing held while waiting
		}
		deadline := time.Now().Add(roomWait)
		timer := time.NewTimer(roomWait)
		defer timer.Stop()
		for i, j := range sc.waiting {
			t := &sc.copies[j]
			room := sc.rooms[i]
			progress := t.c.out.taken.Load()
			for room != nil {
				wait := time.Until(deadline)
				if wait <= 0 {
					if p := t.c.out.taken.Load(); p != progress {
						// The session is draining, only slower than its
						// publishers: they keep waiting (several readers
						// may wait on one session at once).
						progress, deadline = p, time.Now().Add(roomWait)
						continue
					}
					t.c.out.enqueue(*t) // no progress through a whole wait: the session is slow
					break
				}
				timer.Reset(wait)
				select {
				case <-room:
				case <-timer.C:
				}
				room = t.c.out.offer(*t, true, nil)
			}
		}
	}
	return results
}

// roomWait is how long a delivery waits for a full session queue that
// takes nothing before the session is marked slow.
const roomWait = 100 * time.Millisecond

// pickMember chooses the member of a local share group that gets a
// message: for $share the least busy (fewest messages queued or in
// flight: a slow or stalled member gets less, and a burst spreads over
// the idle ones), ties at random; for $oshare by rendezvous hash of the
// publisher (so one publisher's messages stay with one member).
func pickMember(subs map[*conn]subscription, kind dist.RouteKind, publisher string) (*conn, subscription, bool) {
	if len(subs) == 0 {
		return nil, subscription{}, false
	}
	if kind == dist.Shared {
		// The least busy member; map order breaks ties at random.
		var best *conn
		var bestSub subscription
		bestLoad := int32(0)
		for c, s := range subs {
			load := c.out.backlog.Load()
			if best == nil || load < bestLoad {
				best, bestSub, bestLoad = c, s, load
				if load == 0 {
					break
				}
			}
		}
		return best, bestSub, true
	}
	var best *conn
	var bestSub subscription
	var bestScore uint64
	for c, s := range subs {
		h := fnv.New64a()
		h.Write([]byte(publisher))
		h.Write([]byte{0})
		h.Write([]byte(c.clientID))
		if score := h.Sum64(); best == nil || score > bestScore || (score == bestScore && c.clientID < best.clientID) {
			best, bestSub, bestScore = c, s, score
		}
	}
	return best, bestSub, true
}
