package basecluster

import (
	"bytes"
	"sort"
	"sync"

	"github.com/bifromq-go/bifromq/basecrdt"
)

// Agents are named groups of nodes (dist.worker, inbox.store, rpc, ...)
// that nodes join with metadata. An agent is a replicated map from node id
// to a multi-value register of the member's metadata; a member counts only
// while its node is alive in the membership, so a crashed node leaves every
// agent at once.

// AgentMember is a node in an agent, with the metadata it joined with.
type AgentMember struct {
	ID   string
	Meta []byte
}

func agentCRDT(name string) string { return "agent/" + name }

func (h *Host) agent(name string) (*Replicated, error) {
	return h.CRDT(agentCRDT(name), basecrdt.KindORMap, basecrdt.KindMVReg)
}

// JoinAgent makes this node a member of agent name, with meta (replacing
// the metadata of an earlier join).
func (h *Host) JoinAgent(name string, meta []byte) error {
	r, err := h.agent(name)
	if err != nil {
		return err
	}
	meta = append([]byte(nil), meta...)
	return r.Mutate(func(state basecrdt.CRDT, replica basecrdt.ReplicaID) basecrdt.CRDT {
		return state.(*basecrdt.ORMap).Apply(replica, h.id, func(v basecrdt.CRDT) basecrdt.CRDT {
			return v.(*basecrdt.MVReg).Write(replica, meta)
		})
	})
}

// LeaveAgent removes this node from agent name.
func (h *Host) LeaveAgent(name string) error {
	r, err := h.agent(name)
	if err != nil {
		return err
	}
	return r.Mutate(func(state basecrdt.CRDT, _ basecrdt.ReplicaID) basecrdt.CRDT {
		return state.(*basecrdt.ORMap).Remove(h.id)
	})
}

// AgentMembers returns the live members of agent name, sorted by id.
func (h *Host) AgentMembers(name string) []AgentMember {
	r, err := h.agent(name)
	if err != nil {
		return nil
	}
	alive := h.alive()
	var out []AgentMember
	r.Read(func(state basecrdt.CRDT) {
		m := state.(*basecrdt.ORMap)
		for _, id := range m.Keys() {
			if !alive[id] {
				continue
			}
			v, _ := m.Get(id)
			var meta []byte
			if vals := v.(*basecrdt.MVReg).Values(); len(vals) > 0 {
				meta = append([]byte(nil), vals[len(vals)-1]...)
			}
			out = append(out, AgentMember{ID: id, Meta: meta})
		}
	})
	return out
}

// Watcher delivers an agent's member set: the current one first, then each
// change. C holds at most one set; a slow reader gets the latest.
type Watcher struct {
	h     *Host
	agent string
	c     chan []AgentMember

	mu     sync.Mutex
	last   []AgentMember
	closed bool
}

type watcher = Watcher

// WatchAgent starts watching agent name.
func (h *Host) WatchAgent(name string) *Watcher {
	w := &Watcher{h: h, agent: name, c: make(chan []AgentMember, 1)}
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		w.close()
		return w
	}
	h.mu.watchers[w] = struct{}{}
	h.mu.Unlock()
	w.update(true)
	return w
}

// C is the channel of member sets; it is closed when the watcher or the
// host is closed.
func (w *Watcher) C() <-chan []AgentMember { return w.c }

// Close stops the watcher.
func (w *Watcher) Close() {
	w.h.mu.Lock()
	delete(w.h.mu.watchers, w)
	w.h.mu.Unlock()
	w.close()
}

func (w *Watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.c)
	}
}

// update sends the current set if it changed (or always when first).
func (w *Watcher) update(first bool) {
	cur := w.h.AgentMembers(w.agent)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || (!first && sameMembers(cur, w.last)) {
		return
	}
	w.last = cur
	select {
	case <-w.c: // drop the undelivered older set
	default:
	}
	w.c <- cur
}

func sameMembers(a, b []AgentMember) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Meta, b[i].Meta) {
			return false
		}
	}
	return true
}

func (h *Host) notifyWatchers() {
	h.mu.Lock()
	ws := make([]*Watcher, 0, len(h.mu.watchers))
	for w := range h.mu.watchers {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	sort.Slice(ws, func(i, j int) bool { return ws[i].agent < ws[j].agent })
	for _, w := range ws {
		w.update(false)
	}
	h.landscapeChanged()
}
