package basecrdt

import (
	"maps"
	"slices"
)

// AWORSet is an add-wins observed-remove set of strings. Its store maps
// each element to a set of dots: Add replaces the element's observed dots
// with a new one, Remove drops the observed dots. A Remove concurrent with
// an Add cannot drop the Add's dot, which it has not seen, so the element
// stays.
type AWORSet struct {
	ctx *Context
	s   keyed[struct{}]
}

// NewAWORSet returns an empty set.
func NewAWORSet() *AWORSet { return &AWORSet{ctx: NewContext()} }

// Add adds e as replica r and returns the delta.
func (x *AWORSet) Add(r ReplicaID, e string) *AWORSet {
	c := x.context()
	delta := NewAWORSet()
	x.s[e].addTo(delta.ctx)
	d := c.Next(r)
	delta.ctx.Add(d)
	if x.s == nil {
		x.s = make(keyed[struct{}])
	}
	x.s[e] = dotFun[struct{}]{d: {}}
	delta.s = keyed[struct{}]{e: {d: {}}}
	return delta
}

// Remove removes e and returns the delta. It allocates no dot, so r is
// unused; it is there to match RWORSet.Remove.
func (x *AWORSet) Remove(r ReplicaID, e string) *AWORSet {
	_ = r
	delta := NewAWORSet()
	x.s[e].addTo(delta.ctx)
	delete(x.s, e)
	return delta
}

// Contains reports whether e is in the set.
func (x *AWORSet) Contains(e string) bool { return len(x.s[e]) > 0 }

// Elements returns the elements, sorted.
func (x *AWORSet) Elements() []string { return slices.Sorted(maps.Keys(x.s)) }

// Kind returns KindAWORSet.
func (x *AWORSet) Kind() Kind { return KindAWORSet }

// Join implements CRDT.
func (x *AWORSet) Join(other CRDT) error { return joinCausal(x, other) }

// Clone implements CRDT.
func (x *AWORSet) Clone() CRDT { return cloneCausal(x) }

// Equal implements CRDT.
func (x *AWORSet) Equal(other CRDT) bool { return equalCausal(x, other) }

// MarshalBinary implements CRDT.
func (x *AWORSet) MarshalBinary() ([]byte, error) { return marshal(x), nil }

func (x *AWORSet) kinds() []Kind { return kindPaths[KindAWORSet] }

func (x *AWORSet) context() *Context { return lazyContext(&x.ctx) }

func (x *AWORSet) bind(c *Context) { x.ctx = c }

func (x *AWORSet) joinStore(fc *Context, o causal, gc *Context) {
	x.s = joinKeyed(x.s, fc, o.(*AWORSet).s, gc, pickUnit)
}

func (x *AWORSet) bottom() bool { return len(x.s) == 0 }

func (x *AWORSet) eachDot(f func(Dot)) {
	for _, ds := range x.s {
		for d := range ds {
			f(d)
		}
	}
}

func (x *AWORSet) storeEqual(o causal) bool { return equalKeyed(x.s, o.(*AWORSet).s, eqUnit) }

func (x *AWORSet) cloneStore(c *Context) causal { return &AWORSet{ctx: c, s: x.s.clone()} }

func (x *AWORSet) encodeStore(e *encoder) {
	e.uvarint(uint64(len(x.s)))
	for _, k := range slices.Sorted(maps.Keys(x.s)) {
		e.str(k)
		encodeUnits(e, x.s[k])
	}
}

func (x *AWORSet) decodeStore(d *decoder) error {
	return decodeKeyed(d, func(k string) error {
		s, err := decodeUnits(d)
		if err != nil {
			return err
		}
		if len(s) == 0 {
			return d.corrupt("element %q without dots", k)
		}
		if x.s == nil {
			x.s = make(keyed[struct{}])
		}
		x.s[k] = s
		return nil
	})
}

// RWORSet is a remove-wins observed-remove set of strings. Its store maps
// each element to dots holding true (an Add) or false (a Remove); each
// operation replaces the element's observed dots with one new dot. An
// element is in the set when it has dots and all of them are Adds, so a
// Remove concurrent with an Add wins. A removed element keeps its Remove's
// dot (a tombstone) until a later Add or Remove replaces it.
type RWORSet struct {
	ctx *Context
	s   keyed[bool]
}

// NewRWORSet returns an empty set.
func NewRWORSet() *RWORSet { return &RWORSet{ctx: NewContext()} }

// Add adds e as replica r and returns the delta.
func (x *RWORSet) Add(r ReplicaID, e string) *RWORSet { return x.write(r, e, true) }

// Remove removes e as replica r and returns the delta.
func (x *RWORSet) Remove(r ReplicaID, e string) *RWORSet { return x.write(r, e, false) }

func (x *RWORSet) write(r ReplicaID, e string, v bool) *RWORSet {
	delta := NewRWORSet()
	s := writeBool(x.context(), x.s[e], delta.ctx, r, v)
	if x.s == nil {
		x.s = make(keyed[bool])
	}
	x.s[e] = s
	delta.s = keyed[bool]{e: s.clone()}
	return delta
}

// Contains reports whether e is in the set.
func (x *RWORSet) Contains(e string) bool { return allTrue(x.s[e]) }

// Elements returns the elements, sorted.
func (x *RWORSet) Elements() []string {
	var es []string
	for e, s := range x.s {
		if allTrue(s) {
			es = append(es, e)
		}
	}
	slices.Sort(es)
	return es
}

// Kind returns KindRWORSet.
func (x *RWORSet) Kind() Kind { return KindRWORSet }

// Join implements CRDT.
func (x *RWORSet) Join(other CRDT) error { return joinCausal(x, other) }

// Clone implements CRDT.
func (x *RWORSet) Clone() CRDT { return cloneCausal(x) }

// Equal implements CRDT.
func (x *RWORSet) Equal(other CRDT) bool { return equalCausal(x, other) }

// MarshalBinary implements CRDT.
func (x *RWORSet) MarshalBinary() ([]byte, error) { return marshal(x), nil }

func (x *RWORSet) kinds() []Kind { return kindPaths[KindRWORSet] }

func (x *RWORSet) context() *Context { return lazyContext(&x.ctx) }

func (x *RWORSet) bind(c *Context) { x.ctx = c }

func (x *RWORSet) joinStore(fc *Context, o causal, gc *Context) {
	x.s = joinKeyed(x.s, fc, o.(*RWORSet).s, gc, pickBool)
}

func (x *RWORSet) bottom() bool { return len(x.s) == 0 }

func (x *RWORSet) eachDot(f func(Dot)) {
	for _, ds := range x.s {
		for d := range ds {
			f(d)
		}
	}
}

func (x *RWORSet) storeEqual(o causal) bool { return equalKeyed(x.s, o.(*RWORSet).s, eqBool) }

func (x *RWORSet) cloneStore(c *Context) causal { return &RWORSet{ctx: c, s: x.s.clone()} }

func (x *RWORSet) encodeStore(e *encoder) {
	e.uvarint(uint64(len(x.s)))
	for _, k := range slices.Sorted(maps.Keys(x.s)) {
		e.str(k)
		encodeBools(e, x.s[k])
	}
}

func (x *RWORSet) decodeStore(d *decoder) error {
	return decodeKeyed(d, func(k string) error {
		s, err := decodeBools(d)
		if err != nil {
			return err
		}
		if len(s) == 0 {
			return d.corrupt("element %q without dots", k)
		}
		if x.s == nil {
			x.s = make(keyed[bool])
		}
		x.s[k] = s
		return nil
	})
}
