package retain

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/basekv/coproc"
	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/internal/wire"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// StoreName is the basekv store that holds the retained messages.
const StoreName = "retain.store"

// The retain.store coprocessor. Inputs (bytes is a uvarint length then
// the bytes; nilable is 0x00 for nil, or 0x01 then bytes):
//
//	'P' bytes key, bytes message
//	    (Mutate) retain the message (dist.Message encoding, Topic the
//	    key's topic) at key; an empty payload, or an expiry at or before
//	    the proposal's timestamp, deletes the key instead. Output one byte:
//	    putNoop, putNew, putReplaced or putCleared.
//	'G' varint now, bytes from, nilable to, uvarint budget
//	    (Mutate) delete the expired messages in [from, to) ∩ the range,
//	    reading at most budget keys. now is Unix nanoseconds; 0 means the
//	    proposal's timestamp (MutateContext.Timestamp), never the local
//	    clock. Output: uvarint removed, uvarint read, nilable next — the key
//	    to resume at (in this range when the budget ran out, else this
//	    range's end), nil when [from, to) is done.
//	'M' bytes tenant, bytes filter, uvarint limit, varint now, bytes from
//	    (Query) the first limit unexpired messages of tenant, at or after
//	    key from (empty: the tenant's start), whose topics match filter,
//	    in key order, by the walk of match.go; now is Unix nanoseconds.
//	    Output: nilable end (this replica's range end, nil for the
//	    keyspace end), uvarint keys read, uvarint n, n x (bytes key, bytes
//	    message).
//
// A tenant's keys may span ranges: clients follow the range ends that 'G'
// and 'M' report (see Client).
const (
	opPut   = 'P'
	opGC    = 'G'
	opMatch = 'M'
)

// The outputs of a put.
const (
	putNoop     = 0 // cleared a topic that held nothing
	putNew      = 1
	putReplaced = 2
	putCleared  = 3
)

type coprocessor struct {
	// boundary is the range's, as of the last Reset: the end a match
	// reports. A Query racing a split may see the narrower boundary while
	// it reads the wider one; the client drops what it already has.
	boundary atomic.Pointer[coproc.Boundary]
}

// Coprocessor is the coproc.Factory of the retain.store store. It keeps no
// cache: Reset records the new boundary only.
func Coprocessor(_ string, _ uint64, b coproc.Boundary) coproc.Coprocessor {
	c := &coprocessor{}
	c.Reset(b)
	return c
}

// Reset implements coproc.Coprocessor.
func (c *coprocessor) Reset(b coproc.Boundary) {
	b = coproc.Boundary{Start: clone(b.Start), End: cloneNilable(b.End)}
	c.boundary.Store(&b)
}

// SplitKey implements coproc.Coprocessor: any key is a split point. A
// tenant's retained messages may be many, so they are not kept in one
// range; Match and GC follow the ranges a tenant spans, in key order.
func (*coprocessor) SplitKey(key []byte) []byte { return key }

// Mutate implements coproc.Coprocessor.
func (c *coprocessor) Mutate(ctx coproc.MutateContext, in []byte, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	d := newDecoder(in)
	switch d.Byte() {
	case opPut:
		key, val := d.Bytes(), d.Bytes()
		if err := d.end(); err != nil {
			return nil, err
		}
		return put(ctx, key, val, r, w)
	case opGC:
		now, from, to, budget := d.Varint(), d.Bytes(), d.nilable(), d.Uvarint()
		if err := d.end(); err != nil {
			return nil, err
		}
		if now == 0 {
			now = ctx.Timestamp
		}
		return gc(ctx.Boundary, time.Unix(0, now), from, to, int(min(budget, 1<<20)), r, w)
	}
	return nil, fmt.Errorf("%w: mutate op %q", errBadInput, in[:min(len(in), 1)])
}

func put(ctx coproc.MutateContext, key, val []byte, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	_, topic, ok := decodeKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: %q", errBadKey, key)
	}
	var m dist.Message
	if err := m.UnmarshalBinary(val); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadInput, err)
	}
	if m.Topic != topic {
		return nil, fmt.Errorf("%w: message topic %q at the key of %q", errBadInput, m.Topic, topic)
	}
	_, held, err := r.Get(key)
	if err != nil {
		return nil, err
	}
	if len(m.Payload) == 0 || m.Expired(time.Unix(0, ctx.Timestamp)) {
		if !held {
			return []byte{putNoop}, nil
		}
		if err := w.Delete(key); err != nil {
			return nil, err
		}
		return []byte{putCleared}, nil
	}
	if err := w.Put(key, val); err != nil {
		return nil, err
	}
	if held {
		return []byte{putReplaced}, nil
	}
	return []byte{putNew}, nil
}

func gc(b coproc.Boundary, now time.Time, from, to []byte, budget int, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	if budget < 1 {
		budget = 1
	}
	removed, read := 0, 0
	var last []byte
	var werr error
	err := r.Iterate(from, to, func(k, v []byte) bool {
		read++
		exp, err := expiry(v)
		if err != nil {
			werr = fmt.Errorf("retain: value of key %q: %w", k, err)
			return false
		}
		if !exp.IsZero() && !now.Before(exp) {
			if werr = w.Delete(k); werr != nil {
				return false
			}
			removed++
		}
		if read == budget {
			last = clone(k)
			return false
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	var next []byte
	switch {
	case last != nil:
		next = successor(last)
	case b.End != nil && (to == nil || bytes.Compare(b.End, to) < 0):
		next = b.End
	}
	out := binary.AppendUvarint(nil, uint64(removed))
	out = binary.AppendUvarint(out, uint64(read))
	return appendNilable(out, next), nil
}

// Query implements coproc.Coprocessor.
func (c *coprocessor) Query(in []byte, r coproc.Reader) ([]byte, error) {
	d := newDecoder(in)
	if op := d.Byte(); op != opMatch {
		return nil, fmt.Errorf("%w: query op %q", errBadInput, op)
	}
	tenant, filter, limit, now, from := d.Bytes(), d.Bytes(), d.Uvarint(), d.Varint(), d.Bytes()
	if err := d.end(); err != nil {
		return nil, err
	}
	if err := checkFilter(string(filter)); err != nil {
		return nil, err
	}
	if len(from) == 0 {
		from = nil
	}
	end := c.boundary.Load().End
	out := appendNilable(make([]byte, 0, 256), end)
	var body []byte
	n := 0
	visited, err := matchWalk(r, string(tenant), string(filter), from, int(min(limit, 1<<30)), time.Unix(0, now),
		func(k, v []byte) {
			body = appendBytes(body, k)
			body = appendBytes(body, v)
			n++
		})
	if err != nil {
		return nil, err
	}
	out = binary.AppendUvarint(out, uint64(visited))
	out = binary.AppendUvarint(out, uint64(n))
	return append(out, body...), nil
}

// checkFilter validates a filter a match may take: a topic filter without
// a share prefix (retained messages go to new non-shared subscriptions
// only, MQTT 5 §3.3.1.3).
func checkFilter(filter string) error {
	if err := packet.ValidateTopicFilter(filter); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFilter, err)
	}
	if strings.HasPrefix(filter, packet.SharePrefix) || strings.HasPrefix(filter, packet.OrderedSharePrefix) {
		return fmt.Errorf("%w: %q is a shared subscription, which gets no retained messages", ErrBadFilter, filter)
	}
	return nil
}

func appendBytes(b, v []byte) []byte { return wire.AppendBytes(b, v) }

func appendNilable(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	return appendBytes(append(b, 1), v)
}

func cloneNilable(b []byte) []byte {
	if b == nil {
		return nil
	}
	return clone(b)
}

// decoder reads the inputs and outputs (internal/wire); the first error
// sticks. Slices it returns alias its buffer.
type decoder struct{ wire.Decoder }

func newDecoder(b []byte) *decoder { return &decoder{wire.Decoder{B: b, Malformed: errBadInput}} }

func (d *decoder) nilable() []byte {
	switch d.Byte() {
	case 0:
		return nil
	case 1:
		v := d.Bytes()
		if v == nil {
			v = []byte{}
		}
		return v
	}
	d.Fail()
	return nil
}

// end reports a decoding error or trailing bytes.
func (d *decoder) end() error {
	if d.Err == nil && len(d.B) != 0 {
		d.Err = fmt.Errorf("%w: %d trailing bytes", errBadInput, len(d.B))
	}
	return d.Err
}
