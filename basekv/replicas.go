package basekv

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4"
)

// Replica configuration. Adding a replica is three steps, run by the node
// that leads the range:
//
//  1. a snapshot with no log kept behind it, so the new replica catches up
//     from a snapshot of the range (its data was not all written through
//     this range's log: a split's right half starts with data in place);
//  2. the Raft configuration change (voter or non-voting);
//  3. the target node starts its replica as a joining member.
//
// Removing is the configuration change, after which the removed replica's
// node stops it and drops its keys.

// AddReplica adds a replica of range id on node nodeID: a voter, or a
// learner (non-voting) when learner is set. Adding a voter where a learner
// of the range is promotes it.
func (s *Store) AddReplica(ctx context.Context, id uint64, nodeID string, learner bool) error {
	action := "add_voter"
	if learner {
		action = "add_learner"
	}
	err := s.onLeader(ctx, id, func(leader *Store) error { return leader.addReplica(ctx, id, nodeID, learner) })
	s.countChange(action, err)
	return err
}

// RemoveReplica removes node nodeID's replica of range id.
func (s *Store) RemoveReplica(ctx context.Context, id uint64, nodeID string) error {
	err := s.onLeader(ctx, id, func(leader *Store) error { return leader.removeReplica(ctx, id, nodeID) })
	s.countChange("remove", err)
	return err
}

func (s *Store) countChange(action string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.metrics.confChanges.WithLabelValues(action, outcome).Inc()
}

// Members returns the voters and learners of range id, by node id.
func (s *Store) Members(ctx context.Context, id uint64) (voters, learners []string, err error) {
	err = s.onAnyReplica(ctx, id, func(h *Store) error {
		actx, cancel := h.attemptCtx(ctx)
		defer cancel()
		m, err := h.node.nh.SyncGetShardMembership(actx, id)
		if err != nil {
			return mapRaftErr(err)
		}
		voters, learners = sortedNodes(m.Nodes), sortedNodes(m.NonVotings)
		return nil
	})
	return voters, learners, err
}

func sortedNodes(m map[uint64]string) []string {
	out := make([]string, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// onLeader runs f on the store of the node leading range id, retrying
// while the range has no leader.
func (s *Store) onLeader(ctx context.Context, id uint64, f func(leader *Store) error) error {
	return s.retryRange(ctx, id, func(r route) error {
		for _, h := range r.holders {
			if rsm := h.localRange(id); rsm != nil && h.isLeader(id, rsm.replica) {
				return f(h)
			}
		}
		return fmt.Errorf("%w: range %d has no leader", ErrUnavailable, id)
	})
}

func (s *Store) onAnyReplica(ctx context.Context, id uint64, f func(h *Store) error) error {
	return s.retryRange(ctx, id, func(r route) error { return f(s.pick(r)) })
}

// retryRange is retry for a call addressed to a range rather than a key.
func (s *Store) retryRange(ctx context.Context, id uint64, attempt func(r route) error) error {
	backoff := 5 * time.Millisecond
	for {
		var err error
		found := false
		for _, r := range s.routes().routes {
			if r.desc.ID == id {
				found, err = true, attempt(r)
				break
			}
		}
		if !found {
			err = fmt.Errorf("%w: range %d", ErrNoRange, id)
		}
		if err == nil || !IsRetryable(err) {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func (s *Store) addReplica(ctx context.Context, id uint64, nodeID string, learner bool) error {
	target := s.node.dir.node(nodeID)
	var ts *Store
	if target != nil {
		ts = target.store(s.name)
	}
	if ts == nil {
		return fmt.Errorf("basekv: node %s has not opened store %q", nodeID, s.name)
	}
	actx, cancel := s.attemptCtx(ctx)
	defer cancel()
	nh := s.node.nh
	m, err := nh.SyncGetShardMembership(actx, id)
	if err != nil {
		return mapRaftErr(err)
	}
	for _, n := range m.Nodes {
		if n == nodeID {
			if learner {
				return fmt.Errorf("basekv: node %s already holds a voter of range %d", nodeID, id)
			}
			return nil
		}
	}
	for rid, n := range m.NonVotings {
		if n == nodeID {
			if learner {
				return nil
			}
			// Promote the learner: the same replica id becomes a voter.
			return mapRaftErr(nh.SyncRequestAddReplica(actx, id, rid, nodeID, m.ConfigChangeID))
		}
	}
	// An applied entry first, so the snapshot is taken at the current
	// index and the log behind it is compacted away.
	if _, err := nh.SyncPropose(actx, nh.GetNoOPSession(id), []byte{cmdTouch}); err != nil {
		return mapRaftErr(err)
	}
	opt := dragonboat.SnapshotOption{OverrideCompactionOverhead: true, CompactionOverhead: 0}
	if _, err := nh.SyncRequestSnapshot(actx, id, opt); err != nil && !errors.Is(err, dragonboat.ErrRejected) {
		return mapRaftErr(err)
	}
	rid := newID()
	if learner {
		err = nh.SyncRequestAddNonVoting(actx, id, rid, nodeID, m.ConfigChangeID)
	} else {
		err = nh.SyncRequestAddReplica(actx, id, rid, nodeID, m.ConfigChangeID)
	}
	if err != nil {
		return mapRaftErr(err)
	}
	if !ts.work(func() { err = ts.joinReplica(id, rid, learner) }) {
		return fmt.Errorf("basekv: node %s is closing store %q: %w", nodeID, s.name, ErrClosed)
	}
	return err
}

// joinReplica starts a replica that joins range id's existing group.
func (s *Store) joinReplica(id, rid uint64, learner bool) error {
	li := &localInfo{replicaID: rid, join: true, learner: learner}
	if err := s.db.Set(localInfoKey(id), li.marshal(), pebble.Sync); err != nil {
		return err
	}
	return s.startReplica(id, li)
}

func (s *Store) removeReplica(ctx context.Context, id uint64, nodeID string) error {
	actx, cancel := s.attemptCtx(ctx)
	defer cancel()
	nh := s.node.nh
	m, err := nh.SyncGetShardMembership(actx, id)
	if err != nil {
		return mapRaftErr(err)
	}
	var rid uint64
	for r, n := range m.Nodes {
		if n == nodeID {
			rid = r
		}
	}
	for r, n := range m.NonVotings {
		if n == nodeID {
			rid = r
		}
	}
	if rid == 0 {
		return nil
	}
	if err := nh.SyncRequestDeleteReplica(actx, id, rid, m.ConfigChangeID); err != nil {
		return mapRaftErr(err)
	}
	if target := s.node.dir.node(nodeID); target != nil {
		if ts := target.store(s.name); ts != nil {
			ts.work(func() { ts.dropReplica(id) }) // a closing store keeps its keys: the range is gone from the group
		}
	}
	return nil
}

// dropReplica stops this node's replica of range id and deletes its keys.
func (s *Store) dropReplica(id uint64) {
	s.mu.Lock()
	rsm := s.mu.ranges[id]
	delete(s.mu.ranges, id)
	delete(s.mu.batchers, id)
	s.mu.Unlock()
	if rsm == nil {
		return
	}
	if err := s.node.nh.StopReplica(id, rsm.replica); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		s.node.log.Warn("stopping a removed replica", "store", s.name, "range", id, "err", err)
	}
	rsm.mu.RLock()
	desc := rsm.desc
	rsm.mu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	if desc != nil {
		lo, hi := dataSpan(desc.Start, desc.End)
		b.DeleteRange(lo, hi, nil)
	}
	for _, suffix := range []byte{'a', 'd', 'i'} {
		b.Delete(rangeKey(id, suffix), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		s.node.log.Warn("dropping a removed replica", "store", s.name, "range", id, "err", err)
	}
	s.node.dir.changed()
}

// reconcileLoop applies the replica-count setting to the ranges this node
// leads.
func (s *Store) reconcileLoop() {
	if s.ropts.Manual {
		return
	}
	tick := time.NewTicker(max(200*time.Millisecond, 10*s.node.opts.RTT))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.reconcile()
		}
	}
}

func (s *Store) reconcile() {
	holders := s.node.dir.storeHolders(s.name)
	if s.goneSince == nil {
		s.goneSince = make(map[string]time.Time)
	}
	for node := range s.goneSince {
		if holders[node] != nil {
			delete(s.goneSince, node)
		}
	}
	for _, desc := range s.localDescriptors() {
		rsm := s.localRange(desc.ID)
		if rsm == nil || !s.isLeader(desc.ID, rsm.replica) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.reconcileRange(ctx, desc.ID, holders); err != nil && !s.stopped() {
			s.node.log.Debug("replica count", "store", s.name, "range", desc.ID, "err", err)
		}
		cancel()
	}
}

func (s *Store) reconcileRange(ctx context.Context, id uint64, holders map[string]*Store) error {
	actx, cancel := s.attemptCtx(ctx)
	m, err := s.node.nh.SyncGetShardMembership(actx, id)
	cancel()
	if err != nil {
		return err
	}
	has := func(set map[uint64]string, node string) bool {
		for _, n := range set {
			if n == node {
				return true
			}
		}
		return false
	}
	candidates := make([]string, 0, len(holders))
	for node := range holders {
		candidates = append(candidates, node)
	}
	sort.Strings(candidates)
	// Replicas on nodes gone for longer than ReplaceAfter are replaced:
	// first a new voter on a live node, then the gone one is removed.
	liveVoters := 0
	var expired []string
	for _, node := range m.Nodes {
		if holders[node] != nil {
			liveVoters++
			continue
		}
		since, ok := s.goneSince[node]
		if !ok {
			s.goneSince[node] = time.Now()
		} else if time.Since(since) > s.ropts.ReplaceAfter {
			expired = append(expired, node)
		}
	}
	for _, node := range m.NonVotings {
		if holders[node] == nil {
			if since, ok := s.goneSince[node]; !ok {
				s.goneSince[node] = time.Now()
			} else if time.Since(since) > s.ropts.ReplaceAfter {
				return s.RemoveReplica(ctx, id, node)
			}
		}
	}
	if len(expired) > 0 {
		// Never shrink below the setting: a gone voter is removed only
		// once its replacement is in.
		if liveVoters >= s.ropts.Voters {
			return s.RemoveReplica(ctx, id, expired[0])
		}
		for _, node := range candidates {
			if !has(m.Nodes, node) {
				return s.AddReplica(ctx, id, node, false)
			}
		}
		return nil
	}
	wantVoters := min(s.ropts.Voters, len(candidates))
	if len(m.Nodes) < wantVoters {
		// Promote a learner first, else add a new voter.
		for _, node := range candidates {
			if has(m.NonVotings, node) {
				return s.AddReplica(ctx, id, node, false)
			}
		}
		for _, node := range candidates {
			if !has(m.Nodes, node) {
				return s.AddReplica(ctx, id, node, false)
			}
		}
	}
	wantLearners := s.ropts.Learners
	free := 0
	for _, node := range candidates {
		if !has(m.Nodes, node) {
			free++
		}
	}
	if wantLearners < 0 || wantLearners > free {
		wantLearners = free
	}
	if len(m.NonVotings) < wantLearners {
		for _, node := range candidates {
			if !has(m.Nodes, node) && !has(m.NonVotings, node) {
				return s.AddReplica(ctx, id, node, true)
			}
		}
	}
	return nil
}
