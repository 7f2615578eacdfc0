package basecrdt

// CCounter is a causal counter, the removal-capable counter of the
// delta-state CRDT paper. Its store maps dots to integers, at most one dot
// per replica: the replica's running contribution. Inc replaces the
// replica's dot by a new dot holding the new contribution, so a removal
// (ORMap.Remove of the key holding the counter) cancels exactly the
// contributions it has observed. A replica's Inc concurrent with a removal
// survives it carrying that replica's whole contribution, not only the
// increment; after a removal has been seen the counter starts again at 0.
// Arithmetic wraps around on int64 overflow.
type CCounter struct {
	ctx *Context
	s   dotFun[int64]
}

// NewCCounter returns a counter at 0.
func NewCCounter() *CCounter { return &CCounter{ctx: NewContext()} }

// Inc adds n as replica r and returns the delta.
func (x *CCounter) Inc(r ReplicaID, n int64) *CCounter {
	c := x.context()
	delta := NewCCounter()
	var (
		base int64
		top  uint64
	)
	for d, v := range x.s {
		if d.Replica != r {
			continue
		}
		if d.Counter > top {
			top, base = d.Counter, v
		}
		delta.ctx.Add(d)
		delete(x.s, d)
	}
	d := c.Next(r)
	delta.ctx.Add(d)
	if x.s == nil {
		x.s = make(dotFun[int64])
	}
	x.s[d] = base + n
	delta.s = dotFun[int64]{d: base + n}
	return delta
}

// Dec subtracts n as replica r and returns the delta.
func (x *CCounter) Dec(r ReplicaID, n int64) *CCounter { return x.Inc(r, -n) }

// Value returns the sum of all contributions.
func (x *CCounter) Value() int64 {
	var sum int64
	for _, v := range x.s {
		sum += v
	}
	return sum
}

// Kind returns KindCCounter.
func (x *CCounter) Kind() Kind { return KindCCounter }

// Join implements CRDT.
func (x *CCounter) Join(other CRDT) error { return joinCausal(x, other) }

// Clone implements CRDT.
func (x *CCounter) Clone() CRDT { return cloneCausal(x) }

// Equal implements CRDT.
func (x *CCounter) Equal(other CRDT) bool { return equalCausal(x, other) }

// MarshalBinary implements CRDT.
func (x *CCounter) MarshalBinary() ([]byte, error) { return marshal(x), nil }

func (x *CCounter) kinds() []Kind { return kindPaths[KindCCounter] }

func (x *CCounter) context() *Context { return lazyContext(&x.ctx) }

func (x *CCounter) bind(c *Context) { x.ctx = c }

func (x *CCounter) joinStore(fc *Context, o causal, gc *Context) {
	x.s = joinDots(x.s, fc, o.(*CCounter).s, gc, pickInt)
}

func (x *CCounter) bottom() bool { return len(x.s) == 0 }

func (x *CCounter) eachDot(f func(Dot)) {
	for d := range x.s {
		f(d)
	}
}

func (x *CCounter) storeEqual(o causal) bool { return equalDots(x.s, o.(*CCounter).s, eqInt) }

func (x *CCounter) cloneStore(c *Context) causal { return &CCounter{ctx: c, s: x.s.clone()} }

func (x *CCounter) encodeStore(e *encoder) {
	e.uvarint(uint64(len(x.s)))
	for _, d := range x.s.sortedDots() {
		e.dot(d)
		e.varint(x.s[d])
	}
}

func (x *CCounter) decodeStore(d *decoder) error {
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
		v, err := d.varint()
		if err != nil {
			return err
		}
		if x.s == nil {
			x.s = make(dotFun[int64])
		}
		x.s[dot] = v
	}
	return nil
}
