package basekv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/bifromq-go/bifromq/basekv/coproc"
)

// Raft command kinds. A command is one Raft entry: kind byte, then its body.
const (
	cmdMutate byte = 1 // uvarint ver, varint ts, uvarint n, n x bytes input
	cmdSplit  byte = 2 // uvarint ver, bytes key, uvarint new range id, uvarint n, n x (uvarint replica, bytes node)
	cmdTouch  byte = 3 // nothing: advances the applied index (before a snapshot)
	cmdSeal   byte = 4 // uvarint ver: the range stops serving, before a merge absorbs it
	cmdMerge  byte = 5 // uvarint ver, bytes sealed right descriptor: absorb the right neighbour
)

// Result codes (sm.Result.Value).
const (
	resOK      = 0 // Data: per input: status byte (0 ok, 1 error) + bytes
	resStale   = 1 // Data: the range's current descriptor
	resInvalid = 2 // Data: error text
)

// rangeSM is the dragonboat on-disk state machine of one range replica. It
// writes only into its range's span of the store's pebble DB and keeps its
// applied index and descriptor under the reserved system prefix, in the
// same pebble batch as the data a Raft batch writes.
type rangeSM struct {
	st      *Store
	shardID uint64
	replica uint64

	// mu guards desc and cp against concurrent Lookup. Lock order: a
	// Store's mu is taken before a rangeSM's, never while holding it.
	mu      sync.RWMutex
	desc    *RangeDescriptor
	cp      coproc.Coprocessor
	applied uint64
	entries atomic.Uint64 // entries applied since start, for metrics
}

func newRangeSM(st *Store, shardID, replicaID uint64) *rangeSM {
	return &rangeSM{st: st, shardID: shardID, replica: replicaID}
}

// Open implements sm.IOnDiskStateMachine.
func (s *rangeSM) Open(<-chan struct{}) (uint64, error) {
	desc, applied, err := s.st.loadRange(s.shardID)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = applied
	if desc != nil {
		s.setDescLocked(desc)
	}
	return applied, nil
}

func (s *rangeSM) setDescLocked(d *RangeDescriptor) {
	s.desc = d
	b := coproc.Boundary{Start: d.Start, End: d.End}
	if s.cp == nil {
		s.cp = s.st.factory(s.st.name, d.ID, b)
	} else {
		s.cp.Reset(b)
	}
	s.st.rangeChanged(d)
}

// Update implements sm.IOnDiskStateMachine: the whole batch of entries is
// one pebble batch.
func (s *rangeSM) Update(entries []sm.Entry) ([]sm.Entry, error) {
	isLeader := s.st.isLeader(s.shardID, s.replica)
	batch := s.st.db.NewIndexedBatch()
	defer batch.Close()
	var after []func()
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	for i := range entries {
		e := &entries[i]
		if len(e.Cmd) == 0 {
			continue // a no-op entry
		}
		switch e.Cmd[0] {
		case cmdMutate:
			e.Result = s.applyMutate(batch, e.Cmd[1:], isLeader)
		case cmdTouch:
			e.Result = sm.Result{Value: resOK}
		case cmdSeal:
			e.Result = s.applySeal(batch, e.Cmd[1:])
		case cmdMerge:
			var f func()
			e.Result, f = s.applyMerge(batch, e.Cmd[1:])
			if f != nil {
				after = append(after, f)
			}
		case cmdSplit:
			var f func()
			e.Result, f = s.applySplit(batch, e.Cmd[1:])
			if f != nil {
				after = append(after, f)
			}
		default:
			e.Result = sm.Result{Value: resInvalid, Data: []byte("unknown command")}
		}
		s.applied = e.Index
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], s.applied)
	if err := batch.Set(appliedKey(s.shardID), idx[:], nil); err != nil {
		return nil, err
	}
	// Durability comes from the Raft log: an entry lost from pebble in a
	// crash is re-applied from the log (Sync fsyncs on dragonboat's request).
	if err := batch.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("basekv: range %d: commit: %w", s.shardID, err)
	}
	s.st.metrics.applied.Add(float64(len(entries)))
	s.entries.Add(uint64(len(entries)))
	// Lock order is Store.mu before rangeSM.mu: the follow-ups (which take
	// the store's lock) run after this range's lock is released.
	s.mu.Unlock()
	locked = false
	for _, f := range after {
		f()
	}
	return entries, nil
}

func (s *rangeSM) applyMutate(batch *pebble.Batch, body []byte, isLeader bool) sm.Result {
	r := newDecoder(body)
	ver := r.Uvarint()
	ts := r.Varint()
	n := r.Uvarint()
	if r.Err != nil {
		return sm.Result{Value: resInvalid, Data: []byte(r.Err.Error())}
	}
	if s.desc == nil || ver != s.desc.Ver || s.desc.State != RangeNormal {
		return s.staleResult()
	}
	ctx := coproc.MutateContext{RangeID: s.desc.ID, Boundary: coproc.Boundary{Start: s.desc.Start, End: s.desc.End},
		Timestamp: ts, IsLeader: isLeader}
	rd := &batchReader{b: batch, desc: s.desc}
	out := make([]byte, 0, 16*n)
	for i := uint64(0); i < n; i++ {
		input := r.Bytes()
		if r.Err != nil {
			return sm.Result{Value: resInvalid, Data: []byte(r.Err.Error())}
		}
		w := &opWriter{desc: s.desc}
		res, err := s.cp.Mutate(ctx, input, rd, w)
		if err == nil {
			err = w.apply(batch)
		}
		if err != nil {
			out = append(out, 1)
			out = appendBytes(out, []byte(err.Error()))
			continue
		}
		out = append(out, 0)
		out = appendBytes(out, res)
	}
	return sm.Result{Value: resOK, Data: out}
}

func (s *rangeSM) staleResult() sm.Result {
	if s.desc == nil {
		return sm.Result{Value: resStale}
	}
	return sm.Result{Value: resStale, Data: s.desc.marshal()}
}

// applySplit cuts the range at key: the left half keeps this range's id,
// the right half becomes a new range whose data stays where it is, with the
// voters the command names (new replica ids on the same nodes). The
// returned function, run after the batch commits, starts the right half's
// replica on this node.
func (s *rangeSM) applySplit(batch *pebble.Batch, body []byte) (sm.Result, func()) {
	r := newDecoder(body)
	ver := r.Uvarint()
	key := r.Bytes()
	newID := r.Uvarint()
	n := r.Uvarint()
	members := make(map[uint64]string, n)
	for i := uint64(0); i < n && r.Err == nil; i++ {
		members[r.Uvarint()] = string(r.Bytes())
	}
	if r.Err != nil || len(members) == 0 {
		return sm.Result{Value: resInvalid, Data: []byte("bad split command")}, nil
	}
	if s.desc == nil || ver != s.desc.Ver || s.desc.State != RangeNormal {
		return s.staleResult(), nil
	}
	if !s.desc.Contains(key) || len(key) == 0 || string(key) == string(s.desc.Start) {
		return sm.Result{Value: resInvalid, Data: []byte("split key outside the range or at its start")}, nil
	}
	key = append([]byte(nil), key...)
	left := *s.desc
	left.End, left.Ver = key, s.desc.Ver+1
	right := RangeDescriptor{ID: newID, Start: key, End: s.desc.End, Ver: left.Ver, State: RangeNormal}
	var mine uint64
	for rid, node := range members {
		if node == s.st.node.id {
			mine = rid
		}
	}
	set := func(k, v []byte) {
		if err := batch.Set(k, v, nil); err != nil {
			panic(fmt.Sprintf("basekv: writing to an apply batch: %v", err))
		}
	}
	set(descriptorKey(left.ID), left.marshal())
	if mine != 0 {
		set(descriptorKey(right.ID), right.marshal())
		set(appliedKey(right.ID), make([]byte, 8))
		set(localInfoKey(right.ID), (&localInfo{replicaID: mine, members: members}).marshal())
	} else {
		// Not a voter of the right half (a learner of this range): its keys
		// leave this node; the replica count brings a learner back.
		lo, hi := dataSpan(right.Start, right.End)
		if err := batch.DeleteRange(lo, hi, nil); err != nil {
			panic(fmt.Sprintf("basekv: writing to an apply batch: %v", err))
		}
	}
	s.setDescLocked(&left)
	return sm.Result{Value: resOK, Data: right.marshal()}, func() { s.st.onSplit(s.shardID, &right, members) }
}

// applySeal stops the range from serving: mutations and queries are
// answered stale from here on, and the range is no longer routed, so its
// data is final when its left neighbour absorbs it.
func (s *rangeSM) applySeal(batch *pebble.Batch, body []byte) sm.Result {
	r := newDecoder(body)
	ver := r.Uvarint()
	if r.Err != nil {
		return sm.Result{Value: resInvalid, Data: []byte(r.Err.Error())}
	}
	if s.desc == nil || ver != s.desc.Ver || s.desc.State != RangeNormal {
		return s.staleResult()
	}
	sealed := *s.desc
	sealed.State = RangeSealed
	if err := batch.Set(descriptorKey(sealed.ID), sealed.marshal(), nil); err != nil {
		return sm.Result{Value: resInvalid, Data: []byte(err.Error())}
	}
	s.setDescLocked(&sealed)
	return sm.Result{Value: resOK, Data: sealed.marshal()}
}

// applyMerge extends this range over its sealed right neighbour, whose
// data is already in place on this node (the merge proposer waited for
// every replica of the right range to apply its seal). The right range's
// system keys go, and its replica stops after the batch commits.
func (s *rangeSM) applyMerge(batch *pebble.Batch, body []byte) (sm.Result, func()) {
	r := newDecoder(body)
	ver := r.Uvarint()
	rd, err := unmarshalDescriptor(r.Bytes())
	if r.Err != nil || err != nil {
		return sm.Result{Value: resInvalid, Data: []byte("bad merge command")}, nil
	}
	if s.desc == nil || ver != s.desc.Ver || s.desc.State != RangeNormal {
		return s.staleResult(), nil
	}
	if s.desc.End == nil || string(rd.Start) != string(s.desc.End) || rd.State != RangeSealed {
		return sm.Result{Value: resInvalid, Data: []byte("merge of a range that is not the sealed right neighbour")}, nil
	}
	left := *s.desc
	left.End = rd.End
	left.Ver = max(s.desc.Ver, rd.Ver) + 1
	if err := batch.Set(descriptorKey(left.ID), left.marshal(), nil); err != nil {
		return sm.Result{Value: resInvalid, Data: []byte(err.Error())}, nil
	}
	for _, suffix := range []byte{'a', 'd', 'i'} {
		if err := batch.Delete(rangeKey(rd.ID, suffix), nil); err != nil {
			return sm.Result{Value: resInvalid, Data: []byte(err.Error())}, nil
		}
	}
	s.setDescLocked(&left)
	return sm.Result{Value: resOK, Data: left.marshal()}, func() { s.st.onMerge(rd.ID) }
}

// query is the Lookup argument.
type query struct {
	ver   uint64
	input []byte
}

// queryResult is Lookup's answer: a coprocessor output, or the current
// descriptor when the query was routed with a stale version.
type queryResult struct {
	out   []byte
	stale bool
	desc  *RangeDescriptor // the current descriptor, when stale
}

// Lookup implements sm.IOnDiskStateMachine.
func (s *rangeSM) Lookup(q interface{}) (interface{}, error) {
	qq, ok := q.(*query)
	if !ok {
		return nil, errors.New("basekv: unknown lookup")
	}
	s.mu.RLock()
	desc, cp := s.desc, s.cp
	s.mu.RUnlock()
	if desc == nil || qq.ver != desc.Ver || desc.State != RangeNormal {
		return &queryResult{stale: true, desc: desc}, nil
	}
	snap := s.st.db.NewSnapshot()
	defer snap.Close()
	out, err := cp.Query(qq.input, &snapReader{s: snap, desc: desc})
	if err != nil {
		return nil, &CoprocError{Msg: err.Error()}
	}
	return &queryResult{out: out}, nil
}

// Sync implements sm.IOnDiskStateMachine.
func (s *rangeSM) Sync() error { return s.st.db.LogData(nil, pebble.Sync) }

type snapshotCtx struct {
	snap    *pebble.Snapshot
	desc    RangeDescriptor
	applied uint64
}

// PrepareSnapshot implements sm.IOnDiskStateMachine.
func (s *rangeSM) PrepareSnapshot() (interface{}, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.desc == nil {
		return nil, fmt.Errorf("basekv: range %d has no descriptor to snapshot", s.shardID)
	}
	return &snapshotCtx{snap: s.st.db.NewSnapshot(), desc: *s.desc, applied: s.applied}, nil
}

// Snapshot stream: uvarint applied index, bytes descriptor, then for each
// key of the range in order a 1 byte, bytes key (without the data prefix)
// and bytes value, then a 0 byte.

// SaveSnapshot implements sm.IOnDiskStateMachine.
func (s *rangeSM) SaveSnapshot(c interface{}, w io.Writer, stop <-chan struct{}) error {
	ctx := c.(*snapshotCtx)
	defer ctx.snap.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, ctx.applied)
	hdr = appendBytes(hdr, ctx.desc.marshal())
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	lo, hi := dataSpan(ctx.desc.Start, ctx.desc.End)
	it, err := ctx.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	var rec []byte
	for n, ok := 0, it.First(); ok; n, ok = n+1, it.Next() {
		if n%1024 == 0 {
			select {
			case <-stop:
				return sm.ErrSnapshotStopped
			default:
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		rec = append(rec[:0], 1)
		rec = appendBytes(rec, it.Key()[1:])
		rec = appendBytes(rec, v)
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if _, err := bw.Write([]byte{0}); err != nil {
		return err
	}
	return bw.Flush()
}

// RecoverFromSnapshot implements sm.IOnDiskStateMachine: it clears the
// range's old and new spans, writes the snapshot's keys into an sstable
// and ingests it, then records the descriptor and applied index.
func (s *rangeSM) RecoverFromSnapshot(r io.Reader, stop <-chan struct{}) error {
	br := bufio.NewReaderSize(r, 64<<10)
	applied, err := binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	db, err := readBytes(br)
	if err != nil {
		return err
	}
	desc, err := unmarshalDescriptor(db)
	if err != nil {
		return err
	}
	s.mu.RLock()
	old := s.desc
	s.mu.RUnlock()
	clear := s.st.db.NewBatch()
	if old != nil {
		lo, hi := dataSpan(old.Start, old.End)
		clear.DeleteRange(lo, hi, nil)
	}
	lo, hi := dataSpan(desc.Start, desc.End)
	clear.DeleteRange(lo, hi, nil)
	err = clear.Commit(pebble.Sync)
	clear.Close()
	if err != nil {
		return err
	}
	if err := s.st.ingestStream(br, s.shardID, stop); err != nil {
		return err
	}
	batch := s.st.db.NewBatch()
	defer batch.Close()
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], applied)
	batch.Set(appliedKey(s.shardID), idx[:], nil)
	batch.Set(descriptorKey(s.shardID), desc.marshal(), nil)
	if err := batch.Commit(pebble.Sync); err != nil {
		return err
	}
	s.mu.Lock()
	s.applied = applied
	s.setDescLocked(desc)
	s.mu.Unlock()
	return nil
}

func readBytes(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, errCorrupt
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// Close implements sm.IOnDiskStateMachine. The pebble DB belongs to the
// store.
func (s *rangeSM) Close() error { return nil }

// batchReader reads a range's keys through the apply batch, so a Mutate
// sees the writes of the inputs applied before it in the same batch.
type batchReader struct {
	b    *pebble.Batch
	desc *RangeDescriptor
}

func (r *batchReader) Get(key []byte) ([]byte, bool, error) {
	return getFrom(r.b, r.desc, key)
}

func (r *batchReader) Iterate(lower, upper []byte, fn func(k, v []byte) bool) error {
	return iterate(r.b, r.desc, lower, upper, fn)
}

// snapReader reads a range's keys from a pebble snapshot.
type snapReader struct {
	s    *pebble.Snapshot
	desc *RangeDescriptor
}

func (r *snapReader) Get(key []byte) ([]byte, bool, error) { return getFrom(r.s, r.desc, key) }

func (r *snapReader) Iterate(lower, upper []byte, fn func(k, v []byte) bool) error {
	return iterate(r.s, r.desc, lower, upper, fn)
}

type pebbleReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func getFrom(r pebbleReader, desc *RangeDescriptor, key []byte) ([]byte, bool, error) {
	if !desc.Contains(key) {
		return nil, false, fmt.Errorf("%w: key %q outside %s", ErrOutOfRange, key, desc)
	}
	v, c, err := r.Get(dataKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}

func iterate(r pebbleReader, desc *RangeDescriptor, lower, upper []byte, fn func(k, v []byte) bool) error {
	if lower == nil || (desc.Start != nil && string(lower) < string(desc.Start)) {
		lower = desc.Start
	}
	if upper == nil || (desc.End != nil && string(upper) > string(desc.End)) {
		upper = desc.End
	}
	lo, hi := dataSpan(lower, upper)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if !fn(it.Key()[1:], v) {
			break
		}
	}
	return it.Error()
}

// opWriter records a Mutate's writes, checked against the boundary, and
// applies them to the batch when the Mutate succeeds.
type opWriter struct {
	desc *RangeDescriptor
	ops  []writeOp
}

type writeOp struct {
	kind       byte // 's' set, 'd' delete, 'r' delete range
	key, value []byte
}

func (w *opWriter) Put(key, value []byte) error {
	if !w.desc.Contains(key) {
		return fmt.Errorf("%w: put %q outside %s", ErrOutOfRange, key, w.desc)
	}
	w.ops = append(w.ops, writeOp{'s', dataKey(key), append([]byte(nil), value...)})
	return nil
}

func (w *opWriter) Delete(key []byte) error {
	if !w.desc.Contains(key) {
		return fmt.Errorf("%w: delete %q outside %s", ErrOutOfRange, key, w.desc)
	}
	w.ops = append(w.ops, writeOp{'d', dataKey(key), nil})
	return nil
}

func (w *opWriter) DeleteRange(start, end []byte) error {
	if !w.desc.Contains(start) || (end != nil && w.desc.End != nil && string(end) > string(w.desc.End)) {
		return fmt.Errorf("%w: delete range [%q,%q) outside %s", ErrOutOfRange, start, end, w.desc)
	}
	if end == nil {
		end = w.desc.End
	}
	lo, hi := dataSpan(start, end)
	w.ops = append(w.ops, writeOp{'r', lo, hi})
	return nil
}

func (w *opWriter) apply(b *pebble.Batch) error {
	for _, op := range w.ops {
		var err error
		switch op.kind {
		case 's':
			err = b.Set(op.key, op.value, nil)
		case 'd':
			err = b.Delete(op.key, nil)
		case 'r':
			err = b.DeleteRange(op.key, op.value, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
