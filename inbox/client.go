package inbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/internal/wire"
)

// Errors of the inbox client; test with errors.Is.
var (
	// ErrNoInbox: the inbox does not exist, or has another incarnation
	// (the session was replaced).
	ErrNoInbox = errors.New("inbox: no such inbox (or a newer incarnation)")
	// ErrTooManyFilters: MaxTopicFiltersPerInbox is reached.
	ErrTooManyFilters = errors.New("inbox: too many topic filters")
)

// Client is the client of the inbox.store. Safe for concurrent use.
type Client struct{ s *basekv.Store }

// Open opens (or creates) the inbox.store on a basekv node.
func Open(n *basekv.Node, ro basekv.ReplicaOptions) (*Client, error) {
	s, err := n.Store(StoreName, Coprocessor, ro)
	if err != nil {
		return nil, err
	}
	return &Client{s: s}, nil
}

// Store is the underlying basekv store.
func (c *Client) Store() *basekv.Store { return c.s }

func header(op byte, tenant, id string) []byte {
	b := wire.AppendBytes([]byte{op}, tenant)
	return wire.AppendBytes(b, id)
}

// mutate runs an inbox-scoped input and checks its result code.
func (c *Client) mutate(ctx context.Context, tenant, id string, in []byte) (*wire.Decoder, byte, error) {
	out, err := c.s.Mutate(ctx, metaKey(tenant, id), in)
	if err != nil {
		return nil, 0, err
	}
	d := wire.NewDecoder(out)
	code := d.Byte()
	if d.Err != nil {
		return nil, 0, errBadInput
	}
	if code == codeNoInbox {
		return d, code, ErrNoInbox
	}
	return d, code, nil
}

// AttachRequest opens or resumes an inbox for a connecting session.
type AttachRequest struct {
	Tenant, ID string
	Clean      bool   // discard any existing inbox first (clean start)
	Expiry     uint32 // session expiry interval, seconds (Never: never)
	Limit      uint32 // entries per queue (SessionInboxSize); 0 no limit
	DropOldest bool   // a full QoS 0 queue drops its oldest entry
	Owner      string // the server instance the session is attached to
	Will       *Will  // the connection's will, kept for a delayed will
	// Incarnation of a new inbox; must exceed any earlier one of this id.
	Incarnation uint64
}

// AttachResult says what Attach found.
type AttachResult struct {
	Present bool  // an existing inbox was resumed
	Meta    *Meta // the inbox after the attach
	// Discarded are the filters of an inbox a clean start or expiry
	// replaced, to unroute with DiscardedInc.
	Discarded    []string
	DiscardedInc uint64
}

// Attach opens a new inbox or resumes the existing one.
func (c *Client) Attach(ctx context.Context, r AttachRequest) (*AttachResult, error) {
	in := header('A', r.Tenant, r.ID)
	in = wire.AppendBool(in, r.Clean)
	in = wire.AppendUvarint(in, uint64(r.Expiry))
	in = wire.AppendUvarint(in, uint64(r.Limit))
	in = wire.AppendBool(in, r.DropOldest)
	in = wire.AppendBytes(in, r.Owner)
	in = wire.AppendUvarint(in, r.Incarnation)
	in, err := appendWill(in, r.Will)
	if err != nil {
		return nil, err
	}
	d, _, err := c.mutate(ctx, r.Tenant, r.ID, in)
	if err != nil {
		return nil, err
	}
	res := &AttachResult{Present: d.Bool(), Meta: &Meta{}}
	if err := res.Meta.UnmarshalBinary(d.Bytes()); err != nil {
		return nil, err
	}
	res.Discarded = readFilters(d)
	res.DiscardedInc = d.Uvarint()
	return res, d.Done()
}

func readFilters(d *wire.Decoder) []string {
	n := d.Count()
	var fs []string
	for i := 0; i < n && d.Err == nil; i++ {
		fs = append(fs, d.String())
	}
	return fs
}

// Detach ends a connection's attachment: with expiry 0 the inbox is
// deleted and its filters returned for unrouting; otherwise it is kept,
// detached, with the given will (nil: none) scheduled. A detach by an
// owner no longer attached does nothing (ErrNoInbox).
//
// sentTail says the send-buffer entries below it were sent to the client:
// a resumed session resends them with DUP.
func (c *Client) Detach(ctx context.Context, tenant, id string, inc uint64, expiry uint32, owner string, will *Will, sentTail uint64) (deleted bool, filters []string, err error) {
	in := wire.AppendUvarint(header('D', tenant, id), inc)
	in = wire.AppendUvarint(in, uint64(expiry))
	in = wire.AppendBytes(in, owner)
	if in, err = appendWill(in, will); err != nil {
		return false, nil, err
	}
	in = wire.AppendUvarint(in, sentTail)
	d, _, err := c.mutate(ctx, tenant, id, in)
	if err != nil {
		return false, nil, err
	}
	if deleted = d.Bool(); deleted {
		filters = readFilters(d)
	}
	return deleted, filters, d.Done()
}

// Subscribe records a subscription (replacing one on the same filter).
func (c *Client) Subscribe(ctx context.Context, tenant, id string, inc uint64, filter string, o SubOptions, maxFilters int) error {
	in := wire.AppendUvarint(header('S', tenant, id), inc)
	in = wire.AppendBytes(in, filter)
	in = append(in, o.QoS, o.RetainHandling)
	in = wire.AppendBool(in, o.NoLocal)
	in = wire.AppendBool(in, o.RetainAsPub)
	in = wire.AppendUvarint(in, uint64(o.ID))
	in = wire.AppendUvarint(in, uint64(max(0, maxFilters)))
	_, code, err := c.mutate(ctx, tenant, id, in)
	if err == nil && code == codeTooMany {
		err = fmt.Errorf("%w (at most %d)", ErrTooManyFilters, maxFilters)
	}
	return err
}

// Unsubscribe removes a subscription; false when there was none.
func (c *Client) Unsubscribe(ctx context.Context, tenant, id string, inc uint64, filter string) (bool, error) {
	in := wire.AppendBytes(wire.AppendUvarint(header('U', tenant, id), inc), filter)
	_, code, err := c.mutate(ctx, tenant, id, in)
	return err == nil && code == codeOK, err
}

// InsertResult is the outcome of one insert.
type InsertResult struct {
	Stored bool // queued: at Queue, Seq
	// Dropped: the queue was full and the drop policy dropped a message:
	// this one (Stored false), or the oldest QoS 0 entry (Stored true).
	Dropped bool
	Queue   Queue
	Seq     uint64
	// Gone: none of the filters is subscribed any more (the route is
	// stale).
	Gone bool
}

// InsertItem is one message for an inbox, with the inbox's filters (as
// the client wrote them) that matched it.
type InsertItem struct {
	Filters []string
	Message *dist.Message
}

// Insert queues one message; see InsertBatch.
func (c *Client) Insert(ctx context.Context, tenant, id string, inc uint64, filters []string, msg *dist.Message) (InsertResult, error) {
	rs, err := c.InsertBatch(ctx, tenant, id, inc, []InsertItem{{Filters: filters, Message: msg}})
	if err != nil {
		return InsertResult{}, err
	}
	return rs[0], nil
}

// InsertBatch queues messages for an inbox in one replicated write, in
// order. Skipped messages (no-local, expired) are neither stored nor
// dropped. ErrNoInbox when the inbox (or this incarnation) is gone.
func (c *Client) InsertBatch(ctx context.Context, tenant, id string, inc uint64, items []InsertItem) ([]InsertResult, error) {
	in := wire.AppendUvarint(header('I', tenant, id), inc)
	in = wire.AppendUvarint(in, uint64(len(items)))
	for _, it := range items {
		in = wire.AppendUvarint(in, uint64(len(it.Filters)))
		for _, f := range it.Filters {
			in = wire.AppendBytes(in, f)
		}
		var err error
		if in, err = it.Message.AppendBinary(in); err != nil {
			return nil, err
		}
	}
	out, err := c.s.Mutate(ctx, metaKey(tenant, id), in)
	if err != nil {
		return nil, err
	}
	if len(out) == 1 && out[0] == codeNoInbox {
		return nil, ErrNoInbox // the incarnation check failed for the whole op
	}
	d := wire.NewDecoder(out)
	rs := make([]InsertResult, len(items))
	for i := range rs {
		switch d.Byte() {
		case codeOK:
			rs[i] = InsertResult{Stored: true, Queue: Queue(d.Byte()), Seq: d.Uvarint()}
			rs[i].Dropped = d.Bool()
		case codeFull:
			rs[i].Dropped = true
		case codeNoInbox:
			rs[i].Gone = true // no longer subscribed through these filters
		}
	}
	return rs, d.Done()
}

// Pos names a queue entry.
type Pos struct {
	Queue Queue
	Seq   uint64
}

// Commit removes delivered entries.
func (c *Client) Commit(ctx context.Context, tenant, id string, inc uint64, entries []Pos) error {
	in := wire.AppendUvarint(header('C', tenant, id), inc)
	in = wire.AppendUvarint(in, uint64(len(entries)))
	for _, p := range entries {
		in = wire.AppendUvarint(append(in, byte(p.Queue)), p.Seq)
	}
	_, _, err := c.mutate(ctx, tenant, id, in)
	return err
}

// MarkReceived records that the client sent PUBREC for a QoS 2 entry, so
// a resumed session sends PUBREL for it instead of the message.
func (c *Client) MarkReceived(ctx context.Context, tenant, id string, inc uint64, seq uint64) error {
	in := wire.AppendUvarint(wire.AppendUvarint(header('R', tenant, id), inc), seq)
	_, _, err := c.mutate(ctx, tenant, id, in)
	return err
}

// SetQoS2In adds (or removes) an inbound QoS 2 packet id awaiting PUBREL.
func (c *Client) SetQoS2In(ctx context.Context, tenant, id string, inc uint64, add bool, pid uint16) error {
	in := wire.AppendBool(wire.AppendUvarint(header('Q', tenant, id), inc), add)
	in = wire.AppendUvarint(in, uint64(pid))
	_, _, err := c.mutate(ctx, tenant, id, in)
	return err
}

// Fetch reads up to max entries of a queue from seq from on, from a local
// replica where there is one.
func (c *Client) Fetch(ctx context.Context, tenant, id string, q Queue, from uint64, max int) ([]Entry, error) {
	in := wire.AppendUvarint(append(header('F', tenant, id), byte(q)), from)
	in = wire.AppendUvarint(in, uint64(max))
	out, err := c.s.Query(ctx, metaKey(tenant, id), in, false)
	if err != nil {
		return nil, err
	}
	d := wire.NewDecoder(out)
	if d.Byte() != codeOK {
		return nil, ErrNoInbox
	}
	n := d.Count()
	entries := make([]Entry, 0, n)
	for i := 0; i < n && d.Err == nil; i++ {
		e := Entry{Queue: q, Seq: d.Uint64()}
		if err := e.decodeValue(d.Bytes()); err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, d.Done()
}

// Exists reports whether an inbox exists, from a local replica when there
// is one (no Raft round: it may lag a change made on another node).
func (c *Client) Exists(ctx context.Context, tenant, id string) (bool, error) {
	out, err := c.s.Query(ctx, metaKey(tenant, id), header('G', tenant, id), false)
	if err != nil {
		return false, err
	}
	return len(out) > 0 && out[0] == codeOK, nil
}

// Meta reads an inbox's metadata (linearizably).
func (c *Client) Meta(ctx context.Context, tenant, id string) (*Meta, error) {
	out, err := c.s.Query(ctx, metaKey(tenant, id), header('G', tenant, id), true)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0] != codeOK {
		return nil, ErrNoInbox
	}
	m := &Meta{}
	return m, m.UnmarshalBinary(out[1:])
}

// Expired is an inbox the expiry scan handled.
type Expired struct {
	Tenant, ID  string
	Incarnation uint64
	Deleted     bool     // the session expired: the inbox is gone
	Filters     []string // of a deleted inbox, to unroute
	Will        *Will    // a will that fell due
}

// Expire runs the expiry scan on every range, at most max inboxes each.
func (c *Client) Expire(ctx context.Context, max int) ([]Expired, error) {
	var all []Expired
	var errs []error
	for _, rd := range c.s.Ranges() {
		in := wire.AppendUvarint([]byte{'X'}, uint64(max))
		out, err := c.s.Mutate(ctx, rd.Start, in)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d := wire.NewDecoder(out)
		n := d.Count()
		for i := 0; i < n && d.Err == nil; i++ {
			e := Expired{Tenant: d.String(), ID: d.String(), Incarnation: d.Uvarint(), Deleted: d.Bool()}
			if e.Deleted {
				e.Filters = readFilters(d)
			}
			w, err := readWill(d)
			if err != nil {
				return all, err
			}
			e.Will = w
			all = append(all, e)
		}
		if err := d.Done(); err != nil {
			errs = append(errs, err)
		}
	}
	return all, errors.Join(errs...)
}

// SweepOrphans detaches the inboxes an earlier run of node left attached
// (it crashed): their expiry and delayed wills start now. instance is the
// current run ("<node>/<run>"), whose sessions are left alone. It returns
// how many it detached.
func (c *Client) SweepOrphans(ctx context.Context, node, instance string) (int, error) {
	n := 0
	var errs []error
	for _, rd := range c.s.Ranges() {
		in := wire.AppendBytes(wire.AppendBytes([]byte{'Z'}, node), instance)
		out, err := c.s.Mutate(ctx, rd.Start, in)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d := wire.NewDecoder(out)
		n += int(d.Uvarint())
	}
	return n, errors.Join(errs...)
}
