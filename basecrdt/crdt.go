package basecrdt

import (
	"errors"
	"fmt"
	"slices"
)

// Kind names a CRDT type. Its value is also the kind byte of the encoding,
// so the numbers never change.
type Kind byte

// The kinds. They start at 1 so that a zero Kind is never valid.
const (
	KindORMap Kind = iota + 1
	KindMVReg
	KindAWORSet
	KindRWORSet
	KindEWFlag
	KindDWFlag
	KindCCounter
)

// maxDepth bounds how deeply ORMaps nest: the length of a kind path (the
// map's own kind plus its value kinds) given to New or found in an encoding.
const maxDepth = 16

func (k Kind) valid() bool { return k >= KindORMap && k <= KindCCounter }

func (k Kind) String() string {
	switch k {
	case KindORMap:
		return "ORMap"
	case KindMVReg:
		return "MVReg"
	case KindAWORSet:
		return "AWORSet"
	case KindRWORSet:
		return "RWORSet"
	case KindEWFlag:
		return "EWFlag"
	case KindDWFlag:
		return "DWFlag"
	case KindCCounter:
		return "CCounter"
	}
	return fmt.Sprintf("Kind(%d)", byte(k))
}

// Errors. They are returned wrapped; test them with errors.Is.
var (
	// ErrKindMismatch: Join was given a CRDT of another kind (or an ORMap
	// with other value kinds).
	ErrKindMismatch = errors.New("basecrdt: kind mismatch")
	// ErrInvalidKind: New was given an unknown kind or an impossible kind
	// path.
	ErrInvalidKind = errors.New("basecrdt: invalid kind")
	// ErrCorrupt: Unmarshal was given bytes that are not an encoding.
	ErrCorrupt = errors.New("basecrdt: corrupt encoding")
)

// CRDT is the interface every type of this package implements, with
// pointer receivers: *ORMap, *MVReg, *AWORSet, *RWORSet, *EWFlag, *DWFlag
// and *CCounter. A delta returned by a mutator is a CRDT of the same kind.
// No method is safe for concurrent use with any other on the same value.
type CRDT interface {
	// Kind returns the type of the CRDT.
	Kind() Kind
	// Join merges other, a full state or a delta of the same kind (for an
	// ORMap also of the same value kinds), into the receiver. Join is
	// commutative, associative and idempotent. It returns an error wrapping
	// ErrKindMismatch, and changes nothing, when the kinds differ. other is
	// only read; the receiver keeps no reference into it.
	Join(other CRDT) error
	// Clone returns a deep copy.
	Clone() CRDT
	// Equal reports whether other has the same kind, the same observable
	// value and the same causal state (its store and its context).
	Equal(other CRDT) bool
	// MarshalBinary returns the encoding described in the package
	// documentation. It never fails.
	MarshalBinary() ([]byte, error)
}

// causal is what every type implements beyond CRDT: a dot store bound to
// a causal context that it may share with the other values of an
// enclosing ORMap.
type causal interface {
	CRDT
	// kinds returns the kind path: the own kind, then for an ORMap the
	// kinds of its values. It must not be modified.
	kinds() []Kind
	// context returns the causal context, never nil.
	context() *Context
	// bind points the value, and every value nested in it, at c.
	bind(c *Context)
	// joinStore merges the store of o (whose kind path equals the
	// receiver's) into the receiver's store, the receiver's context being
	// fc and o's being gc. Contexts are left alone: the caller joins them
	// once, after the stores.
	joinStore(fc *Context, o causal, gc *Context)
	// bottom reports whether the store is empty.
	bottom() bool
	// eachDot calls f with every dot of the store.
	eachDot(f func(Dot))
	// storeEqual reports whether o's store equals the receiver's.
	storeEqual(o causal) bool
	// cloneStore returns a deep copy of the store bound to c.
	cloneStore(c *Context) causal
	// encodeStore appends the store.
	encodeStore(e *encoder)
	// decodeStore reads a store into the empty receiver.
	decodeStore(d *decoder) error
}

// New returns an empty CRDT of kind. An ORMap needs the kinds of its
// values: New(KindORMap, KindMVReg) is a map of registers and
// New(KindORMap, KindORMap, KindMVReg) a map of maps of registers. Other
// kinds take no value kinds.
func New(kind Kind, valueKind ...Kind) (CRDT, error) {
	path := append([]Kind{kind}, valueKind...)
	if err := checkKinds(path); err != nil {
		return nil, err
	}
	return newEmpty(path, NewContext()), nil
}

// checkKinds checks a kind path: every kind known, every kind but the last
// an ORMap, the last not an ORMap, at most maxDepth long.
func checkKinds(path []Kind) error {
	if len(path) > maxDepth {
		return fmt.Errorf("%w: ORMaps nested deeper than %d", ErrInvalidKind, maxDepth)
	}
	for i, k := range path {
		if !k.valid() {
			return fmt.Errorf("%w: %v", ErrInvalidKind, k)
		}
		last := i == len(path)-1
		if k == KindORMap && last {
			return fmt.Errorf("%w: ORMap needs a value kind", ErrInvalidKind)
		}
		if k != KindORMap && !last {
			return fmt.Errorf("%w: %v takes no value kind", ErrInvalidKind, k)
		}
	}
	return nil
}

// newEmpty returns an empty value of a checked kind path bound to c.
func newEmpty(path []Kind, c *Context) causal {
	switch path[0] {
	case KindORMap:
		return &ORMap{ctx: c, path: path}
	case KindMVReg:
		return &MVReg{ctx: c}
	case KindAWORSet:
		return &AWORSet{ctx: c}
	case KindRWORSet:
		return &RWORSet{ctx: c}
	case KindEWFlag:
		return &EWFlag{ctx: c}
	case KindDWFlag:
		return &DWFlag{ctx: c}
	case KindCCounter:
		return &CCounter{ctx: c}
	}
	panic("basecrdt: newEmpty: unchecked kind path")
}

func sameKinds(a, b causal) bool { return slices.Equal(a.kinds(), b.kinds()) }

// joinCausal is Join for every type.
func joinCausal(a causal, other CRDT) error {
	b, ok := other.(causal)
	if !ok || b == nil || !sameKinds(a, b) {
		return fmt.Errorf("%w: cannot join %s into %s", ErrKindMismatch, kindName(other), kindName(a))
	}
	if a == b {
		return nil
	}
	fc, gc := a.context(), b.context()
	a.joinStore(fc, b, gc)
	fc.Join(gc)
	return nil
}

func kindName(x CRDT) string {
	c, ok := x.(causal)
	if !ok || c == nil {
		return fmt.Sprintf("%T", x)
	}
	s := ""
	for i, k := range c.kinds() {
		if i > 0 {
			s += " of "
		}
		s += k.String()
	}
	return s
}

// equalCausal is Equal for every type.
func equalCausal(a causal, other CRDT) bool {
	b, ok := other.(causal)
	if !ok || b == nil || !sameKinds(a, b) {
		return false
	}
	return a.context().Equal(b.context()) && a.storeEqual(b)
}

// cloneCausal is Clone for every type.
func cloneCausal(a causal) CRDT { return a.cloneStore(a.context().Clone()) }

// dotFun is a dot store mapping each dot to a value. A set of dots is a
// dotFun[struct{}].
type dotFun[V any] map[Dot]V

// joinDots merges g (seen under context gc) into f (seen under fc) and
// returns the result, which may be f itself: a dot both hold stays (pick
// chooses between the two values, which are equal unless the dot was
// reused); a dot only one holds stays unless the other side has seen it,
// which means the other side removed it.
func joinDots[V any](f dotFun[V], fc *Context, g dotFun[V], gc *Context, pick func(a, b V) V) dotFun[V] {
	for d := range f {
		if _, ok := g[d]; !ok && gc.Contains(d) {
			delete(f, d)
		}
	}
	for d, v := range g {
		if cur, ok := f[d]; ok {
			f[d] = pick(cur, v)
			continue
		}
		if !fc.Contains(d) {
			if f == nil {
				f = make(dotFun[V])
			}
			f[d] = v
		}
	}
	return f
}

func (f dotFun[V]) clone() dotFun[V] {
	if len(f) == 0 {
		return nil
	}
	n := make(dotFun[V], len(f))
	for d, v := range f {
		n[d] = v
	}
	return n
}

func (f dotFun[V]) sortedDots() []Dot {
	ds := make([]Dot, 0, len(f))
	for d := range f {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, compareDots)
	return ds
}

func (f dotFun[V]) addTo(c *Context) {
	for d := range f {
		c.Add(d)
	}
}

func equalDots[V any](f, g dotFun[V], eq func(a, b V) bool) bool {
	if len(f) != len(g) {
		return false
	}
	for d, v := range f {
		w, ok := g[d]
		if !ok || !eq(v, w) {
			return false
		}
	}
	return true
}

// keyed is a dot store mapping strings to non-empty dotFuns: the store of
// the observed-remove sets.
type keyed[V any] map[string]dotFun[V]

func joinKeyed[V any](f keyed[V], fc *Context, g keyed[V], gc *Context, pick func(a, b V) V) keyed[V] {
	for k, fv := range f {
		if _, ok := g[k]; ok {
			continue
		}
		if fv = joinDots(fv, fc, nil, gc, pick); len(fv) == 0 {
			delete(f, k)
		}
	}
	for k, gv := range g {
		fv := joinDots(f[k], fc, gv, gc, pick)
		if len(fv) == 0 {
			delete(f, k)
			continue
		}
		if f == nil {
			f = make(keyed[V])
		}
		f[k] = fv
	}
	return f
}

func (f keyed[V]) clone() keyed[V] {
	if len(f) == 0 {
		return nil
	}
	n := make(keyed[V], len(f))
	for k, v := range f {
		n[k] = v.clone()
	}
	return n
}

func equalKeyed[V any](f, g keyed[V], eq func(a, b V) bool) bool {
	if len(f) != len(g) {
		return false
	}
	for k, v := range f {
		w, ok := g[k]
		if !ok || !equalDots(v, w, eq) {
			return false
		}
	}
	return true
}

func pickUnit(a, _ struct{}) struct{} { return a }
func eqUnit(_, _ struct{}) bool       { return true }
func pickBool(a, b bool) bool         { return a && b }
func eqBool(a, b bool) bool           { return a == b }
func pickInt(a, b int64) int64        { return max(a, b) }
func eqInt(a, b int64) bool           { return a == b }
