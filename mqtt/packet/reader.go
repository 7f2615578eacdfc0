package packet

import (
	"errors"
	"io"
	"math/bits"
	"sync"
)

// ReadBufferSize is the size of a Reader's read-ahead buffer. Bodies that
// fit in it are returned without copying; larger ones go to a pooled buffer
// that grows as the bytes arrive.
const ReadBufferSize = 4096

const (
	minBigClass = 13 // 8 KiB
	maxBigClass = 20 // 1 MiB; larger buffers are not pooled
	bigStart    = 64 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, ReadBufferSize); return &b }}
	bigPools  [maxBigClass + 1]sync.Pool
)

// getBig returns a buffer of length 0 and capacity at least n.
func getBig(n int) []byte {
	c := bits.Len(uint(n - 1))
	if c < minBigClass {
		c = minBigClass
	}
	if c > maxBigClass {
		return make([]byte, 0, n)
	}
	if p, ok := bigPools[c].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 1<<c)
}

func putBig(b []byte) {
	c := bits.Len(uint(cap(b))) - 1
	if c < minBigClass || c > maxBigClass || cap(b) != 1<<c {
		return
	}
	b = b[:0]
	bigPools[c].Put(&b)
}

// Reader reads MQTT packets from a byte stream. It is not safe for
// concurrent use.
type Reader struct {
	src  io.Reader
	max  int
	buf  *[]byte // read-ahead buffer, data in (*buf)[r:w]; nil while nothing is buffered
	r, w int
	big  []byte // body of the last packet when it did not fit buf
	// first receives the first bytes after the buffer ran empty, so an
	// idle connection, blocked in Read, holds no read-ahead buffer.
	first [firstReadSize]byte
}

// firstReadSize bounds the read that waits for data with nothing
// buffered; the bytes move to a pooled buffer as soon as they arrive.
const firstReadSize = 256

// NewReader returns a Reader of src that refuses packets larger than
// maxPacketSize bytes (fixed header included) before reading their bodies.
func NewReader(src io.Reader, maxPacketSize int) *Reader {
	return &Reader{src: src, max: maxPacketSize}
}

// SetMaxPacketSize changes the size limit for the packets read after it.
func (r *Reader) SetMaxPacketSize(n int) { r.max = n }

// Buffered returns the number of bytes read ahead of the last packet.
func (r *Reader) Buffered() int { return r.w - r.r }

// Complete reports whether a whole packet is buffered, so that the next
// ReadPacket returns it without reading.
func (r *Reader) Complete() bool {
	if r.buf == nil || r.w-r.r < 2 {
		return false
	}
	b := (*r.buf)[r.r:r.w]
	v, n, err := decodeVarint(b[1:])
	return err == nil && len(b) >= 1+n+int(v)
}

// ReadPacket reads the next packet. The body is valid until the next call
// to ReadPacket or Release. Errors: io.EOF when the stream ends between
// packets, io.ErrUnexpectedEOF inside one, an *Error with code
// MalformedPacket for a bad fixed header or PacketTooLarge for a packet over
// the limit (its header is returned, its body is not read), or the stream's
// own error.
//
// An idle connection's goroutine waits here with a shallow stack (see
// awaitFirst), so the runtime shrinks it to the minimum at the next
// collection.
func (r *Reader) ReadPacket() (FixedHeader, []byte, error) {
	if r.big != nil {
		putBig(r.big)
		r.big = nil
	}
	if r.r == r.w {
		if err := r.awaitFirst(); err != nil {
			return FixedHeader{}, nil, err
		}
	}
	return r.readBuffered()
}

// awaitFirst waits for the next bytes when nothing is buffered, without
// holding a read-ahead buffer (most connections are idle most of the
// time). It and ReadPacket keep their frames small: a goroutine parked
// with under a quarter of its stack in use gets a half-size stack at the
// next collection, down to the 2 KiB minimum, and ReadPacket's large
// parsing frame (readBuffered) would keep an idle connection's stack at
// 4 KiB.
//
//go:noinline
func (r *Reader) awaitFirst() error {
	if r.buf != nil {
		smallPool.Put(r.buf)
		r.buf = nil
	}
	r.r, r.w = 0, 0
	n, err := r.src.Read(r.first[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	r.buf = smallPool.Get().(*[]byte)
	r.w = copy(*r.buf, r.first[:n])
	return nil
}

// readBuffered reads the packet whose first bytes are buffered.
func (r *Reader) readBuffered() (FixedHeader, []byte, error) {
	buf := *r.buf
	var h FixedHeader
	var hlen int
	for {
		if r.w > r.r {
			b := buf[r.r:r.w]
			h.Type, h.Flags = Type(b[0]>>4), b[0]&0x0f
			v, n, err := decodeVarint(b[1:])
			if err == nil {
				h.Remaining, hlen = int(v), 1+n
				break
			}
			if len(b) >= 5 || err != errTruncatedVarint {
				return h, nil, errorf(MalformedPacket, "remaining length: %s", err.(*Error).Msg)
			}
		}
		if err := r.fill(); err != nil {
			if errors.Is(err, io.EOF) && r.w > r.r {
				err = io.ErrUnexpectedEOF
			}
			return h, nil, err
		}
	}
	if hlen+h.Remaining > r.max {
		return h, nil, errorf(PacketTooLarge, "%s of %d bytes is over the limit of %d", h.Type, hlen+h.Remaining, r.max)
	}
	r.r += hlen
	total := h.Remaining
	if total <= len(buf) {
		if r.r+total > len(buf) {
			r.compact()
		}
		for r.w-r.r < total {
			if err := r.fill(); err != nil {
				return h, nil, unexpected(err)
			}
		}
		body := buf[r.r : r.r+total : r.r+total]
		r.r += total
		return h, body, nil
	}
	// A large body: copy what is buffered, then read the rest into a buffer
	// that grows with the bytes received, so a slow sender announcing a
	// large packet does not get the whole allocation up front.
	body := getBig(min(total, bigStart))
	body = append(body, buf[r.r:r.w]...)
	r.r, r.w = 0, 0
	for len(body) < total {
		if len(body) == cap(body) {
			nb := getBig(min(total, 2*cap(body)))
			nb = append(nb, body...)
			putBig(body)
			body = nb
		}
		n, err := r.src.Read(body[len(body):min(cap(body), total)])
		body = body[:len(body)+n]
		if err != nil && len(body) < total {
			putBig(body)
			return h, nil, unexpected(err)
		}
	}
	r.big = body
	return h, body, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// compact moves the buffered bytes to the front of the buffer.
func (r *Reader) compact() {
	buf := *r.buf
	n := copy(buf, buf[r.r:r.w])
	r.r, r.w = 0, n
}

// fill reads once into the free end of the buffer.
func (r *Reader) fill() error {
	buf := *r.buf
	if r.r == r.w {
		r.r, r.w = 0, 0
	} else if r.w == len(buf) {
		r.compact()
	}
	n, err := r.src.Read(buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Release returns the Reader's buffers to their pools. The Reader may be
// used again afterwards; bytes read ahead are lost.
func (r *Reader) Release() {
	if r.big != nil {
		putBig(r.big)
		r.big = nil
	}
	if r.buf != nil {
		smallPool.Put(r.buf)
		r.buf = nil
	}
	r.r, r.w = 0, 0
}
