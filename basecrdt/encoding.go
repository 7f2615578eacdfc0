package basecrdt

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// formatVersion is the first byte of every encoding.
const formatVersion = 1

type encoder struct {
	buf []byte
	idx map[ReplicaID]uint64
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }

func (e *encoder) bytes(b []byte) {
	e.uvarint(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) dot(d Dot) {
	e.uvarint(e.idx[d.Replica])
	e.uvarint(d.Counter)
}

// marshal encodes x as the package documentation describes.
func marshal(x causal) []byte {
	c := x.context()
	seen := make(map[ReplicaID]struct{})
	for r := range c.vv {
		seen[r] = struct{}{}
	}
	for d := range c.cloud {
		seen[d.Replica] = struct{}{}
	}
	x.eachDot(func(d Dot) { seen[d.Replica] = struct{}{} })
	reps := slices.Sorted(maps.Keys(seen))

	e := &encoder{idx: make(map[ReplicaID]uint64, len(reps))}
	e.buf = append(e.buf, formatVersion)
	for _, k := range x.kinds() {
		e.buf = append(e.buf, byte(k))
	}
	e.uvarint(uint64(len(reps)))
	for i, r := range reps {
		e.idx[r] = uint64(i)
		e.str(string(r))
	}
	e.uvarint(uint64(len(c.vv)))
	for _, r := range slices.Sorted(maps.Keys(c.vv)) {
		e.uvarint(e.idx[r])
		e.uvarint(c.vv[r])
	}
	e.uvarint(uint64(len(c.cloud)))
	for _, d := range c.sortedCloud() {
		e.dot(d)
	}
	x.encodeStore(e)
	return e.buf
}

func encodeUnits(e *encoder, s dotFun[struct{}]) {
	e.uvarint(uint64(len(s)))
	for _, d := range s.sortedDots() {
		e.dot(d)
	}
}

func encodeBools(e *encoder, s dotFun[bool]) {
	e.uvarint(uint64(len(s)))
	for _, d := range s.sortedDots() {
		e.dot(d)
		if s[d] {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
	}
}

// decoder reads an encoding. Every length and count is checked against the
// bytes left before anything is allocated for it, so garbage can cost no
// more memory than a small multiple of its own size.
type decoder struct {
	b    []byte
	off  int
	reps []ReplicaID
}

func (d *decoder) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrCorrupt, fmt.Sprintf(format, args...), d.off)
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.left() < 1 {
		return 0, d.corrupt("truncated")
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.corrupt("bad uvarint")
	}
	d.off += n
	return v, nil
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		return 0, d.corrupt("bad varint")
	}
	d.off += n
	return v, nil
}

// count reads a number of items, each at least one byte long, so it can be
// no larger than the bytes left.
func (d *decoder) count() (int, error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if v > uint64(d.left()) {
		return 0, d.corrupt("count %d exceeds the %d bytes left", v, d.left())
	}
	return int(v), nil
}

func (d *decoder) raw() ([]byte, error) {
	v, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if v > uint64(d.left()) {
		return nil, d.corrupt("length %d exceeds the %d bytes left", v, d.left())
	}
	b := d.b[d.off : d.off+int(v)]
	d.off += int(v)
	return b, nil
}

func (d *decoder) bytes() ([]byte, error) {
	b, err := d.raw()
	if err != nil {
		return nil, err
	}
	return append([]byte{}, b...), nil
}

func (d *decoder) str() (string, error) {
	b, err := d.raw()
	return string(b), err
}

func (d *decoder) replica() (ReplicaID, error) {
	i, err := d.uvarint()
	if err != nil {
		return "", err
	}
	if i >= uint64(len(d.reps)) {
		return "", d.corrupt("replica index %d out of %d", i, len(d.reps))
	}
	return d.reps[i], nil
}

func (d *decoder) dot() (Dot, error) {
	r, err := d.replica()
	if err != nil {
		return Dot{}, err
	}
	n, err := d.uvarint()
	if err != nil {
		return Dot{}, err
	}
	if n == 0 || n > maxCounter {
		return Dot{}, d.corrupt("dot counter %d", n)
	}
	return Dot{Replica: r, Counter: n}, nil
}

// sortedDot reads the i-th dot of a list, which must follow prev.
func (d *decoder) sortedDot(i int, prev Dot) (Dot, error) {
	dot, err := d.dot()
	if err != nil {
		return Dot{}, err
	}
	if i > 0 && compareDots(prev, dot) >= 0 {
		return Dot{}, d.corrupt("dot %s out of order", dot)
	}
	return dot, nil
}

func decodeUnits(d *decoder) (dotFun[struct{}], error) {
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	var s dotFun[struct{}]
	var prev Dot
	for i := range n {
		dot, err := d.sortedDot(i, prev)
		if err != nil {
			return nil, err
		}
		prev = dot
		if s == nil {
			s = make(dotFun[struct{}])
		}
		s[dot] = struct{}{}
	}
	return s, nil
}

func decodeBools(d *decoder) (dotFun[bool], error) {
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	var s dotFun[bool]
	var prev Dot
	for i := range n {
		dot, err := d.sortedDot(i, prev)
		if err != nil {
			return nil, err
		}
		prev = dot
		b, err := d.byte()
		if err != nil {
			return nil, err
		}
		if b > 1 {
			return nil, d.corrupt("bad boolean %d", b)
		}
		if s == nil {
			s = make(dotFun[bool])
		}
		s[dot] = b == 1
	}
	return s, nil
}

// decodeKeyed reads a count and that many strictly ascending keys, calling
// f after each key to read what follows it.
func decodeKeyed(d *decoder, f func(k string) error) error {
	n, err := d.count()
	if err != nil {
		return err
	}
	var prev string
	for i := range n {
		k, err := d.str()
		if err != nil {
			return err
		}
		if i > 0 && k <= prev {
			return d.corrupt("key %q out of order", k)
		}
		prev = k
		if err := f(k); err != nil {
			return err
		}
	}
	return nil
}

// Unmarshal decodes the output of any CRDT's MarshalBinary. It returns an
// error wrapping ErrCorrupt for anything else: truncated or trailing bytes,
// unknown format or kind, lists out of order, counters of 0 or above 2^62,
// a dot of the store missing from the context or appearing twice, an empty
// value in a map or set. It never panics and keeps no reference to b.
func Unmarshal(b []byte) (CRDT, error) {
	d := &decoder{b: b}
	v, err := d.byte()
	if err != nil {
		return nil, err
	}
	if v != formatVersion {
		return nil, d.corrupt("unknown format %d", v)
	}
	path := make([]Kind, 0, 2)
	for len(path) == 0 || path[len(path)-1] == KindORMap {
		if len(path) == maxDepth {
			return nil, d.corrupt("ORMaps nested deeper than %d", maxDepth)
		}
		k, err := d.byte()
		if err != nil {
			return nil, err
		}
		if !Kind(k).valid() {
			return nil, d.corrupt("unknown kind %d", k)
		}
		path = append(path, Kind(k))
	}

	n, err := d.count()
	if err != nil {
		return nil, err
	}
	d.reps = make([]ReplicaID, 0, n)
	for i := range n {
		r, err := d.str()
		if err != nil {
			return nil, err
		}
		if i > 0 && ReplicaID(r) <= d.reps[i-1] {
			return nil, d.corrupt("replica %q out of order", r)
		}
		d.reps = append(d.reps, ReplicaID(r))
	}

	c := NewContext()
	if n, err = d.count(); err != nil {
		return nil, err
	}
	var prev ReplicaID
	for i := range n {
		r, err := d.replica()
		if err != nil {
			return nil, err
		}
		if i > 0 && r <= prev {
			return nil, d.corrupt("replica %q out of order in the version vector", r)
		}
		prev = r
		m, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if m == 0 || m > maxCounter {
			return nil, d.corrupt("version vector entry %d", m)
		}
		if c.vv == nil {
			c.vv = make(map[ReplicaID]uint64)
		}
		c.vv[r] = m
	}
	if n, err = d.count(); err != nil {
		return nil, err
	}
	var pd Dot
	for i := range n {
		dot, err := d.sortedDot(i, pd)
		if err != nil {
			return nil, err
		}
		pd = dot
		if c.cloud == nil {
			c.cloud = make(map[Dot]struct{})
		}
		c.cloud[dot] = struct{}{}
	}
	c.Compact()

	x := newEmpty(path, c)
	if err := x.decodeStore(d); err != nil {
		return nil, err
	}
	if d.left() > 0 {
		return nil, d.corrupt("%d trailing bytes", d.left())
	}
	// Each dot names one event, so it appears once in the store, and the
	// context has seen it.
	var bad error
	seen := make(map[Dot]struct{})
	x.eachDot(func(dot Dot) {
		if bad != nil {
			return
		}
		if _, dup := seen[dot]; dup {
			bad = d.corrupt("dot %s twice in the store", dot)
		} else if !c.Contains(dot) {
			bad = d.corrupt("dot %s of the store missing from the context", dot)
		}
		seen[dot] = struct{}{}
	})
	if bad != nil {
		return nil, bad
	}
	return x, nil
}
