// Package coproc is the contract between basekv and the services that keep
// their state in it (dist, inbox, retain, and basekv's own raw KV). A
// coprocessor owns the meaning of a store's keys; basekv owns where they
// live, their replication and their ranges.
//
// # Contract
//
// A store has one Coprocessor instance per range replica, made by the
// store's Factory. basekv calls it from the range's Raft apply loop
// (Mutate, Reset, SplitKey) and from readers (Query), so:
//
//   - Mutate runs on every replica, in log order, one call per input. It
//     must be deterministic: same state, same input, same ctx → same
//     writes and output. Time comes from ctx.Timestamp (the proposer's
//     clock, carried in the log), never from the local clock. Its reads do
//     not see its own writes, which are applied when it returns nil; an
//     error discards them and is returned to the caller as the result of
//     that input (other inputs of the same batch are unaffected).
//     Side effects outside the store (calling other services) happen only
//     where ctx.IsLeader, and must be idempotent: leadership can move
//     between apply and effect, and a new leader must re-drive what may
//     have been lost.
//   - Query is read-only and may run concurrently with Mutate on another
//     goroutine (against a consistent snapshot); it must not keep r.
//   - Reset is called after the range's boundary changed (split, merge,
//     snapshot restore); the coprocessor drops caches of keys outside it.
//   - SplitKey aligns a proposed split key to a logical unit (for example
//     an inbox never spans two ranges); it returns a key >= the proposal or
//     nil when no split point is acceptable.
//
// Keys passed to a coprocessor are its own: basekv's prefixes are removed.
// Slices passed in (input, keys, values) are valid only during the call.
package coproc

import "bytes"

// Boundary is a range's key span [Start, End). A nil Start is the
// beginning of the keyspace, a nil End its end.
type Boundary struct {
	Start, End []byte
}

// Contains reports whether key is inside b.
func (b Boundary) Contains(key []byte) bool {
	return bytes.Compare(key, b.Start) >= 0 && (b.End == nil || bytes.Compare(key, b.End) < 0)
}

// Reader reads a range's keys.
type Reader interface {
	// Get returns the value of key and whether it exists. The value is
	// valid until the Mutate or Query call returns.
	Get(key []byte) (value []byte, ok bool, err error)
	// Iterate calls fn for each key in [lower, upper) ∩ the range's
	// boundary, in order, until fn returns false. A nil upper is unbounded.
	// Keys and values are valid during fn only.
	Iterate(lower, upper []byte, fn func(key, value []byte) bool) error
}

// Writer records a Mutate's writes. Every key must be inside the range's
// boundary, else the write fails.
type Writer interface {
	Put(key, value []byte) error
	Delete(key []byte) error
	// DeleteRange deletes [start, end); a nil end means the range's end.
	DeleteRange(start, end []byte) error
}

// MutateContext describes the apply of one input.
type MutateContext struct {
	RangeID   uint64
	Boundary  Boundary
	Timestamp int64 // proposer's clock, Unix nanoseconds
	IsLeader  bool  // this replica led the range when the entry was applied
}

// Coprocessor implements a store's logic. See the package doc.
type Coprocessor interface {
	Mutate(ctx MutateContext, input []byte, r Reader, w Writer) (output []byte, err error)
	Query(input []byte, r Reader) (output []byte, err error)
	Reset(b Boundary)
	SplitKey(key []byte) []byte
}

// Factory makes the coprocessor of one range replica.
type Factory func(store string, rangeID uint64, b Boundary) Coprocessor
