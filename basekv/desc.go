package basekv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// RangeState is the lifecycle state of a range.
type RangeState uint8

// Range states.
const (
	RangeNormal RangeState = 1 // serving
	RangeSealed RangeState = 3 // frozen for a merge: serves nothing (2 is reserved)
)

// RangeDescriptor describes one range of a store. Its version orders
// descriptors of the same range: Ver increases with every boundary change
// (split, merge). A request carries the version it was routed with, and a
// range whose version differs answers ErrStaleRoute with its descriptor.
type RangeDescriptor struct {
	ID    uint64
	Start []byte // inclusive; nil is the keyspace start
	End   []byte // exclusive; nil is the keyspace end
	Ver   uint64
	State RangeState
}

// Contains reports whether key falls in the range.
func (d *RangeDescriptor) Contains(key []byte) bool {
	return bytes.Compare(key, d.Start) >= 0 && (d.End == nil || bytes.Compare(key, d.End) < 0)
}

func (d *RangeDescriptor) String() string {
	end := "∞"
	if d.End != nil {
		end = fmt.Sprintf("%q", d.End)
	}
	return fmt.Sprintf("r%d[%q,%s)v%d", d.ID, d.Start, end, d.Ver)
}

// Encoding: version byte 1, uvarint id, ver, state, then start and end as
// (uvarint len+1, bytes) with 0 meaning nil.
func (d *RangeDescriptor) marshal() []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, d.ID)
	b = binary.AppendUvarint(b, d.Ver)
	b = append(b, byte(d.State))
	b = appendNilable(b, d.Start)
	return appendNilable(b, d.End)
}

var errCorrupt = errors.New("basekv: corrupt encoding")

func unmarshalDescriptor(b []byte) (*RangeDescriptor, error) {
	r := decoder{b: b}
	if r.byte() != 1 {
		return nil, fmt.Errorf("%w: descriptor format", errCorrupt)
	}
	d := &RangeDescriptor{ID: r.uvarint(), Ver: r.uvarint(), State: RangeState(r.byte())}
	d.Start = r.nilable()
	d.End = r.nilable()
	if r.err != nil {
		return nil, r.err
	}
	return d, nil
}

func appendNilable(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decoder reads the encodings of this package; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (r *decoder) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

func (r *decoder) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) bytes() []byte {
	n := r.uvarint()
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *decoder) nilable() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := append([]byte{}, r.b[:n]...)
	r.b = r.b[n:]
	return v
}
