package inbox

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/basekv/coproc"
	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/internal/wire"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// StoreName is the basekv store of the inboxes.
const StoreName = "inbox.store"

// The inbox coprocessor's inputs. Each starts with an op byte; "inbox" is
// bytes tenant, bytes id; "inc" the caller's incarnation (uvarint): an op
// for an incarnation that is not the inbox's current one answers
// codeNoInbox and changes nothing.
//
//	'A' inbox, clean, uvarint expiry, uvarint limit, dropOldest, bytes owner, uvarint newInc, will   attach
//	'D' inbox, inc, uvarint expiry, bytes owner, will, uvarint sentTail        detach
//	'S' inbox, inc, bytes filter, suboptions, uvarint maxFilters               subscribe
//	'U' inbox, inc, bytes filter                                               unsubscribe
//	'I' inbox, inc, uvarint m, m x (uvarint n, n x bytes filter, message)      insert, in order
//	'C' inbox, inc, uvarint n, n x (byte queue, uvarint seq)                   commit
//	'R' inbox, inc, uvarint seq                                                PUBREC received
//	'Q' inbox, inc, bool add, uvarint packet id                                inbound QoS 2 id
//	'X' uvarint max                                                            expiry scan (now = the proposal's timestamp)
//	'Z' bytes node, bytes instance                                             detach what a dead run of node left attached
//	'F' inbox, byte queue, uvarint from, uvarint max                           (query) fetch
//	'G' inbox                                                                  (query) metadata
//
// will is bool present, then uvarint delay and a message. Outputs are
// described with each operation.

// Result codes.
const (
	codeOK       byte = 0
	codeNoInbox  byte = 1 // no such inbox, or another incarnation
	codeFull     byte = 2 // insert: the queue is full and the message was dropped
	codeTooMany  byte = 3 // subscribe: MaxTopicFiltersPerInbox reached
	codeNotFound byte = 4 // unsubscribe: no such subscription
	codeSkipped  byte = 5 // insert: no-local excluded every matching subscription
)

var errBadInput = errors.New("inbox: malformed input")

type coprocessor struct{}

// Coprocessor is the coproc.Factory of the inbox.store.
func Coprocessor(string, uint64, coproc.Boundary) coproc.Coprocessor { return coprocessor{} }

func (coprocessor) Reset(coproc.Boundary) {}

// SplitKey keeps a tenant's inboxes, and its deadline index, in one range.
func (coprocessor) SplitKey(key []byte) []byte {
	tenant, _, ok := readSeg(key)
	if !ok {
		return key
	}
	return tenantPrefix(tenant)
}

// state is one op's view of an inbox.
type state struct {
	tenant, id string
	meta       *Meta
	r          coproc.Reader
	w          coproc.Writer
}

func loadMeta(r coproc.Reader, tenant, id string) (*Meta, error) {
	v, ok, err := r.Get(metaKey(tenant, id))
	if err != nil || !ok {
		return nil, err
	}
	m := &Meta{}
	if err := m.UnmarshalBinary(v); err != nil {
		return nil, err
	}
	return m, nil
}

// save writes the metadata and keeps the deadline index in step.
func (s *state) save(prevDeadline int64) error {
	m := s.meta
	m.Version++
	m.Deadline = m.deadline()
	if prevDeadline != m.Deadline {
		if prevDeadline != 0 {
			if err := s.w.Delete(indexKey(s.tenant, prevDeadline, s.id)); err != nil {
				return err
			}
		}
		if m.Deadline != 0 {
			if err := s.w.Put(indexKey(s.tenant, m.Deadline, s.id), nil); err != nil {
				return err
			}
		}
	}
	b, err := m.AppendBinary(nil)
	if err != nil {
		return err
	}
	return s.w.Put(metaKey(s.tenant, s.id), b)
}

// drop deletes the inbox: metadata, queues and index entry.
func (s *state) drop() error {
	p := inboxPrefix(s.tenant, s.id)
	if err := s.w.DeleteRange(p, prefixEnd(p)); err != nil {
		return err
	}
	if s.meta.Deadline != 0 {
		return s.w.Delete(indexKey(s.tenant, s.meta.Deadline, s.id))
	}
	return nil
}

func appendFilters(b []byte, m *Meta) []byte {
	fs := make([]string, 0, len(m.Subs))
	for f := range m.Subs {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	b = wire.AppendUvarint(b, uint64(len(fs)))
	for _, f := range fs {
		b = wire.AppendBytes(b, f)
	}
	return b
}

func readWill(d *wire.Decoder) (*Will, error) {
	if !d.Bool() {
		return nil, d.Err
	}
	w := &Will{Delay: uint32(d.Uvarint()), Message: &dist.Message{}}
	if err := w.Message.DecodeFrom(d); err != nil {
		return nil, err
	}
	return w, nil
}

func appendWill(b []byte, w *Will) ([]byte, error) {
	b = wire.AppendBool(b, w != nil)
	if w == nil {
		return b, nil
	}
	b = wire.AppendUvarint(b, uint64(w.Delay))
	return w.Message.AppendBinary(b)
}

func (c coprocessor) Mutate(ctx coproc.MutateContext, in []byte, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	d := wire.NewDecoder(in)
	op := d.Byte()
	now := ctx.Timestamp / 1e6 // unix ms, the proposer's clock
	if op == 'X' {
		return expireScan(ctx, int(d.Uvarint()), now, r, w)
	}
	if op == 'Z' {
		node, instance := d.String(), d.String()
		if d.Done() != nil || node == "" {
			return nil, errBadInput
		}
		return sweepOrphans(ctx, node, instance, now, r, w)
	}
	s := &state{tenant: d.String(), id: d.String(), r: r, w: w}
	if d.Err != nil || s.id == "" {
		return nil, errBadInput
	}
	m, err := loadMeta(r, s.tenant, s.id)
	if err != nil {
		return nil, err
	}
	s.meta = m
	if op == 'A' {
		return s.attach(d, now)
	}
	inc := d.Uvarint()
	if d.Err != nil {
		return nil, errBadInput
	}
	if m == nil || m.Incarnation != inc {
		return []byte{codeNoInbox}, nil
	}
	prev := m.Deadline
	switch op {
	case 'D':
		return s.detach(d, now, prev)
	case 'S':
		f := d.String()
		var o SubOptions
		o.QoS, o.RetainHandling = d.Byte(), d.Byte()
		o.NoLocal, o.RetainAsPub = d.Bool(), d.Bool()
		o.ID = uint32(d.Uvarint())
		maxFilters := int(d.Uvarint())
		if d.Done() != nil {
			return nil, errBadInput
		}
		_, existed := m.Subs[f]
		if !existed && maxFilters > 0 && len(m.Subs) >= maxFilters {
			return []byte{codeTooMany}, nil
		}
		m.Subs[f] = o
		return []byte{codeOK}, s.save(prev)
	case 'U':
		f := d.String()
		if d.Done() != nil {
			return nil, errBadInput
		}
		if _, ok := m.Subs[f]; !ok {
			return []byte{codeNotFound}, nil
		}
		delete(m.Subs, f)
		return []byte{codeOK}, s.save(prev)
	case 'I':
		return s.insert(d, now, prev)
	case 'C':
		n := d.Count()
		for i := 0; i < n && d.Err == nil; i++ {
			q, seq := Queue(d.Byte()), d.Uvarint()
			if q != QoS0Queue && q != SendBuffer {
				return nil, errBadInput
			}
			k := entryKey(s.tenant, s.id, q, seq)
			if _, ok, err := r.Get(k); err != nil {
				return nil, err
			} else if ok {
				if err := w.Delete(k); err != nil {
					return nil, err
				}
				m.Count[qidx(q)]--
			}
		}
		if d.Done() != nil {
			return nil, errBadInput
		}
		return []byte{codeOK}, s.save(prev)
	case 'R':
		seq := d.Uvarint()
		if d.Done() != nil {
			return nil, errBadInput
		}
		k := entryKey(s.tenant, s.id, SendBuffer, seq)
		v, ok, err := r.Get(k)
		if err != nil || !ok {
			return []byte{codeNotFound}, err
		}
		var e Entry
		if err := e.decodeValue(v); err != nil {
			return nil, err
		}
		e.Rec = true
		b, err := e.appendValue(nil)
		if err != nil {
			return nil, err
		}
		return []byte{codeOK}, w.Put(k, b)
	case 'Q':
		add, pid := d.Bool(), uint16(d.Uvarint())
		if d.Done() != nil {
			return nil, errBadInput
		}
		i := slices.Index(m.QoS2In, pid)
		switch {
		case add && i < 0:
			m.QoS2In = append(m.QoS2In, pid)
		case !add && i >= 0:
			m.QoS2In = slices.Delete(m.QoS2In, i, i+1)
		default:
			return []byte{codeOK}, nil
		}
		return []byte{codeOK}, s.save(prev)
	}
	return nil, fmt.Errorf("%w: op %q", errBadInput, op)
}

// attach output: byte code, bool present, meta, then the filters of a
// discarded previous inbox (uvarint n, n x bytes) and its incarnation.
func (s *state) attach(d *wire.Decoder, now int64) ([]byte, error) {
	clean := d.Bool()
	expiry := uint32(d.Uvarint())
	limit := uint32(d.Uvarint())
	dropOldest := d.Bool()
	owner := d.String()
	newInc := d.Uvarint()
	will, err := readWill(d)
	if err != nil || d.Done() != nil {
		return nil, errBadInput
	}
	old := s.meta
	expired := old != nil && old.expireAt() != 0 && old.expireAt() <= now
	out := []byte{codeOK}
	if old != nil && !clean && !expired {
		prev := old.Deadline
		old.DetachedAt, old.Owner, old.Expiry = 0, owner, expiry
		old.Limit, old.DropOldest = limit, dropOldest
		old.Will = will // a pending will of the previous connection is not sent (MQTT-3.1.3-9)
		if err := s.save(prev); err != nil {
			return nil, err
		}
		mb, err := old.AppendBinary(nil)
		if err != nil {
			return nil, err
		}
		out = wire.AppendBytes(wire.AppendBool(out, true), mb)
		out = wire.AppendUvarint(out, 0) // nothing discarded
		return wire.AppendUvarint(out, 0), nil
	}
	var discarded []byte
	var oldInc uint64
	if old != nil {
		discarded = appendFilters(nil, old)
		oldInc = old.Incarnation
		if err := s.drop(); err != nil {
			return nil, err
		}
	} else {
		discarded = wire.AppendUvarint(nil, 0)
	}
	s.meta = &Meta{Incarnation: newInc, Expiry: expiry, Owner: owner, Limit: limit, DropOldest: dropOldest,
		Subs: map[string]SubOptions{}, Will: will}
	if err := s.save(0); err != nil {
		return nil, err
	}
	out = wire.AppendBool(out, false)
	mb, err := s.meta.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	out = wire.AppendBytes(out, mb)
	out = append(out, discarded...)
	return wire.AppendUvarint(out, oldInc), nil
}

// detach output: byte code, bool deleted, then (when deleted) the filters
// to unroute.
func (s *state) detach(d *wire.Decoder, now, prev int64) ([]byte, error) {
	expiry := uint32(d.Uvarint())
	owner := d.String()
	will, err := readWill(d)
	sentTail := d.Uvarint()
	if err != nil || d.Done() != nil {
		return nil, errBadInput
	}
	m := s.meta
	if m.Owner != owner || m.DetachedAt != 0 {
		// Another connection attached since: not ours to detach.
		return []byte{codeNoInbox}, nil
	}
	if expiry == 0 {
		if err := s.drop(); err != nil {
			return nil, err
		}
		return appendFilters(wire.AppendBool([]byte{codeOK}, true), m), nil
	}
	m.DetachedAt, m.Owner, m.Expiry, m.Will = now, "", expiry, will
	m.SentTail = max(m.SentTail, sentTail)
	if err := s.save(prev); err != nil {
		return nil, err
	}
	return wire.AppendBool([]byte{codeOK}, false), nil
}

// SubscriberFilter is the topic filter a client wrote for a route.
func SubscriberFilter(r dist.Route) string {
	switch r.Kind {
	case dist.Shared:
		return packet.SharePrefix + r.Group + "/" + r.Filter
	case dist.OrderedShare:
		return packet.OrderedSharePrefix + r.Group + "/" + r.Filter
	}
	return r.Filter
}

// insert output: per message, byte code, then for codeOK byte queue,
// uvarint seq and bool (the oldest QoS 0 entry was dropped for it).
// Messages are queued in input order.
func (s *state) insert(d *wire.Decoder, now, prev int64) ([]byte, error) {
	count := d.Count()
	var out []byte
	ins := &inserting{now: now}
	for k := 0; k < count && d.Err == nil; k++ {
		n := d.Count()
		filters := make([]string, 0, n)
		for i := 0; i < n && d.Err == nil; i++ {
			filters = append(filters, d.String())
		}
		msg := &dist.Message{}
		if err := msg.DecodeFrom(d); err != nil {
			return nil, errBadInput
		}
		res, err := s.insertOne(ins, filters, msg)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	if d.Done() != nil {
		return nil, errBadInput
	}
	if ins.changed {
		if err := s.save(prev); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// inserting is the state of one insert op across its messages: the op's
// own writes are not visible to its reader, so QoS 0 drop-oldest tracks
// what it deleted and added.
type inserting struct {
	now     int64
	changed bool
	from    uint64   // QoS 0 entries below this seq were deleted by this op
	added   []uint64 // QoS 0 seqs this op put and has not deleted
}

func (s *state) insertOne(ins *inserting, filters []string, msg *dist.Message) ([]byte, error) {
	m := s.meta
	e := Entry{Message: msg}
	matched, deliverable := false, false
	for _, f := range filters {
		o, ok := m.Subs[f]
		if !ok {
			continue
		}
		matched = true
		if o.NoLocal && msg.Publisher == s.id {
			continue
		}
		deliverable = true
		e.QoS = max(e.QoS, min(msg.QoS, o.QoS))
		e.RAP = e.RAP || o.RetainAsPub
		if o.ID != 0 {
			e.IDs = append(e.IDs, o.ID)
		}
	}
	if !matched {
		return []byte{codeNoInbox}, nil
	}
	if !deliverable || msg.Expired(time.UnixMilli(ins.now)) {
		return []byte{codeSkipped}, nil
	}
	q := SendBuffer
	if e.QoS == 0 {
		q = QoS0Queue
	}
	qi := qidx(q)
	droppedOldest := false
	if m.Limit > 0 && m.Count[qi] >= m.Limit {
		if q != QoS0Queue || !m.DropOldest {
			return []byte{codeFull}, nil
		}
		ok, err := s.dropOldest(ins)
		if err != nil {
			return nil, err
		}
		droppedOldest = ok
	}
	seq := m.Tail[qi]
	m.Tail[qi]++
	m.Count[qi]++
	v, err := e.appendValue(nil)
	if err != nil {
		return nil, err
	}
	if err := s.w.Put(entryKey(s.tenant, s.id, q, seq), v); err != nil {
		return nil, err
	}
	if q == QoS0Queue {
		ins.added = append(ins.added, seq)
	}
	ins.changed = true
	out := wire.AppendUvarint([]byte{codeOK, byte(q)}, seq)
	return wire.AppendBool(out, droppedOldest), nil
}

// dropOldest deletes the oldest QoS 0 entry: the first stored one not yet
// deleted by this op, else the first this op added.
func (s *state) dropOldest(ins *inserting) (bool, error) {
	p := append(inboxPrefix(s.tenant, s.id), byte(QoS0Queue))
	var oldest []byte
	var seq uint64
	lower := wire.AppendUint64(bytes.Clone(p), ins.from)
	if err := s.r.Iterate(lower, prefixEnd(p), func(k, _ []byte) bool {
		oldest = bytes.Clone(k)
		seq = wire.NewDecoder(k[len(p):]).Uint64()
		return false
	}); err != nil {
		return false, err
	}
	switch {
	case oldest != nil && (len(ins.added) == 0 || seq < ins.added[0]):
		ins.from = seq + 1
	case len(ins.added) > 0:
		seq, ins.added = ins.added[0], ins.added[1:]
		oldest = entryKey(s.tenant, s.id, QoS0Queue, seq)
		ins.from = max(ins.from, seq+1)
	default:
		return false, nil
	}
	if err := s.w.Delete(oldest); err != nil {
		return false, err
	}
	s.meta.Count[qidx(QoS0Queue)]--
	return true, nil
}

// expireScan output: uvarint n, n x (bytes tenant, bytes id, uvarint inc,
// bool expired, filters (when expired), will (when due)).
func expireScan(ctx coproc.MutateContext, maxItems int, now int64, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	if maxItems <= 0 {
		maxItems = 1000
	}
	var out []byte
	count := 0
	// Walk the tenants of the range: each one's index, then seek past it.
	key := ctx.Boundary.Start
	for count < maxItems {
		var tenant string
		found := false
		if err := r.Iterate(key, ctx.Boundary.End, func(k, _ []byte) bool {
			t, _, ok := readSeg(k)
			tenant, found = t, ok
			return false
		}); err != nil {
			return nil, err
		}
		if !found {
			break
		}
		idx := indexPrefix(tenant)
		var due []string
		var dueAt []int64
		upper := wire.AppendUint64(bytes.Clone(idx), uint64(now)+1)
		if err := r.Iterate(idx, upper, func(k, _ []byte) bool {
			rest := k[len(idx):]
			if len(rest) < 8 {
				return true
			}
			id, _, ok := readSeg(rest[8:])
			if ok {
				due = append(due, id)
				dueAt = append(dueAt, int64(wire.NewDecoder(rest[:8]).Uint64()))
			}
			return len(due)+count < maxItems
		}); err != nil {
			return nil, err
		}
		for i, id := range due {
			m, err := loadMeta(r, tenant, id)
			if err != nil {
				return nil, err
			}
			if m == nil || m.Deadline != dueAt[i] {
				// A stale index entry.
				if err := w.Delete(indexKey(tenant, dueAt[i], id)); err != nil {
					return nil, err
				}
				continue
			}
			s := &state{tenant: tenant, id: id, meta: m, r: r, w: w}
			var will *Will
			if at := m.willAt(); at != 0 && at <= now {
				will, m.Will = m.Will, nil
			}
			expired := m.expireAt() != 0 && m.expireAt() <= now
			item := wire.AppendBytes(nil, tenant)
			item = wire.AppendBytes(item, id)
			item = wire.AppendUvarint(item, m.Incarnation)
			item = wire.AppendBool(item, expired)
			if expired {
				item = appendFilters(item, m)
				if err := s.drop(); err != nil {
					return nil, err
				}
			} else if err := s.save(m.Deadline); err != nil {
				return nil, err
			}
			if item, err = appendWill(item, will); err != nil {
				return nil, err
			}
			out = append(out, item...)
			count++
		}
		key = prefixEnd(tenantPrefix(tenant))
		if key == nil {
			break
		}
	}
	return append(wire.AppendUvarint(nil, uint64(count)), out...), nil
}

func (coprocessor) Query(in []byte, r coproc.Reader) ([]byte, error) {
	d := wire.NewDecoder(in)
	op := d.Byte()
	tenant, id := d.String(), d.String()
	switch op {
	case 'G':
		if d.Done() != nil {
			return nil, errBadInput
		}
		v, ok, err := r.Get(metaKey(tenant, id))
		if err != nil || !ok {
			return []byte{codeNoInbox}, err
		}
		return append([]byte{codeOK}, v...), nil
	case 'F':
		q, from, maxN := Queue(d.Byte()), d.Uvarint(), int(d.Uvarint())
		if d.Done() != nil || (q != QoS0Queue && q != SendBuffer) {
			return nil, errBadInput
		}
		p := append(inboxPrefix(tenant, id), byte(q))
		var out []byte
		n := 0
		err := r.Iterate(wire.AppendUint64(bytes.Clone(p), from), prefixEnd(p), func(k, v []byte) bool {
			out = wire.AppendUint64(out, wire.NewDecoder(k[len(p):]).Uint64())
			out = wire.AppendBytes(out, v)
			n++
			return n < maxN
		})
		if err != nil {
			return nil, err
		}
		return append(wire.AppendUvarint([]byte{codeOK}, uint64(n)), out...), nil
	}
	return nil, fmt.Errorf("%w: query %q", errBadInput, op)
}

// sweepOrphans detaches, as of now, every inbox still attached to an
// earlier run of node (owners are "<node>/<run>/<connection>"): that run
// died without detaching them, so their expiry and wills start now.
// Output: uvarint count.
func sweepOrphans(ctx coproc.MutateContext, node, instance string, now int64, r coproc.Reader, w coproc.Writer) ([]byte, error) {
	type orphan struct {
		tenant, id string
		m          *Meta
	}
	var found []orphan
	var ferr error
	err := r.Iterate(ctx.Boundary.Start, ctx.Boundary.End, func(k, v []byte) bool {
		tenant, rest, ok := readSeg(k)
		if !ok {
			return true
		}
		id, rest, ok := readSeg(rest)
		if !ok || len(rest) != 1 || rest[0] != metaSuffix {
			return true
		}
		m := &Meta{}
		if ferr = m.UnmarshalBinary(v); ferr != nil {
			return false
		}
		if m.DetachedAt == 0 && strings.HasPrefix(m.Owner, node+"/") && !strings.HasPrefix(m.Owner, instance+"/") {
			found = append(found, orphan{tenant, id, m})
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	for _, o := range found {
		s := &state{tenant: o.tenant, id: o.id, meta: o.m, r: r, w: w}
		prev := o.m.Deadline
		o.m.DetachedAt, o.m.Owner = now, ""
		if err := s.save(prev); err != nil {
			return nil, err
		}
	}
	return wire.AppendUvarint(nil, uint64(len(found))), nil
}
