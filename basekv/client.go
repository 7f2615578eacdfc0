package basekv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
)

// The client side of a store: every call is routed by key to the range
// holding it, sent to a replica (this node's when it has one, so Raft
// forwards a proposal to the leader itself), and retried on a stale route,
// a leader change or an attempt timeout until its context ends.

// routes returns the store's range map, rebuilt when the directory changed.
func (s *Store) routes() *rangeMap {
	dir := s.node.dir
	s.mu.RLock()
	m := s.mu.routes
	s.mu.RUnlock()
	if m != nil && m.gen == dir.gen.Load() {
		return m
	}
	m = dir.buildRangeMap(s.node, s.name)
	s.mu.Lock()
	s.mu.routes = m
	s.mu.Unlock()
	return m
}

// pick chooses the replica a query goes to: the local one, else the
// leader's, else any.
func (s *Store) pick(r route) *Store {
	var leader *Store
	for _, h := range r.holders {
		if h == s {
			return s
		}
		if rsm := h.localRange(r.desc.ID); rsm != nil && h.isLeader(r.desc.ID, rsm.replica) {
			leader = h
		}
	}
	if leader != nil {
		return leader
	}
	return r.holders[0]
}

// pickLeader chooses the replica a mutation goes to: the leader's, so that
// every caller's mutations meet in one batcher, else the local one, else
// any (Raft forwards a follower's proposal to the leader).
func (s *Store) pickLeader(r route) *Store {
	for _, h := range r.holders {
		if rsm := h.localRange(r.desc.ID); rsm != nil && h.isLeader(r.desc.ID, rsm.replica) {
			return h
		}
	}
	return s.pick(r)
}

// retry runs attempt until it succeeds, fails for good, or ctx ends.
func (s *Store) retry(ctx context.Context, key []byte, attempt func(r route, target *Store) error) error {
	backoff := time.Millisecond
	for {
		var err error
		if r, ok := s.routes().find(key); ok {
			err = attempt(r, s.pick(r))
		} else {
			err = fmt.Errorf("%w: store %q key %q", ErrNoRange, s.name, key)
		}
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil && IsRetryable(err) {
				return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
			}
			return err
		}
		if errors.Is(err, ErrStaleRoute) || errors.Is(err, ErrNoRange) {
			s.node.dir.changed()
		}
		s.metrics.retries.Inc()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-s.stop:
			return ErrClosed
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// Mutate applies input to the coprocessor of the range holding key and
// returns its output. Concurrent calls to one range are group-committed.
func (s *Store) Mutate(ctx context.Context, key, input []byte) ([]byte, error) {
	if s.stopped() {
		return nil, ErrClosed
	}
	if err := s.node.Health(); err != nil {
		return nil, err
	}
	start := time.Now()
	var out []byte
	err := s.retry(ctx, key, func(r route, _ *Store) error {
		var err error
		out, err = s.pickLeader(r).batcher(r.desc.ID).submit(ctx, r.desc.Ver, input)
		return err
	})
	s.metrics.mutateLatency.Observe(time.Since(start).Seconds())
	return out, err
}

// Query runs a read-only input on the range holding key: on a local
// replica when there is one; linearizable through a Raft read index when
// asked, else from the replica's current state.
func (s *Store) Query(ctx context.Context, key, input []byte, linearizable bool) ([]byte, error) {
	if s.stopped() {
		return nil, ErrClosed
	}
	var out []byte
	err := s.retry(ctx, key, func(r route, target *Store) error {
		var err error
		out, err = target.localQuery(ctx, r.desc.ID, &query{ver: r.desc.Ver, input: input}, linearizable)
		return err
	})
	return out, err
}

func (s *Store) localQuery(ctx context.Context, id uint64, q *query, linearizable bool) ([]byte, error) {
	var v interface{}
	var err error
	if linearizable {
		actx, cancel := s.attemptCtx(ctx)
		v, err = s.node.nh.SyncRead(actx, id, q)
		cancel()
	} else {
		v, err = s.node.nh.StaleRead(id, q)
	}
	if err != nil {
		return nil, mapRaftErr(err)
	}
	res := v.(*queryResult)
	if res.stale {
		return nil, fmt.Errorf("%w: range %d", ErrStaleRoute, id)
	}
	return res.out, nil
}

// mapRaftErr turns dragonboat's transient errors into this package's.
func mapRaftErr(err error) error {
	var ce *CoprocError
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, dragonboat.ErrShardNotFound), errors.Is(err, dragonboat.ErrShardNotReady),
		errors.Is(err, dragonboat.ErrShardClosed), errors.Is(err, dragonboat.ErrShardNotInitialized):
		return fmt.Errorf("%w: %v", ErrStaleRoute, err)
	case dragonboat.IsTempError(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, dragonboat.ErrTimeout):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// batcher group-commits the mutations sent to one range through this
// node: while proposals are in flight, new calls queue, and the next
// proposal carries up to MaxBatch of them in one Raft entry.
type batcher struct {
	st *Store
	id uint64

	mu       sync.Mutex
	pending  []*call
	inflight int
}

type call struct {
	ver   uint64
	input []byte
	done  chan struct{}
	out   []byte
	err   error
}

// maxInflight is the number of proposals a batcher keeps in flight.
const maxInflight = 4

func (s *Store) batcher(id uint64) *batcher {
	s.mu.RLock()
	b := s.mu.batchers[id]
	s.mu.RUnlock()
	if b != nil {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b = s.mu.batchers[id]; b == nil {
		b = &batcher{st: s, id: id}
		s.mu.batchers[id] = b
	}
	return b
}

func (b *batcher) submit(ctx context.Context, ver uint64, input []byte) ([]byte, error) {
	c := &call{ver: ver, input: input, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if b.inflight < maxInflight {
		if !b.st.spawn(b.run) {
			b.pending = b.pending[:len(b.pending)-1]
			b.mu.Unlock()
			return nil, ErrClosed
		}
		b.inflight++
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		// The input may still be applied: the caller learns it failed to
		// hear back, as with any timed-out write.
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// run proposes batches until no call is pending.
func (b *batcher) run() {
	for {
		b.mu.Lock()
		if len(b.pending) == 0 || b.st.stopped() {
			for _, c := range b.pending {
				c.err = ErrClosed
				close(c.done)
			}
			b.pending = nil
			b.inflight--
			b.mu.Unlock()
			return
		}
		// Take the longest prefix routed with the same version.
		n := 1
		for n < len(b.pending) && n < b.st.node.opts.MaxBatch && b.pending[n].ver == b.pending[0].ver {
			n++
		}
		calls := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		b.propose(calls)
	}
}

func (b *batcher) propose(calls []*call) {
	size := 1 + 3*binary.MaxVarintLen64
	for _, c := range calls {
		size += binary.MaxVarintLen64 + len(c.input)
	}
	cmd := make([]byte, 0, size)
	cmd = append(cmd, cmdMutate)
	cmd = binary.AppendUvarint(cmd, calls[0].ver)
	cmd = binary.AppendVarint(cmd, time.Now().UnixNano())
	cmd = binary.AppendUvarint(cmd, uint64(len(calls)))
	for _, c := range calls {
		cmd = appendBytes(cmd, c.input)
	}
	nh := b.st.node.nh
	ctx, cancel := context.WithTimeout(context.Background(), b.st.node.opts.ProposalTimeout)
	start := time.Now()
	res, err := nh.SyncPropose(ctx, nh.GetNoOPSession(b.id), cmd)
	cancel()
	b.st.metrics.proposals.Inc()
	b.st.metrics.batchSize.Observe(float64(len(calls)))
	b.st.metrics.proposalLatency.Observe(time.Since(start).Seconds())
	finish := func(err error) {
		for _, c := range calls {
			c.err = err
			close(c.done)
		}
	}
	if err != nil {
		finish(mapRaftErr(err))
		return
	}
	switch res.Value {
	case resStale:
		finish(fmt.Errorf("%w: range %d", ErrStaleRoute, b.id))
		return
	case resInvalid:
		finish(fmt.Errorf("basekv: range %d refused the command: %s", b.id, res.Data))
		return
	}
	r := newDecoder(res.Data)
	for _, c := range calls {
		status := r.Byte()
		out := r.Bytes()
		switch {
		case r.Err != nil:
			c.err = fmt.Errorf("basekv: range %d: %w", b.id, r.Err)
		case status != 0:
			c.err = &CoprocError{Msg: string(out)}
		default:
			c.out = out
		}
		close(c.done)
	}
}

// Split splits the range holding key at the key the coprocessor aligns key
// to, and returns the new right half. The data stays in place; the right
// half is a new range on the same voters.
func (s *Store) Split(ctx context.Context, key []byte) (RangeDescriptor, error) {
	if err := s.node.Health(); err != nil {
		return RangeDescriptor{}, err
	}
	var right RangeDescriptor
	err := s.retry(ctx, key, func(r route, target *Store) error {
		rsm := target.localRange(r.desc.ID)
		if rsm == nil {
			return fmt.Errorf("%w: range %d moved", ErrStaleRoute, r.desc.ID)
		}
		rsm.mu.RLock()
		aligned := rsm.cp.SplitKey(key)
		rsm.mu.RUnlock()
		if aligned == nil || !r.desc.Contains(aligned) || string(aligned) == string(r.desc.Start) {
			return fmt.Errorf("basekv: no split point at %q in %s", key, &r.desc)
		}
		actx, cancel := target.attemptCtx(ctx)
		defer cancel()
		m, err := target.node.nh.SyncGetShardMembership(actx, r.desc.ID)
		if err != nil {
			return mapRaftErr(err)
		}
		cmd := []byte{cmdSplit}
		cmd = binary.AppendUvarint(cmd, r.desc.Ver)
		cmd = appendBytes(cmd, aligned)
		cmd = binary.AppendUvarint(cmd, newID())
		cmd = binary.AppendUvarint(cmd, uint64(len(m.Nodes)))
		for _, node := range m.Nodes {
			cmd = binary.AppendUvarint(cmd, newID())
			cmd = appendBytes(cmd, []byte(node))
		}
		d, err := target.proposeRangeCmd(actx, r.desc.ID, "split", cmd)
		if err != nil {
			return err
		}
		right = *d
		s.metrics.splits.Inc()
		return nil
	})
	if err != nil {
		return right, err
	}
	// Return once the right half is routable, so callers route by the new
	// boundary at once.
	for {
		if r, ok := s.routes().find(right.Start); ok && r.desc.ID == right.ID {
			return right, nil
		}
		select {
		case <-ctx.Done():
			return right, nil // split done; routing catches up by itself
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Merge merges the range holding key with its right neighbour, which must
// have the same voters. The right range is sealed first (it stops
// serving), every replica of it is waited for until it applied the seal,
// then the left range absorbs it; its data stays where it is. It returns
// the merged range.
func (s *Store) Merge(ctx context.Context, key []byte) (RangeDescriptor, error) {
	if err := s.node.Health(); err != nil {
		return RangeDescriptor{}, err
	}
	lr, ok := s.routes().find(key)
	if !ok {
		return RangeDescriptor{}, fmt.Errorf("%w: key %q", ErrNoRange, key)
	}
	if lr.desc.End == nil {
		return RangeDescriptor{}, fmt.Errorf("basekv: %s has no right neighbour", &lr.desc)
	}
	rr, ok := s.routes().find(lr.desc.End)
	if !ok || string(rr.desc.Start) != string(lr.desc.End) {
		return RangeDescriptor{}, fmt.Errorf("%w: right neighbour of %s", ErrNoRange, &lr.desc)
	}
	lv, _, err := s.Members(ctx, lr.desc.ID)
	if err != nil {
		return RangeDescriptor{}, err
	}
	rv, rl, err := s.Members(ctx, rr.desc.ID)
	if err != nil {
		return RangeDescriptor{}, err
	}
	if fmt.Sprint(lv) != fmt.Sprint(rv) || len(rl) > 0 {
		return RangeDescriptor{}, fmt.Errorf("basekv: cannot merge %s (voters %v) with %s (voters %v, learners %v): replica sets differ",
			&lr.desc, lv, &rr.desc, rv, rl)
	}
	for _, node := range rv {
		if n := s.node.dir.node(node); n == nil || n.store(s.name) == nil || n.store(s.name).localRange(rr.desc.ID) == nil {
			return RangeDescriptor{}, fmt.Errorf("%w: cannot merge %s while its replica on node %s is down",
				ErrUnavailable, &rr.desc, node)
		}
	}
	// Seal the right range and learn the index of the seal.
	target := s.pickLeader(rr)
	actx, cancel := target.attemptCtx(ctx)
	sealed, err := target.proposeRangeCmd(actx, rr.desc.ID, "seal", binary.AppendUvarint([]byte{cmdSeal}, rr.desc.Ver))
	cancel()
	if err != nil {
		return RangeDescriptor{}, err
	}
	// Every replica of the right range (per its membership, not only the
	// live ones) must hold its final data before the left range's replicas
	// take it over: a replica that was down could otherwise replay the
	// merge before the seal.
	for _, node := range rv {
		for {
			var rsm *rangeSM
			if n := s.node.dir.node(node); n != nil {
				if st := n.store(s.name); st != nil {
					rsm = st.localRange(rr.desc.ID)
				}
			}
			done := false
			if rsm != nil {
				rsm.mu.RLock()
				done = rsm.desc != nil && rsm.desc.State == RangeSealed
				rsm.mu.RUnlock()
			}
			if done {
				break
			}
			select {
			case <-ctx.Done():
				return RangeDescriptor{}, fmt.Errorf("basekv: waiting for the replica of %s on node %s to seal: %w (the right range stays sealed until Merge is retried)",
					&rr.desc, node, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	var merged RangeDescriptor
	err = s.retryRange(ctx, lr.desc.ID, func(r route) error {
		cmd := binary.AppendUvarint([]byte{cmdMerge}, r.desc.Ver)
		cmd = appendBytes(cmd, sealed.marshal())
		t := s.pickLeader(r)
		actx, cancel := t.attemptCtx(ctx)
		defer cancel()
		d, err := t.proposeRangeCmd(actx, r.desc.ID, "merge", cmd)
		if err != nil {
			return err
		}
		merged = *d
		return nil
	})
	if err == nil {
		s.metrics.merges.Inc()
		s.node.dir.changed()
	}
	return merged, err
}

// proposeRangeCmd proposes a range command (split, seal, merge) through
// this node and decodes the descriptor it answers with.
func (s *Store) proposeRangeCmd(ctx context.Context, id uint64, what string, cmd []byte) (*RangeDescriptor, error) {
	res, err := s.node.nh.SyncPropose(ctx, s.node.nh.GetNoOPSession(id), cmd)
	if err != nil {
		return nil, mapRaftErr(err)
	}
	switch res.Value {
	case resStale:
		return nil, fmt.Errorf("%w: range %d", ErrStaleRoute, id)
	case resInvalid:
		return nil, fmt.Errorf("basekv: %s refused: %s", what, res.Data)
	}
	return unmarshalDescriptor(res.Data)
}

// Ranges returns the store's ranges as this node's directory sees them,
// sorted by start key.
func (s *Store) Ranges() []RangeDescriptor {
	m := s.routes()
	out := make([]RangeDescriptor, len(m.routes))
	for i, r := range m.routes {
		out[i] = r.desc
	}
	return out
}
