// Package wire is the little binary codec the stores' encodings are
// written with: uvarints, varints, length-prefixed bytes and fixed-width
// big-endian integers. A Decoder keeps the first error and then returns
// zero values, so a decode is a straight run of reads and one check.
package wire

import (
	"encoding/binary"
	"errors"
)

// ErrShort is the Decoder's error for input that ends early or has a bad
// length.
var ErrShort = errors.New("wire: truncated or malformed input")

// AppendBytes appends a uvarint length and s.
func AppendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendUvarint appends v as a uvarint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendVarint appends v as a varint.
func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// AppendUint64 appends v as 8 big-endian bytes (order-preserving in keys).
func AppendUint64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// AppendBool appends a 0 or 1 byte.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Decoder reads what the Append functions wrote.
type Decoder struct {
	B   []byte // the input not yet read
	Err error  // the first error
	// Malformed is the error a failed read records; nil means ErrShort.
	Malformed error
}

// NewDecoder returns a Decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{B: b} }

// Fail records a malformed input (Malformed, else ErrShort) unless an
// error is recorded already, and drops the rest of the input.
func (d *Decoder) Fail() {
	if d.Err == nil {
		d.Err = d.Malformed
		if d.Err == nil {
			d.Err = ErrShort
		}
	}
	d.B = nil
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.B) < 1 {
		d.Fail()
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

// Bool reads a byte written by AppendBool.
func (d *Decoder) Bool() bool { return d.Byte() != 0 }

// Uvarint reads a uvarint.
func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a varint.
func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Uint64 reads 8 big-endian bytes.
func (d *Decoder) Uint64() uint64 {
	if len(d.B) < 8 {
		d.Fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.B)
	d.B = d.B[8:]
	return v
}

// Bytes reads length-prefixed bytes; the result aliases the input.
func (d *Decoder) Bytes() []byte {
	l := d.Uvarint()
	if d.Err != nil || l > uint64(len(d.B)) {
		d.Fail()
		return nil
	}
	v := d.B[:l:l]
	d.B = d.B[l:]
	return v
}

// String reads length-prefixed bytes as a string.
func (d *Decoder) String() string { return string(d.Bytes()) }

// Copy reads length-prefixed bytes into a new slice (nil when empty).
func (d *Decoder) Copy() []byte {
	v := d.Bytes()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// Count reads a uvarint element count, failing when it exceeds the bytes
// left (each element takes at least one byte), so a hostile count cannot
// make the caller allocate.
func (d *Decoder) Count() int {
	n := d.Uvarint()
	if d.Err == nil && n > uint64(len(d.B)) {
		d.Fail()
		return 0
	}
	return int(n)
}

// Done fails unless every byte was read, and returns the error.
func (d *Decoder) Done() error {
	if d.Err == nil && len(d.B) != 0 {
		d.Err = ErrShort
	}
	return d.Err
}
