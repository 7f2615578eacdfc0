package basecrdt

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// maxCounter bounds the counters Unmarshal accepts, so that Next on a
// decoded context can never overflow. A replica making a billion changes a
// second would reach it after 146 years.
const maxCounter = 1 << 62

// ReplicaID names a replica: the one writer that allocates the dots
// carrying its name. Two live replicas must never share an id; a replica
// that lost its state must come back under a new id (for example the node
// id plus its start time), or it would reuse dots it already handed out.
type ReplicaID string

// Dot is one event: the Counter-th event of Replica. Counters start at 1; a
// dot with Counter 0 names no event.
type Dot struct {
	Replica ReplicaID
	Counter uint64
}

func (d Dot) String() string { return fmt.Sprintf("%s:%d", d.Replica, d.Counter) }

func compareDots(a, b Dot) int {
	if c := cmp.Compare(a.Replica, b.Replica); c != 0 {
		return c
	}
	return cmp.Compare(a.Counter, b.Counter)
}

// Context is a causal context: the set of dots a state has seen. It is kept
// compact as a version vector (every replica's largest counter up to which
// all dots are seen) plus a dot cloud holding the dots seen beyond a gap.
// Every method leaves it compact: a dot in the cloud is never covered by
// the vector and never directly follows it, so equal sets of dots have
// equal representations.
//
// The zero value is an empty context ready to use. A Context is not safe
// for concurrent use.
type Context struct {
	vv    map[ReplicaID]uint64
	cloud map[Dot]struct{}
}

// NewContext returns an empty context.
func NewContext() *Context { return &Context{} }

// Contains reports whether the context has seen d. A dot with Counter 0 is
// always contained.
func (c *Context) Contains(d Dot) bool {
	if d.Counter <= c.vv[d.Replica] {
		return true
	}
	_, ok := c.cloud[d]
	return ok
}

// Next allocates the next dot of replica r, one past the largest counter
// of r the context has seen, records it and returns it.
func (c *Context) Next(r ReplicaID) Dot {
	n := c.vv[r]
	for d := range c.cloud {
		if d.Replica == r && d.Counter > n {
			n = d.Counter
		}
	}
	if n == ^uint64(0) {
		panic("basecrdt: Context.Next: dot counter overflow")
	}
	d := Dot{Replica: r, Counter: n + 1}
	c.Add(d)
	return d
}

// Add records d as seen. Adding a dot with Counter 0 does nothing.
func (c *Context) Add(d Dot) {
	if c.Contains(d) {
		return
	}
	if d.Counter == c.vv[d.Replica]+1 {
		if c.vv == nil {
			c.vv = make(map[ReplicaID]uint64)
		}
		c.vv[d.Replica] = d.Counter
		c.absorb(d.Replica)
		return
	}
	if c.cloud == nil {
		c.cloud = make(map[Dot]struct{})
	}
	c.cloud[d] = struct{}{}
}

// Join adds every dot o has seen.
func (c *Context) Join(o *Context) {
	if o == nil || o == c {
		return
	}
	for r, n := range o.vv {
		if n > c.vv[r] {
			if c.vv == nil {
				c.vv = make(map[ReplicaID]uint64)
			}
			c.vv[r] = n
		}
	}
	for d := range o.cloud {
		if c.cloud == nil {
			c.cloud = make(map[Dot]struct{})
		}
		c.cloud[d] = struct{}{}
	}
	c.Compact()
}

// Compact folds the cloud into the version vector: it drops cloud dots the
// vector covers and moves runs of dots that continue the vector into it.
// Every other method already leaves the context compact.
func (c *Context) Compact() {
	for d := range c.cloud {
		if d.Counter <= c.vv[d.Replica] {
			delete(c.cloud, d)
		}
	}
	for d := range c.cloud {
		c.absorb(d.Replica)
	}
}

// absorb moves the dots of r that continue the vector from the cloud into
// the vector.
func (c *Context) absorb(r ReplicaID) {
	for len(c.cloud) > 0 {
		next := Dot{Replica: r, Counter: c.vv[r] + 1}
		if _, ok := c.cloud[next]; !ok {
			return
		}
		delete(c.cloud, next)
		if c.vv == nil {
			c.vv = make(map[ReplicaID]uint64)
		}
		c.vv[r] = next.Counter
	}
}

// Clone returns a deep copy.
func (c *Context) Clone() *Context {
	n := &Context{}
	if len(c.vv) > 0 {
		n.vv = make(map[ReplicaID]uint64, len(c.vv))
		for r, v := range c.vv {
			n.vv[r] = v
		}
	}
	if len(c.cloud) > 0 {
		n.cloud = make(map[Dot]struct{}, len(c.cloud))
		for d := range c.cloud {
			n.cloud[d] = struct{}{}
		}
	}
	return n
}

// Equal reports whether c and o have seen the same dots.
func (c *Context) Equal(o *Context) bool {
	if len(c.vv) != len(o.vv) || len(c.cloud) != len(o.cloud) {
		return false
	}
	for r, n := range c.vv {
		if m, ok := o.vv[r]; !ok || m != n {
			return false
		}
	}
	for d := range c.cloud {
		if _, ok := o.cloud[d]; !ok {
			return false
		}
	}
	return true
}

// String renders the context as {vector | cloud}, sorted, for debugging.
func (c *Context) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range slices.Sorted(maps.Keys(c.vv)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", r, c.vv[r])
	}
	b.WriteString(" |")
	for _, d := range c.sortedCloud() {
		fmt.Fprintf(&b, " %s", d)
	}
	b.WriteByte('}')
	return b.String()
}

func (c *Context) sortedCloud() []Dot {
	ds := make([]Dot, 0, len(c.cloud))
	for d := range c.cloud {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, compareDots)
	return ds
}

// lazyContext returns *p, allocating it on first use (a zero-value CRDT has
// no context yet).
func lazyContext(p **Context) *Context {
	if *p == nil {
		*p = NewContext()
	}
	return *p
}
