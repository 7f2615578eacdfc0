package basekv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bifromq-go/bifromq/internal/wire"
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
	r := newDecoder(b)
	if r.Byte() != 1 {
		return nil, fmt.Errorf("%w: descriptor format", errCorrupt)
	}
	d := &RangeDescriptor{ID: r.Uvarint(), Ver: r.Uvarint(), State: RangeState(r.Byte())}
	d.Start = r.nilable()
	d.End = r.nilable()
	if r.Err != nil {
		return nil, r.Err
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

// decoder reads the encodings of this package (internal/wire); the first
// error, errCorrupt, sticks.
type decoder struct{ wire.Decoder }

func newDecoder(b []byte) decoder { return decoder{wire.Decoder{B: b, Malformed: errCorrupt}} }

func (r *decoder) fail() { r.Fail() }

func (r *decoder) nilable() []byte {
	n := r.Uvarint()
	if n == 0 {
		return nil
	}
	n--
	if uint64(len(r.B)) < n {
		r.fail()
		return nil
	}
	v := append([]byte{}, r.B[:n]...)
	r.B = r.B[n:]
	return v
}
