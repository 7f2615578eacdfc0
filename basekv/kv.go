package basekv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bifromq-go/bifromq/basekv/coproc"
)

// The raw KV coprocessor: the built-in coprocessor behind KV, and an
// example of the contract. Inputs (first byte is the operation):
//
//	'P' bytes key, bytes value            put
//	'D' bytes key                         delete
//	'C' bytes key, nilable old, nilable new   compare-and-set; output: 1/0 swapped, nilable current
//	'G' bytes key                         get (query); output: nilable value
//	'S' nilable start, nilable end, uvarint limit   scan (query); output: uvarint n, n x (bytes k, bytes v)
//
// bytes is a uvarint length then the bytes; nilable is a uvarint length+1
// (0 for nil) then the bytes.

// MaxKeySize bounds a raw KV key.
const MaxKeySize = 64 << 10

// ErrBadKey is returned for an empty key or one over MaxKeySize.
var ErrBadKey = errors.New("basekv: key empty or too long")

type rawKV struct{}

// RawKV is the raw KV coprocessor factory.
func RawKV(string, uint64, coproc.Boundary) coproc.Coprocessor { return rawKV{} }

func (rawKV) Mutate(_ coproc.MutateContext, in []byte, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	d := newDecoder(in)
	switch d.Byte() {
	case 'P':
		k, v := d.Bytes(), d.Bytes()
		if d.Err != nil {
			return nil, d.Err
		}
		return nil, w.Put(k, v)
	case 'D':
		k := d.Bytes()
		if d.Err != nil {
			return nil, d.Err
		}
		return nil, w.Delete(k)
	case 'C':
		k, old, nw := d.Bytes(), d.nilable(), d.nilable()
		if d.Err != nil {
			return nil, d.Err
		}
		cur, ok, err := r.Get(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			cur = nil
		}
		if (old == nil) != !ok || (ok && !bytes.Equal(cur, old)) {
			return appendNilable([]byte{0}, cur), nil
		}
		if nw == nil {
			err = w.Delete(k)
		} else {
			err = w.Put(k, nw)
		}
		return appendNilable([]byte{1}, nw), err
	}
	return nil, fmt.Errorf("raw KV: unknown mutation")
}

func (rawKV) Query(in []byte, r coproc.Reader) ([]byte, error) {
	d := newDecoder(in)
	switch d.Byte() {
	case 'G':
		k := d.Bytes()
		if d.Err != nil {
			return nil, d.Err
		}
		v, ok, err := r.Get(k)
		if err != nil || !ok {
			return []byte{0}, err
		}
		return appendNilable(nil, v), nil
	case 'S':
		start, end, limit := d.nilable(), d.nilable(), d.Uvarint()
		if d.Err != nil {
			return nil, d.Err
		}
		var pairs []byte
		n := uint64(0)
		err := r.Iterate(start, end, func(k, v []byte) bool {
			pairs = appendBytes(appendBytes(pairs, k), v)
			n++
			return limit == 0 || n < limit
		})
		return append(binary.AppendUvarint(nil, n), pairs...), err
	}
	return nil, fmt.Errorf("raw KV: unknown query")
}

func (rawKV) Reset(coproc.Boundary)      {}
func (rawKV) SplitKey(key []byte) []byte { return key }

// KV is a store of raw keys and values: basekv used as a distributed KV.
type KV struct{ s *Store }

// KV opens (or creates) raw KV store name on the node.
func (n *Node) KV(name string, ro ReplicaOptions) (*KV, error) {
	s, err := n.Store(name, RawKV, ro)
	if err != nil {
		return nil, err
	}
	return &KV{s: s}, nil
}

// Store is the KV's underlying store (for Split, ranges and replicas).
func (kv *KV) Store() *Store { return kv.s }

func checkKey(k []byte) error {
	if len(k) == 0 || len(k) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes", ErrBadKey, len(k))
	}
	return nil
}

// Put sets key to value.
func (kv *KV) Put(ctx context.Context, key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := kv.s.Mutate(ctx, key, appendBytes(appendBytes([]byte{'P'}, key), value))
	return err
}

// Delete removes key.
func (kv *KV) Delete(ctx context.Context, key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := kv.s.Mutate(ctx, key, appendBytes([]byte{'D'}, key))
	return err
}

// CAS sets key to new (nil deletes it) if its value is old (nil: if it
// does not exist). It returns whether it swapped and the value now held.
func (kv *KV) CAS(ctx context.Context, key, old, new []byte) (bool, []byte, error) {
	if err := checkKey(key); err != nil {
		return false, nil, err
	}
	in := appendNilable(appendNilable(appendBytes([]byte{'C'}, key), old), new)
	out, err := kv.s.Mutate(ctx, key, in)
	if err != nil {
		return false, nil, err
	}
	d := newDecoder(out)
	swapped := d.Byte() == 1
	cur := d.nilable()
	return swapped, cur, d.Err
}

// Get returns key's value, linearizably.
func (kv *KV) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	out, err := kv.s.Query(ctx, key, appendBytes([]byte{'G'}, key), true)
	if err != nil {
		return nil, false, err
	}
	d := newDecoder(out)
	v := d.nilable()
	return v, v != nil, d.Err
}

// Pair is a key and its value.
type Pair struct{ Key, Value []byte }

// Scan returns up to limit pairs (0: no limit) with keys in [start, end)
// (nil end: to the end), in key order, across ranges, each range read
// linearizably.
func (kv *KV) Scan(ctx context.Context, start, end []byte, limit int) ([]Pair, error) {
	var out []Pair
	cursor := start
	if cursor == nil {
		cursor = []byte{}
	}
	for {
		var rangeEnd []byte
		var last bool
		remaining := uint64(0)
		if limit > 0 {
			remaining = uint64(limit - len(out))
		}
		var res []byte
		err := kv.s.retry(ctx, cursor, func(r route, target *Store) error {
			in := appendNilable(appendNilable([]byte{'S'}, cursor), end)
			in = binary.AppendUvarint(in, remaining)
			var err error
			res, err = target.localQuery(ctx, r.desc.ID, &query{ver: r.desc.Ver, input: in}, true)
			rangeEnd, last = r.desc.End, r.desc.End == nil
			return err
		})
		if err != nil {
			return nil, err
		}
		d := newDecoder(res)
		n := d.Uvarint()
		for i := uint64(0); i < n; i++ {
			k := append([]byte(nil), d.Bytes()...)
			v := append([]byte(nil), d.Bytes()...)
			out = append(out, Pair{k, v})
		}
		if d.Err != nil {
			return nil, d.Err
		}
		if last || (limit > 0 && len(out) >= limit) || (end != nil && bytes.Compare(rangeEnd, end) >= 0) {
			return out, nil
		}
		cursor = rangeEnd
	}
}
