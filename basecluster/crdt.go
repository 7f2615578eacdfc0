package basecluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/bifromq-go/bifromq/basecrdt"
)

// Replication of named CRDTs. A delta made here is applied locally and
// queued as a gossip broadcast:
//
//	'd' uvarint len(name) name delta
//
// and every push-pull carries every CRDT's full state:
//
//	's' uvarint n, n x (uvarint len(name) name uvarint len(state) state)
//
// Joins are commutative, associative and idempotent, so duplicated,
// reordered or lost broadcasts are harmless: push-pull repairs the losses.
// A CRDT received before this node opened it is kept and handed over when
// it does.

type crdtSet struct {
	h *Host
	// replica is this process's CRDT replica id: the node id and the start
	// time, so a restarted node never reuses the dots of its previous life.
	replica basecrdt.ReplicaID

	mu   sync.Mutex
	vals map[string]basecrdt.CRDT
}

func newCRDTSet(h *Host) *crdtSet {
	return &crdtSet{h: h, replica: basecrdt.ReplicaID(fmt.Sprintf("%s@%d", h.id, time.Now().UnixNano())),
		vals: make(map[string]basecrdt.CRDT)}
}

// Replicated is a named CRDT replicated over the cluster's gossip.
type Replicated struct {
	set  *crdtSet
	name string
}

// CRDT opens the replicated CRDT called name, of kind (and, for maps,
// value kinds). Every node opening the same name must use the same kinds.
func (h *Host) CRDT(name string, kind basecrdt.Kind, valueKinds ...basecrdt.Kind) (*Replicated, error) {
	s := h.crdts
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.vals[name]; ok {
		if cur.Kind() != kind {
			return nil, fmt.Errorf("basecluster: CRDT %q is a %v, not a %v", name, cur.Kind(), kind)
		}
		return &Replicated{set: s, name: name}, nil
	}
	v, err := basecrdt.New(kind, valueKinds...)
	if err != nil {
		return nil, err
	}
	s.vals[name] = v
	return &Replicated{set: s, name: name}, nil
}

// Mutate applies a mutation: f gets the current state and this node's
// replica id, mutates the state through the CRDT's mutators and returns the
// delta they produced, which is broadcast. f runs under the set's lock and
// must not call back into the host.
func (r *Replicated) Mutate(f func(state basecrdt.CRDT, replica basecrdt.ReplicaID) basecrdt.CRDT) error {
	s := r.set
	s.mu.Lock()
	delta := f(s.vals[r.name], s.replica)
	var msg []byte
	if delta != nil {
		b, err := delta.MarshalBinary()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		msg = append(appendName([]byte{'d'}, r.name), b...)
	}
	s.mu.Unlock()
	if msg != nil {
		s.h.bcasts.QueueBroadcast(&broadcast{msg: msg})
		s.h.metrics.deltasOut.Inc()
	}
	s.h.signal()
	return nil
}

// Read calls f with the current state, under the set's lock; f must not
// keep it or call back into the host.
func (r *Replicated) Read(f func(state basecrdt.CRDT)) {
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	f(r.set.vals[r.name])
}

func appendName(b []byte, name string) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

var errBadMessage = errors.New("basecluster: malformed CRDT message")

func readName(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, errBadMessage
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

// applyMessage joins a broadcast delta.
func (s *crdtSet) applyMessage(b []byte) error {
	if b[0] != 'd' {
		return errBadMessage
	}
	name, rest, err := readName(b[1:])
	if err != nil {
		return err
	}
	if err := s.join(name, rest); err != nil {
		return err
	}
	s.h.signal()
	return nil
}

func (s *crdtSet) join(name string, b []byte) error {
	v, err := basecrdt.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("basecluster: CRDT %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.vals[name]
	if !ok {
		s.vals[name] = v
		return nil
	}
	return cur.Join(v)
}

// fullState encodes every CRDT's state.
func (s *crdtSet) fullState() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.vals))
	for n := range s.vals {
		names = append(names, n)
	}
	sort.Strings(names)
	b := []byte{'s'}
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		st, err := s.vals[n].MarshalBinary()
		if err != nil {
			s.h.log.Error("encoding a CRDT", "name", n, "err", err)
			st = nil
		}
		b = appendName(b, n)
		b = binary.AppendUvarint(b, uint64(len(st)))
		b = append(b, st...)
	}
	return b
}

// mergeFullState joins a remote full state.
func (s *crdtSet) mergeFullState(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if b[0] != 's' {
		return errBadMessage
	}
	b = b[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 {
		return errBadMessage
	}
	b = b[k:]
	var firstErr error
	for i := uint64(0); i < count; i++ {
		name, rest, err := readName(b)
		if err != nil {
			return err
		}
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return errBadMessage
		}
		state := rest[k : k+int(n)]
		b = rest[k+int(n):]
		if len(state) == 0 {
			continue
		}
		if err := s.join(name, state); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	s.h.signal()
	return firstErr
}
