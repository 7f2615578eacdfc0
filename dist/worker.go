package dist

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/basekv/coproc"
	"github.com/bifromq-go/bifromq/internal/wire"
)

// WorkerStore is the basekv store that holds the routes.
const WorkerStore = "dist.worker"

// The dist.worker coprocessor. A route is a key (RouteKey) whose value is
// the incarnation it was added with, so a late add or remove from an older
// incarnation of a session cannot undo a newer one. Inputs:
//
//	'A' uvarint incarnation, bytes key   add (or refresh) a route; output 1, or 0 if a newer incarnation holds it
//	'R' uvarint incarnation, bytes key   remove a route unless a newer incarnation holds it; output 1 if removed
//	'M' bytes tenant, bytes topic        (query) the matching routes: uvarint n, n x (bytes key, uvarint incarnation)
//
// bytes is a uvarint length then the bytes.
type workerCoproc struct{ cache *matchCache }

// WorkerCoprocessor is the coproc.Factory of the dist.worker store: one
// coprocessor, with its match cache, per range replica.
func WorkerCoprocessor(string, uint64, coproc.Boundary) coproc.Coprocessor {
	return workerCoproc{cache: &matchCache{}}
}

var errBadInput = errors.New("dist: malformed worker input")

func readInput(in []byte) (op byte, inc uint64, a, b []byte, err error) {
	d := wire.Decoder{B: in, Malformed: errBadInput}
	op = d.Byte()
	if op == 'A' || op == 'R' {
		inc = d.Uvarint()
	}
	a = d.Bytes()
	if op == 'M' {
		b = d.Bytes()
	}
	return op, inc, a, b, d.Err
}

func (c workerCoproc) Mutate(_ coproc.MutateContext, in []byte, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	op, inc, key, _, err := readInput(in)
	if err != nil {
		return nil, err
	}
	route, err := DecodeRouteKey(key)
	if err != nil {
		return nil, err
	}
	if err := c.cache.ensure(route.Tenant, r); err != nil {
		return nil, err
	}
	cur, ok, err := r.Get(key)
	if err != nil {
		return nil, err
	}
	var held uint64
	if ok {
		held, _ = binary.Uvarint(cur)
	}
	switch op {
	case 'A':
		if ok && held > inc {
			return []byte{0}, nil
		}
		if err := w.Put(key, binary.AppendUvarint(nil, inc)); err != nil {
			return nil, err
		}
		route.Incarnation = inc
		c.cache.apply(true, key, route)
		return []byte{1}, nil
	case 'R':
		if !ok || held > inc {
			return []byte{0}, nil
		}
		if err := w.Delete(key); err != nil {
			return nil, err
		}
		c.cache.apply(false, key, route)
		return []byte{1}, nil
	}
	return nil, errBadInput
}

func (c workerCoproc) Query(in []byte, r coproc.Reader) ([]byte, error) {
	op, _, tenant, topic, err := readInput(in)
	if err != nil || op != 'M' {
		return nil, errBadInput
	}
	routes, cached := c.cache.lookup(string(tenant), string(topic))
	if !cached {
		if routes, err = Match(readerScanner{r}, string(tenant), string(topic)); err != nil {
			return nil, err
		}
	}
	out := binary.AppendUvarint(nil, uint64(len(routes)))
	for _, rt := range routes {
		k := RouteKey(rt)
		if !cached {
			v, _, err := r.Get(k)
			if err != nil {
				return nil, err
			}
			rt.Incarnation, _ = binary.Uvarint(v)
		}
		out = wire.AppendBytes(out, k)
		out = binary.AppendUvarint(out, rt.Incarnation)
	}
	return out, nil
}

func (c workerCoproc) Reset(coproc.Boundary) { c.cache.reset() }

// SplitKey keeps a tenant's routes in one range: a split proposed inside a
// tenant's keys moves to the start of that tenant.
func (workerCoproc) SplitKey(key []byte) []byte {
	tenant, _, end, err := readSeg(key)
	if err != nil || end {
		return key
	}
	return appendSeg(nil, tenant)
}

// readerScanner scans a range's keys through basekv's coproc.Reader.
type readerScanner struct{ r coproc.Reader }

func (s readerScanner) Scan(prefix []byte, fn func([]byte) bool) error {
	return s.r.Iterate(prefix, prefixEnd(prefix), func(k, _ []byte) bool { return fn(k) })
}

// Worker is the client of the dist.worker store.
type Worker struct{ s *basekv.Store }

// OpenWorker opens (or creates) the dist.worker store on a basekv node.
func OpenWorker(n *basekv.Node, ro basekv.ReplicaOptions) (*Worker, error) {
	s, err := n.Store(WorkerStore, WorkerCoprocessor, ro)
	if err != nil {
		return nil, err
	}
	return &Worker{s: s}, nil
}

// Store is the underlying basekv store.
func (w *Worker) Store() *basekv.Store { return w.s }

func (w *Worker) change(ctx context.Context, op byte, r Route, inc uint64) (bool, error) {
	if r.Kind < Normal || r.Kind > OrderedShare {
		return false, fmt.Errorf("dist: route kind %d", r.Kind)
	}
	key := RouteKey(r)
	in := wire.AppendBytes(binary.AppendUvarint([]byte{op}, inc), key)
	out, err := w.s.Mutate(ctx, key, in)
	if err != nil {
		return false, err
	}
	return len(out) == 1 && out[0] == 1, nil
}

// AddRoute adds r for the given incarnation of its receiver; false when a
// newer incarnation already holds it.
func (w *Worker) AddRoute(ctx context.Context, r Route, incarnation uint64) (bool, error) {
	return w.change(ctx, 'A', r, incarnation)
}

// RemoveRoute removes r unless a newer incarnation holds it.
func (w *Worker) RemoveRoute(ctx context.Context, r Route, incarnation uint64) (bool, error) {
	return w.change(ctx, 'R', r, incarnation)
}

// Match returns tenant's routes matching topic, each with the incarnation
// that holds it, read from a local replica where there is one.
func (w *Worker) Match(ctx context.Context, tenant, topic string) ([]Route, error) {
	in := wire.AppendBytes(wire.AppendBytes([]byte{'M'}, tenant), topic)
	out, err := w.s.Query(ctx, appendSeg(nil, tenant), in, false)
	if err != nil {
		return nil, err
	}
	d := wire.Decoder{B: out, Malformed: errBadInput}
	n := d.Count()
	routes := make([]Route, 0, n)
	for i := 0; i < n && d.Err == nil; i++ {
		r, err := DecodeRouteKey(d.Bytes())
		if err != nil {
			return nil, err
		}
		r.Incarnation = d.Uvarint()
		routes = append(routes, r)
	}
	if d.Err != nil {
		return nil, d.Err
	}
	return routes, nil
}
