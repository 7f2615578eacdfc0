package basecrdt

// EWFlag is an enable-wins flag. Its store is a set of dots: Enable
// replaces the observed dots with a new one, Disable removes the observed
// dots. A Disable concurrent with an Enable cannot remove the Enable's dot,
// which it has not seen, so the flag ends enabled. It starts disabled.
type EWFlag struct {
	ctx *Context
	s   dotFun[struct{}]
}

// NewEWFlag returns a disabled flag.
func NewEWFlag() *EWFlag { return &EWFlag{ctx: NewContext()} }

// Enable sets the flag as replica r and returns the delta.
func (x *EWFlag) Enable(r ReplicaID) *EWFlag {
	c := x.context()
	delta := NewEWFlag()
	x.s.addTo(delta.ctx)
	d := c.Next(r)
	delta.ctx.Add(d)
	delta.s = dotFun[struct{}]{d: {}}
	x.s = dotFun[struct{}]{d: {}}
	return delta
}

// Disable clears the flag and returns the delta. It allocates no dot, so r
// is unused; it is there to match DWFlag.Disable.
func (x *EWFlag) Disable(r ReplicaID) *EWFlag {
	_ = r
	delta := NewEWFlag()
	x.s.addTo(delta.ctx)
	x.s = nil
	return delta
}

// Value reports whether the flag is enabled.
func (x *EWFlag) Value() bool { return len(x.s) > 0 }

// Kind returns KindEWFlag.
func (x *EWFlag) Kind() Kind { return KindEWFlag }

// Join implements CRDT.
func (x *EWFlag) Join(other CRDT) error { return joinCausal(x, other) }

// Clone implements CRDT.
func (x *EWFlag) Clone() CRDT { return cloneCausal(x) }

// Equal implements CRDT.
func (x *EWFlag) Equal(other CRDT) bool { return equalCausal(x, other) }

// MarshalBinary implements CRDT.
func (x *EWFlag) MarshalBinary() ([]byte, error) { return marshal(x), nil }

func (x *EWFlag) kinds() []Kind { return kindPaths[KindEWFlag] }

func (x *EWFlag) context() *Context { return lazyContext(&x.ctx) }

func (x *EWFlag) bind(c *Context) { x.ctx = c }

func (x *EWFlag) joinStore(fc *Context, o causal, gc *Context) {
	x.s = joinDots(x.s, fc, o.(*EWFlag).s, gc, pickUnit)
}

func (x *EWFlag) bottom() bool { return len(x.s) == 0 }

func (x *EWFlag) eachDot(f func(Dot)) {
	for d := range x.s {
		f(d)
	}
}

func (x *EWFlag) storeEqual(o causal) bool { return equalDots(x.s, o.(*EWFlag).s, eqUnit) }

func (x *EWFlag) cloneStore(c *Context) causal { return &EWFlag{ctx: c, s: x.s.clone()} }

func (x *EWFlag) encodeStore(e *encoder) { encodeUnits(e, x.s) }

func (x *EWFlag) decodeStore(d *decoder) (err error) {
	x.s, err = decodeUnits(d)
	return err
}

// DWFlag is a disable-wins flag. Its store maps dots to true (an Enable)
// or false (a Disable); each operation replaces the observed dots with one
// new dot. The flag is enabled when it holds dots and all of them are
// Enables, so a Disable concurrent with an Enable wins. It starts
// disabled.
type DWFlag struct {
	ctx *Context
	s   dotFun[bool]
}

// NewDWFlag returns a disabled flag.
func NewDWFlag() *DWFlag { return &DWFlag{ctx: NewContext()} }

// Enable sets the flag as replica r and returns the delta.
func (x *DWFlag) Enable(r ReplicaID) *DWFlag { return x.write(r, true) }

// Disable clears the flag as replica r and returns the delta.
func (x *DWFlag) Disable(r ReplicaID) *DWFlag { return x.write(r, false) }

func (x *DWFlag) write(r ReplicaID, v bool) *DWFlag {
	delta := NewDWFlag()
	x.s = writeBool(x.context(), x.s, delta.ctx, r, v)
	delta.s = x.s.clone()
	return delta
}

// writeBool replaces the dots of s, which it records in dc, with a new dot
// of r holding v, and returns the new store.
func writeBool(c *Context, s dotFun[bool], dc *Context, r ReplicaID, v bool) dotFun[bool] {
	s.addTo(dc)
	d := c.Next(r)
	dc.Add(d)
	return dotFun[bool]{d: v}
}

// Value reports whether the flag is enabled.
func (x *DWFlag) Value() bool { return allTrue(x.s) }

func allTrue(s dotFun[bool]) bool {
	for _, v := range s {
		if !v {
			return false
		}
	}
	return len(s) > 0
}

// Kind returns KindDWFlag.
func (x *DWFlag) Kind() Kind { return KindDWFlag }

// Join implements CRDT.
func (x *DWFlag) Join(other CRDT) error { return joinCausal(x, other) }

// Clone implements CRDT.
func (x *DWFlag) Clone() CRDT { return cloneCausal(x) }

// Equal implements CRDT.
func (x *DWFlag) Equal(other CRDT) bool { return equalCausal(x, other) }

// MarshalBinary implements CRDT.
func (x *DWFlag) MarshalBinary() ([]byte, error) { return marshal(x), nil }

func (x *DWFlag) kinds() []Kind { return kindPaths[KindDWFlag] }

func (x *DWFlag) context() *Context { return lazyContext(&x.ctx) }

func (x *DWFlag) bind(c *Context) { x.ctx = c }

func (x *DWFlag) joinStore(fc *Context, o causal, gc *Context) {
	x.s = joinDots(x.s, fc, o.(*DWFlag).s, gc, pickBool)
}

func (x *DWFlag) bottom() bool { return len(x.s) == 0 }

func (x *DWFlag) eachDot(f func(Dot)) {
	for d := range x.s {
		f(d)
	}
}

func (x *DWFlag) storeEqual(o causal) bool { return equalDots(x.s, o.(*DWFlag).s, eqBool) }

func (x *DWFlag) cloneStore(c *Context) causal { return &DWFlag{ctx: c, s: x.s.clone()} }

func (x *DWFlag) encodeStore(e *encoder) { encodeBools(e, x.s) }

func (x *DWFlag) decodeStore(d *decoder) (err error) {
	x.s, err = decodeBools(d)
	return err
}

// kindPaths holds the kind path of every leaf kind, so kinds() allocates
// nothing.
var kindPaths = map[Kind][]Kind{
	KindMVReg:    {KindMVReg},
	KindAWORSet:  {KindAWORSet},
	KindRWORSet:  {KindRWORSet},
	KindEWFlag:   {KindEWFlag},
	KindDWFlag:   {KindDWFlag},
	KindCCounter: {KindCCounter},
}
