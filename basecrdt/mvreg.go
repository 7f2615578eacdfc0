package basecrdt

import (
	"bytes"
	"slices"
)

// MVReg is a multi-value register. Its store maps dots to values; a Write
// replaces every value it has observed with its own, so after concurrent
// Writes the register holds all of them until a Write that has seen them
// all supersedes them. Clear removes the observed values.
type MVReg struct {
	ctx *Context
	s   dotFun[[]byte]
}

// NewMVReg returns an empty register.
func NewMVReg() *MVReg { return &MVReg{ctx: NewContext()} }

// Write sets the register to value as replica r and returns the delta. The
// register keeps a copy of value.
func (x *MVReg) Write(r ReplicaID, value []byte) *MVReg {
	c := x.context()
	delta := NewMVReg()
	x.s.addTo(delta.ctx)
	d := c.Next(r)
	delta.ctx.Add(d)
	v := append([]byte{}, value...)
	x.s = dotFun[[]byte]{d: v}
	delta.s = dotFun[[]byte]{d: v} // values are never modified in place, so sharing is safe
	return delta
}

// Clear empties the register and returns the delta.
func (x *MVReg) Clear() *MVReg {
	delta := NewMVReg()
	x.s.addTo(delta.ctx)
	x.s = nil
	return delta
}

// Values returns copies of the values the register holds, sorted bytewise,
// equal values (written concurrently by different replicas) once. It is
// empty after Clear or before any Write.
func (x *MVReg) Values() [][]byte {
	vs := make([][]byte, 0, len(x.s))
	for _, v := range x.s {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, bytes.Compare)
	vs = slices.CompactFunc(vs, bytes.Equal)
	for i, v := range vs {
		vs[i] = append([]byte{}, v...)
	}
	return vs
}

// Kind returns KindMVReg.
func (x *MVReg) Kind() Kind { return KindMVReg }

// Join implements CRDT.
func (x *MVReg) Join(other CRDT) error { return joinCausal(x, other) }

// Clone implements CRDT.
func (x *MVReg) Clone() CRDT { return cloneCausal(x) }

// Equal implements CRDT.
func (x *MVReg) Equal(other CRDT) bool { return equalCausal(x, other) }

// MarshalBinary implements CRDT.
func (x *MVReg) MarshalBinary() ([]byte, error) { return marshal(x), nil }

func (x *MVReg) kinds() []Kind { return kindPaths[KindMVReg] }

func (x *MVReg) context() *Context { return lazyContext(&x.ctx) }

func (x *MVReg) bind(c *Context) { x.ctx = c }

func (x *MVReg) joinStore(fc *Context, o causal, gc *Context) {
	x.s = joinDots(x.s, fc, o.(*MVReg).s, gc, pickBytes)
}

// pickBytes chooses between two values of one dot, equal unless the dot
// was reused: the larger, so the choice does not depend on the order.
func pickBytes(a, b []byte) []byte {
	if bytes.Compare(a, b) >= 0 {
		return a
	}
	return b
}

func (x *MVReg) bottom() bool { return len(x.s) == 0 }

func (x *MVReg) eachDot(f func(Dot)) {
	for d := range x.s {
		f(d)
	}
}

func (x *MVReg) storeEqual(o causal) bool { return equalDots(x.s, o.(*MVReg).s, bytes.Equal) }

func (x *MVReg) cloneStore(c *Context) causal { return &MVReg{ctx: c, s: x.s.clone()} }

func (x *MVReg) encodeStore(e *encoder) {
	e.uvarint(uint64(len(x.s)))
	for _, d := range x.s.sortedDots() {
		e.dot(d)
		e.bytes(x.s[d])
	}
}

func (x *MVReg) decodeStore(d *decoder) error {
	n, err := d.count()
	if err != nil {
		return err
	}
	var prev Dot
	for i := range n {
		dot, err := d.sortedDot(i, prev)
		if err != nil {
			return err
		}
		prev = dot
		v, err := d.bytes()
		if err != nil {
			return err
		}
		if x.s == nil {
			x.s = make(dotFun[[]byte])
		}
		x.s[dot] = v
	}
	return nil
}
