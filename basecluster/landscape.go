package basecluster

import (
	"sync"

	"github.com/bifromq-go/bifromq/basecrdt"
)

// The landscape is what every node publishes about itself for the others
// to read: per topic (for example "basekv/<store>" for a store's range
// descriptors, or service endpoints), one value per node. It is a
// replicated map topic → node → multi-value register; an entry counts only
// while its node is alive.

const landscapeCRDT = "landscape"

func (h *Host) landscape() (*Replicated, error) {
	return h.CRDT(landscapeCRDT, basecrdt.KindORMap, basecrdt.KindORMap, basecrdt.KindMVReg)
}

// Publish sets this node's value under topic.
func (h *Host) Publish(topic string, value []byte) error {
	r, err := h.landscape()
	if err != nil {
		return err
	}
	value = append([]byte(nil), value...)
	return r.Mutate(func(state basecrdt.CRDT, replica basecrdt.ReplicaID) basecrdt.CRDT {
		return state.(*basecrdt.ORMap).Apply(replica, topic, func(v basecrdt.CRDT) basecrdt.CRDT {
			return v.(*basecrdt.ORMap).Apply(replica, h.id, func(reg basecrdt.CRDT) basecrdt.CRDT {
				return reg.(*basecrdt.MVReg).Write(replica, value)
			})
		})
	})
}

// Withdraw removes this node's value under topic.
func (h *Host) Withdraw(topic string) error {
	r, err := h.landscape()
	if err != nil {
		return err
	}
	return r.Mutate(func(state basecrdt.CRDT, replica basecrdt.ReplicaID) basecrdt.CRDT {
		return state.(*basecrdt.ORMap).Apply(replica, topic, func(v basecrdt.CRDT) basecrdt.CRDT {
			return v.(*basecrdt.ORMap).Remove(h.id)
		})
	})
}

// Landscape returns the values published under topic by live nodes, by
// node id. Concurrent publications of one node (its previous life's and
// this one's) resolve to the greatest value.
func (h *Host) Landscape(topic string) map[string][]byte {
	r, err := h.landscape()
	if err != nil {
		return nil
	}
	alive := h.alive()
	out := make(map[string][]byte)
	r.Read(func(state basecrdt.CRDT) {
		v, ok := state.(*basecrdt.ORMap).Get(topic)
		if !ok {
			return
		}
		nodes := v.(*basecrdt.ORMap)
		for _, id := range nodes.Keys() {
			if !alive[id] {
				continue
			}
			reg, _ := nodes.Get(id)
			if vals := reg.(*basecrdt.MVReg).Values(); len(vals) > 0 {
				out[id] = append([]byte(nil), vals[len(vals)-1]...)
			}
		}
	})
	return out
}

// landscapeWatchers are signalled on every membership or CRDT change.
type landscapeWatchers struct {
	mu sync.Mutex
	cs map[chan struct{}]struct{}
}

// WatchLandscape returns a channel signalled (coalesced) after any change
// of the membership or of a replicated CRDT, and a function to stop.
func (h *Host) WatchLandscape() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	h.lw.mu.Lock()
	if h.lw.cs == nil {
		h.lw.cs = make(map[chan struct{}]struct{})
	}
	h.lw.cs[c] = struct{}{}
	h.lw.mu.Unlock()
	return c, func() {
		h.lw.mu.Lock()
		delete(h.lw.cs, c)
		h.lw.mu.Unlock()
	}
}

func (h *Host) landscapeChanged() {
	h.lw.mu.Lock()
	defer h.lw.mu.Unlock()
	for c := range h.lw.cs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
