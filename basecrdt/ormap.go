package basecrdt

import (
	"maps"
	"slices"
)

// ORMap is an observed-remove map from strings to CRDTs of one kind fixed
// at construction, which may itself be an ORMap. Its values have no
// contexts of their own: they share the map's, so a value's dots are
// allocated from, and its removals recorded in, the one context of the
// outermost map. A key is present while its value's store is not empty;
// Remove drops the value's observed dots, so an update concurrent with a
// Remove survives it (observed-remove: the update's effect is kept, the
// rest of the value is gone), and a key removed and then updated again
// starts from an empty value.
//
// Make one with NewORMap or New; the zero value has no value kind and is
// not usable. (The zero values of the other types are empty and usable.)
type ORMap struct {
	ctx  *Context
	path []Kind // KindORMap, then the kind path of the values; never modified
	s    map[string]causal
}

// NewORMap returns an empty map whose values have kind valueKind. A map of
// maps names the kinds further down in nested: NewORMap(KindORMap,
// KindMVReg) is a map of maps of registers. It panics on an invalid kind
// path; New returns an error instead.
func NewORMap(valueKind Kind, nested ...Kind) *ORMap {
	path := append([]Kind{KindORMap, valueKind}, nested...)
	if err := checkKinds(path); err != nil {
		panic(err)
	}
	return &ORMap{ctx: NewContext(), path: path}
}

// ValueKinds returns the kind path of the values: the value kind, then,
// for a map of maps, the kinds further down.
func (m *ORMap) ValueKinds() []Kind { return slices.Clone(m.vk()) }

func (m *ORMap) vk() []Kind { return m.path[1:] }

// Apply updates the value at key as replica r and returns the map's delta.
// f is called once with the value (an empty one if key is absent), must
// change it only through its mutators (Write, Add, Inc, Apply, ...) and
// must return the delta that mutator returned (several deltas joined into
// one if it called several, nil if it changed nothing). The value passed to
// f belongs to the map: f must not keep it. Apply takes over the returned
// delta. A value left empty (a cleared register, an emptied set) removes
// the key. Apply panics when f returns a CRDT of the wrong kind or the value
// itself.
//
// r is the replica on whose behalf f runs; the map allocates no dot of its
// own.
func (m *ORMap) Apply(r ReplicaID, key string, f func(v CRDT) CRDT) *ORMap {
	_ = r
	c := m.context()
	v, ok := m.s[key]
	if !ok {
		v = newEmpty(m.vk(), c)
	}
	out := f(v)
	delta := &ORMap{ctx: NewContext(), path: m.path}
	if out != nil {
		dv, ok := out.(causal)
		if !ok || dv == nil || !slices.Equal(dv.kinds(), m.vk()) {
			panic("basecrdt: ORMap.Apply: f returned " + kindName(out) + ", want a delta of " + kindName(v))
		}
		if dv == v {
			panic("basecrdt: ORMap.Apply: f returned the value itself, not a delta")
		}
		delta.ctx = dv.context().Clone()
		if !dv.bottom() {
			delta.s = map[string]causal{key: dv.cloneStore(delta.ctx)}
		}
	}
	if v.bottom() {
		delete(m.s, key)
	} else {
		if m.s == nil {
			m.s = make(map[string]causal)
		}
		m.s[key] = v
	}
	return delta
}

// Remove removes key and returns the delta.
func (m *ORMap) Remove(key string) *ORMap {
	delta := &ORMap{ctx: NewContext(), path: m.path}
	if v, ok := m.s[key]; ok {
		v.eachDot(delta.ctx.Add)
		delete(m.s, key)
	}
	return delta
}

// Get returns a deep copy of the value at key, with a copy of the map's
// context, and whether key is present. Changing the copy does not change
// the map.
func (m *ORMap) Get(key string) (CRDT, bool) {
	v, ok := m.s[key]
	if !ok {
		return nil, false
	}
	return v.cloneStore(m.context().Clone()), true
}

// Keys returns the present keys, sorted.
func (m *ORMap) Keys() []string { return slices.Sorted(maps.Keys(m.s)) }

// Len returns the number of present keys.
func (m *ORMap) Len() int { return len(m.s) }

// Kind returns KindORMap.
func (m *ORMap) Kind() Kind { return KindORMap }

// Join implements CRDT.
func (m *ORMap) Join(other CRDT) error { return joinCausal(m, other) }

// Clone implements CRDT.
func (m *ORMap) Clone() CRDT { return cloneCausal(m) }

// Equal implements CRDT.
func (m *ORMap) Equal(other CRDT) bool { return equalCausal(m, other) }

// MarshalBinary implements CRDT.
func (m *ORMap) MarshalBinary() ([]byte, error) { return marshal(m), nil }

func (m *ORMap) kinds() []Kind { return m.path }

func (m *ORMap) context() *Context { return lazyContext(&m.ctx) }

func (m *ORMap) bind(c *Context) {
	m.ctx = c
	for _, v := range m.s {
		v.bind(c)
	}
}

func (m *ORMap) joinStore(fc *Context, o causal, gc *Context) {
	om := o.(*ORMap)
	c := m.context()
	for k, v := range m.s {
		if _, ok := om.s[k]; ok {
			continue
		}
		v.joinStore(fc, newEmpty(m.vk(), gc), gc)
		if v.bottom() {
			delete(m.s, k)
		}
	}
	for k, ov := range om.s {
		v, ok := m.s[k]
		if !ok {
			v = newEmpty(m.vk(), c)
		}
		v.joinStore(fc, ov, gc)
		if v.bottom() {
			delete(m.s, k)
			continue
		}
		if m.s == nil {
			m.s = make(map[string]causal)
		}
		m.s[k] = v
	}
}

func (m *ORMap) bottom() bool { return len(m.s) == 0 }

func (m *ORMap) eachDot(f func(Dot)) {
	for _, v := range m.s {
		v.eachDot(f)
	}
}

func (m *ORMap) storeEqual(o causal) bool {
	om := o.(*ORMap)
	if len(m.s) != len(om.s) {
		return false
	}
	for k, v := range m.s {
		w, ok := om.s[k]
		if !ok || !v.storeEqual(w) {
			return false
		}
	}
	return true
}

func (m *ORMap) cloneStore(c *Context) causal {
	n := &ORMap{ctx: c, path: m.path}
	if len(m.s) > 0 {
		n.s = make(map[string]causal, len(m.s))
		for k, v := range m.s {
			n.s[k] = v.cloneStore(c)
		}
	}
	return n
}

func (m *ORMap) encodeStore(e *encoder) {
	e.uvarint(uint64(len(m.s)))
	for _, k := range m.Keys() {
		e.str(k)
		m.s[k].encodeStore(e)
	}
}

func (m *ORMap) decodeStore(d *decoder) error {
	c := m.context()
	return decodeKeyed(d, func(k string) error {
		v := newEmpty(m.vk(), c)
		if err := v.decodeStore(d); err != nil {
			return err
		}
		if v.bottom() {
			return d.corrupt("key %q with an empty value", k)
		}
		if m.s == nil {
			m.s = make(map[string]causal)
		}
		m.s[k] = v
		return nil
	})
}
