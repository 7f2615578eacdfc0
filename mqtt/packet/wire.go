package packet

import (
	"math"
	"unicode/utf8"
)

// reader is a cursor over a packet body. The first failure sticks: later
// reads return zero values, and err holds the failure.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(code ReasonCode, format string, args ...any) {
	if r.err == nil {
		r.err = errorf(code, format, args...)
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if r.left() < n {
		r.fail(MalformedPacket, "%s: %d bytes needed, %d left", what, n, r.left())
		return false
	}
	return true
}

func (r *reader) u8(what string) byte {
	if !r.need(1, what) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(what string) uint16 {
	if !r.need(2, what) {
		return 0
	}
	v := uint16(r.b[r.off])<<8 | uint16(r.b[r.off+1])
	r.off += 2
	return v
}

func (r *reader) u32(what string) uint32 {
	if !r.need(4, what) {
		return 0
	}
	b := r.b[r.off:]
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	r.off += 4
	return v
}

func (r *reader) varint(what string) uint32 {
	if r.err != nil {
		return 0
	}
	v, n, err := decodeVarint(r.b[r.off:])
	if err != nil {
		r.fail(MalformedPacket, "%s: %v", what, err.(*Error).Msg)
		return 0
	}
	r.off += n
	return v
}

// binary reads two-byte-length-prefixed binary data, aliasing the body.
func (r *reader) binary(what string) []byte {
	n := int(r.u16(what))
	if !r.need(n, what) {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// utf8Bytes reads a UTF-8 string as bytes aliasing the body, validated.
func (r *reader) utf8Bytes(what string) []byte {
	v := r.binary(what)
	if r.err == nil && !validUTF8(v) {
		r.fail(MalformedPacket, "%s is not well-formed UTF-8 or contains U+0000", what)
		return nil
	}
	return v
}

// str reads a UTF-8 string as a copy.
func (r *reader) str(what string) string {
	v := r.utf8Bytes(what)
	if len(v) == 0 {
		return ""
	}
	return string(v)
}

// rest returns every byte left, aliasing the body.
func (r *reader) rest() []byte {
	v := r.b[r.off:len(r.b):len(r.b)]
	r.off = len(r.b)
	return v
}

// done fails when bytes are left over.
func (r *reader) done(what string) {
	if r.err == nil && r.left() != 0 {
		r.fail(MalformedPacket, "%s: %d unexpected trailing bytes", what, r.left())
	}
}

// validUTF8 reports whether b is well-formed UTF-8 (which excludes the
// surrogates U+D800..U+DFFF and overlong forms) without U+0000
// (MQTT 5 §1.5.4, MQTT 3.1.1 §1.5.3).
func validUTF8(b []byte) bool {
	for i, c := range b {
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			rest := b[i:]
			if !utf8.Valid(rest) {
				return false
			}
			for _, c := range rest {
				if c == 0 {
					return false
				}
			}
			return true
		}
	}
	return true
}

// ValidUTF8 reports whether s is an acceptable MQTT UTF-8 string: well
// formed, no U+0000, at most 65535 bytes.
func ValidUTF8(s string) bool {
	return len(s) <= math.MaxUint16 && validUTF8(unsafeBytes(s))
}

// errTruncatedVarint reports a variable byte integer cut short by the end
// of the input (the stream reader waits for more bytes instead).
var errTruncatedVarint = &Error{Code: MalformedPacket, Msg: "truncated variable byte integer"}

// decodeVarint decodes a variable byte integer from b, returning the value
// and the bytes used. It refuses more than four bytes and non-minimal
// encodings (MQTT 5 §1.5.5).
func decodeVarint(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, errTruncatedVarint
		}
		c := b[i]
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, 0, errorf(MalformedPacket, "variable byte integer not minimally encoded")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errorf(MalformedPacket, "variable byte integer longer than 4 bytes")
}

func varintLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

func appendVarint(dst []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendString(dst []byte, s string) []byte {
	dst = appendU16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendU16(dst, uint16(len(b)))
	return append(dst, b...)
}

// appendHeader appends a fixed header.
func appendHeader(dst []byte, t Type, flags byte, remaining int) []byte {
	dst = append(dst, byte(t)<<4|flags&0x0f)
	return appendVarint(dst, uint32(remaining))
}

// grow makes room for n more bytes in dst with at most one allocation:
// exactly n for an empty dst (one packet encoded alone), else at least
// double, so a buffer that packets are appended to one by one is
// reallocated only a logarithmic number of times.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	c := len(dst) + n
	if len(dst) > 0 {
		c = max(c, 2*cap(dst))
	}
	nb := make([]byte, len(dst), c)
	copy(nb, dst)
	return nb
}

// sizer accumulates an encoded length and the first encoding problem.
type sizer struct {
	n   int
	err error
}

func (s *sizer) fail(format string, args ...any) {
	if s.err == nil {
		s.err = errorf(ProtocolError, "cannot encode: "+format, args...)
	}
}

func (s *sizer) str(what string, n int) {
	if n > math.MaxUint16 {
		s.fail("%s is %d bytes, over 65535", what, n)
	}
	s.n += 2 + n
}

func (s *sizer) finish(t Type) (int, error) {
	if s.err == nil && s.n > MaxRemaining {
		s.fail("%s body of %d bytes is over the protocol limit", t, s.n)
	}
	return s.n, s.err
}
