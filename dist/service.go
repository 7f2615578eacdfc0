package dist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"sync"
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

// Message is a published message as dist hands it to deliverers. It is
// shared by every delivery of one Pub and must not be modified.
type Message struct {
	Topic     string
	Payload   []byte
	QoS       byte
	Retain    bool
	Publisher string // the publishing client's id, for $oshare pinning and no-local
	// Props carries the message's MQTT properties as the frontend encoded
	// them; dist does not read it.
	Props []byte
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
// message is durable where the receiver is persistent.
type Deliverer interface {
	Deliver(ctx context.Context, batch []Delivery) []Result
}

// Service routes published messages: it matches them against the routes
// in the dist.worker store, picks one member per shared group, groups the
// deliveries by deliverer and unroutes receivers that are gone.
type Service struct {
	worker *Worker
	mu     sync.RWMutex
	owners map[string]Deliverer
}

// NewService returns a service over w.
func NewService(w *Worker) *Service { return &Service{worker: w, owners: make(map[string]Deliverer)} }

// Register makes d the deliverer of receivers named name.
func (s *Service) Register(name string, d Deliverer) {
	s.mu.Lock()
	s.owners[name] = d
	s.mu.Unlock()
}

// ErrNoDeliverer is reported (and counted as failed) for a route whose
// deliverer is not registered on this node.
var ErrNoDeliverer = errors.New("dist: no deliverer for the receiver")

// Pub delivers msg to tenant's matching routes and returns how many
// deliveries were accepted. Deliveries that failed are reported in the
// error; receivers that are gone are unrouted.
func (s *Service) Pub(ctx context.Context, tenant string, msg *Message) (int, error) {
	routes, err := s.worker.Match(ctx, tenant, msg.Topic)
	if err != nil {
		return 0, err
	}
	chosen := pickShared(routes, msg.Publisher)
	byOwner := make(map[string][]Delivery)
	var errs []error
	for _, r := range chosen {
		name, _, ok := SplitReceiver(r.Receiver)
		if !ok {
			continue
		}
		byOwner[name] = append(byOwner[name], Delivery{Route: r, Message: msg})
	}
	names := make([]string, 0, len(byOwner))
	for n := range byOwner {
		names = append(names, n)
	}
	sort.Strings(names)
	accepted := 0
	for _, name := range names {
		batch := byOwner[name]
		s.mu.RLock()
		d := s.owners[name]
		s.mu.RUnlock()
		if d == nil {
			errs = append(errs, fmt.Errorf("%w %q (%d deliveries)", ErrNoDeliverer, name, len(batch)))
			continue
		}
		results := d.Deliver(ctx, batch)
		for i, res := range results {
			if i >= len(batch) {
				break
			}
			switch res {
			case Delivered:
				accepted++
			case NoReceiver:
				// Gone for good: the deliverer owns the receiver's
				// lifecycle, so any incarnation of the route goes.
				if _, err := s.worker.RemoveRoute(ctx, batch[i].Route, ^uint64(0)); err != nil {
					errs = append(errs, err)
				}
			default:
				errs = append(errs, fmt.Errorf("dist: delivery to %q failed", batch[i].Route.Receiver))
			}
		}
	}
	return accepted, errors.Join(errs...)
}

// pickShared keeps every normal route and one member per shared group: a
// random one for $share, and for $oshare the member the publisher hashes
// to (rendezvous hashing), so one publisher's messages keep their order.
func pickShared(routes []Route, publisher string) []Route {
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
