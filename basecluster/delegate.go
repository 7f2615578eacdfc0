package basecluster

import (
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate plugs the CRDTs into memberlist: deltas ride on gossip
// broadcasts, full states on push-pull (periodic and at join).
type delegate struct{ h *Host }

// NodeMeta implements memberlist.Delegate: no per-node metadata (agents
// carry theirs in CRDTs).
func (d *delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg implements memberlist.Delegate: a CRDT delta broadcast.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	d.h.metrics.deltasIn.Inc()
	if err := d.h.crdts.applyMessage(b); err != nil {
		d.h.log.Warn("dropping a bad CRDT delta", "err", err)
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.h.bcasts.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: every CRDT's full state.
func (d *delegate) LocalState(bool) []byte { return d.h.crdts.fullState() }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState(b []byte, _ bool) {
	d.h.metrics.pushPulls.Inc()
	if err := d.h.crdts.mergeFullState(b); err != nil {
		d.h.log.Warn("dropping a bad CRDT state", "err", err)
	}
}

// events tracks membership changes: watchers are told, and lost members
// are remembered for the re-join loop.
type events struct{ h *Host }

// The event callbacks run under memberlist's node lock: they must not call
// back into memberlist, so they record and signal the notify loop.

func (e *events) NotifyJoin(n *memberlist.Node) {
	e.h.mu.Lock()
	delete(e.h.mu.lost, n.Name)
	e.h.mu.Unlock()
	e.h.signal()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	if n.Name != e.h.id {
		e.h.mu.Lock()
		e.h.mu.lost[n.Name] = lostMember{addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), at: time.Now()}
		e.h.mu.Unlock()
	}
	e.h.signal()
}

func (e *events) NotifyUpdate(*memberlist.Node) { e.h.signal() }

// signal asks the notify loop to refresh watchers and metrics (coalesced).
func (h *Host) signal() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// notifyLoop tells watchers about membership and CRDT changes, outside
// memberlist's locks and the CRDT set's lock.
func (h *Host) notifyLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case <-h.changed:
			h.metrics.members.Set(float64(h.ml.NumMembers()))
			h.notifyWatchers()
		}
	}
}

// broadcast is one queued delta.
type broadcast struct{ msg []byte }

func (b *broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *broadcast) Message() []byte                       { return b.msg }
func (b *broadcast) Finished()                             {}
