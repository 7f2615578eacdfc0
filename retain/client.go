package retain

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// Errors of this package; test them with errors.Is. Errors of the store
// (basekv's, such as basekv.ErrClosed or a context's) are returned
// wrapped as they are: basekv.IsRetryable tells which a caller may retry.
var (
	// ErrBadTopic: the topic of a message to retain is not a valid topic
	// name (empty, too long, malformed UTF-8, or with a wildcard).
	ErrBadTopic = errors.New("retain: bad topic")
	// ErrBadFilter: a match's filter is not a valid topic filter, or is a
	// shared subscription's.
	ErrBadFilter = errors.New("retain: bad topic filter")
	// ErrBadLimit: a match's limit is negative.
	ErrBadLimit = errors.New("retain: bad match limit")
	// ErrBadMessage: a nil message.
	ErrBadMessage = errors.New("retain: bad message")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("retain: closed")
	// ErrInvalidOptions wraps every Options.Validate problem.
	ErrInvalidOptions = errors.New("retain: invalid options")

	errBadInput = errors.New("retain: malformed store input or output")
	errBadKey   = errors.New("retain: malformed key")
)

// Options configure a Client. The zero value is usable: EnsureDefaults
// fills it.
type Options struct {
	// Replicas is the retain.store's replica-count setting (basekv
	// default: one voter).
	Replicas basekv.ReplicaOptions
	// GCInterval is how often the background GC removes expired messages
	// from the ranges this node owns for GC (those whose first voter, by
	// node id, it is). Default DefaultGCInterval; negative: no background
	// GC (GC and GCTenant still work).
	GCInterval time.Duration
	// GCBudget is how many keys one GC input reads: one Raft entry's work.
	// Default 4096.
	GCBudget int
	// MatchChunk caps the messages of one match query; a larger limit
	// takes several. Default 256.
	MatchChunk int
	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the client's metrics (retain_*); nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// DefaultGCInterval is the default Options.GCInterval.
const DefaultGCInterval = time.Minute

// EnsureDefaults fills the zero fields and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.GCBudget == 0 {
		o.GCBudget = 4096
	}
	if o.MatchChunk == 0 {
		o.MatchChunk = 256
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports every problem of o at once, wrapping ErrInvalidOptions.
func (o *Options) Validate() error {
	var errs []error
	if o.GCBudget < 1 {
		errs = append(errs, fmt.Errorf("%w: GCBudget %d < 1", ErrInvalidOptions, o.GCBudget))
	}
	if o.MatchChunk < 1 {
		errs = append(errs, fmt.Errorf("%w: MatchChunk %d < 1", ErrInvalidOptions, o.MatchChunk))
	}
	if o.Replicas.Voters < 0 || o.Replicas.Learners < -1 || o.Replicas.ReplaceAfter < 0 {
		errs = append(errs, fmt.Errorf("%w: replica options %+v", ErrInvalidOptions, o.Replicas))
	}
	return errors.Join(errs...)
}

// Client is the retain service of one node: the client of the
// retain.store (which it opens on the node) and the owner of the
// background GC. Its methods are safe for concurrent use; they take a
// context that bounds their retries (basekv retries a moving range or a
// leader change until the context ends). One Client per node: the store
// opens once.
type Client struct {
	node    *basekv.Node
	s       *basekv.Store
	opts    Options
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time // the clock of Match's expiry; tests move it

	ctx       context.Context // ends at Close: the background GC's
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
}

// Open opens (or creates) the retain.store on node with the default
// Options and replica setting ro.
func Open(node *basekv.Node, ro basekv.ReplicaOptions) (*Client, error) {
	return OpenOptions(node, Options{Replicas: ro})
}

// OpenOptions opens (or creates) the retain.store on node and starts the
// background GC unless disabled. Close stops it.
func OpenOptions(node *basekv.Node, opts Options) (*Client, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("retain: registering metrics: %w", err)
	}
	s, err := node.Store(StoreName, Coprocessor, opts.Replicas)
	if err != nil {
		return nil, err
	}
	c := &Client{node: node, s: s, opts: opts, log: opts.Logger.With("component", "retain"), metrics: m,
		now: time.Now}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if opts.GCInterval > 0 {
		c.wg.Add(1)
		go c.gcLoop()
	}
	return c, nil
}

// Store is the underlying basekv store.
func (c *Client) Store() *basekv.Store { return c.s }

// Close stops the background GC and waits for it; later calls return
// ErrClosed. The store stays open until its node closes. Idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// Retain makes msg the retained message of (tenant, msg.Topic), replacing
// the one held; an empty payload clears the topic, as does a message that
// expired (msg.Expires, zero for never) by the time the store applies it.
// msg is not kept. It returns once the change is applied (Raft-committed).
func (c *Client) Retain(ctx context.Context, tenant string, msg *dist.Message) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if msg == nil {
		return fmt.Errorf("%w: nil", ErrBadMessage)
	}
	if err := packet.ValidateTopicName(msg.Topic); err != nil {
		return fmt.Errorf("%w: %v", ErrBadTopic, err)
	}
	key := topicKey(tenant, msg.Topic)
	in := appendBytes([]byte{opPut}, key)
	val, err := msg.MarshalBinary()
	if err != nil {
		return err
	}
	in = appendBytes(in, val)
	out, err := c.s.Mutate(ctx, key, in)
	result := "error"
	if err == nil {
		switch {
		case len(out) != 1 || out[0] > putCleared:
			err = fmt.Errorf("%w: put output %x", errBadInput, out)
		default:
			result = [...]string{putNoop: "noop", putNew: "new", putReplaced: "replaced", putCleared: "cleared"}[out[0]]
		}
	}
	c.metrics.puts.WithLabelValues(result).Inc()
	if err != nil {
		return fmt.Errorf("retain: retaining %q of tenant %q: %w", msg.Topic, tenant, err)
	}
	return nil
}

// Match returns the retained messages of tenant whose topics match filter
// (a topic filter, not a shared subscription's), unexpired, at most limit
// of them: the first ones in key order (by tenant, then topic level by
// level, bytewise). Each message has its Topic and Retain set; the caller
// owns them. Limit 0 returns nothing.
//
// Wildcards are matched by walking the topic levels (see match.go), never
// by scanning the tenant's messages. Reads are served by a local replica
// when there is one, so a Retain just made on another node may not be
// seen yet.
func (c *Client) Match(ctx context.Context, tenant, filter string, limit int) ([]*dist.Message, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkFilter(filter); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("%w: %d", ErrBadLimit, limit)
	}
	start := time.Now()
	msgs, read, err := c.match(ctx, tenant, filter, limit, c.now())
	c.metrics.matchTime.Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.matches.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("retain: matching %q of tenant %q: %w", filter, tenant, err)
	}
	c.metrics.matches.WithLabelValues("ok").Inc()
	c.metrics.matchFound.Observe(float64(len(msgs)))
	c.metrics.matchRead.Observe(float64(read))
	return msgs, nil
}

// match runs the match query over the ranges tenant's keys span, in key
// order, from the tenant's start: each answer ends at the limit of its
// chunk (go on after its last key) or at its range's end (go on there).
// A range that answered across a split it had not seen yet may return
// keys the next range returns again: keys not above the last kept one are
// dropped.
func (c *Client) match(ctx context.Context, tenant, filter string, limit int, now time.Time) ([]*dist.Message, int, error) {
	var msgs []*dist.Message
	read := 0
	tenantEnd := prefixEnd(tenantPrefix(tenant))
	cursor := tenantPrefix(tenant)
	var last []byte
	for len(msgs) < limit {
		chunk := min(limit-len(msgs), c.opts.MatchChunk)
		in := appendBytes([]byte{opMatch}, []byte(tenant))
		in = appendBytes(in, []byte(filter))
		in = binary.AppendUvarint(in, uint64(chunk))
		in = binary.AppendVarint(in, now.UnixNano())
		in = appendBytes(in, cursor)
		out, err := c.s.Query(ctx, cursor, in, false)
		if err != nil {
			return nil, read, err
		}
		d := newDecoder(out)
		end := d.nilable()
		read += int(d.Uvarint())
		n := d.Uvarint()
		if d.Err == nil && n > uint64(len(d.B)) {
			d.Fail()
		}
		var lastInAnswer []byte
		for i := uint64(0); i < n && d.Err == nil; i++ {
			k, v := d.Bytes(), d.Bytes()
			if d.Err != nil {
				break
			}
			lastInAnswer = k
			if last != nil && bytes.Compare(k, last) <= 0 {
				continue
			}
			m := new(dist.Message)
			if err := m.UnmarshalBinary(v); err != nil {
				return nil, read, fmt.Errorf("retain: value of key %q: %w", k, err)
			}
			m.Retain = true
			msgs = append(msgs, m)
			last = clone(k)
		}
		if err := d.end(); err != nil {
			return nil, read, err
		}
		switch {
		case n == uint64(chunk):
			cursor = successor(lastInAnswer)
		case end == nil || bytes.Compare(end, tenantEnd) >= 0:
			return msgs, read, nil
		case bytes.Compare(end, cursor) > 0:
			cursor = end
		default:
			// The range's end as the replica knew it is behind the
			// cursor (a split it applied after routing): ask again, the
			// route is fresh by now.
		}
		if err := ctx.Err(); err != nil {
			return nil, read, err
		}
	}
	return msgs, read, nil
}

// GC removes the messages that expired at now (zero: at the time the store
// applies each GC input, its proposal's timestamp) from every range of the
// store, and returns how many it removed. It reads every key, GCBudget
// keys per Raft entry.
func (c *Client) GC(ctx context.Context, now time.Time) (removed int, err error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	return c.gcSpan(ctx, []byte{}, nil, now)
}

// GCTenant is GC over tenant's messages only.
func (c *Client) GCTenant(ctx context.Context, tenant string, now time.Time) (removed int, err error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	p := tenantPrefix(tenant)
	return c.gcSpan(ctx, p, prefixEnd(p), now)
}

// gcSpan runs GC inputs over [from, to) (nil to: the keyspace end), range
// after range, each resuming where the last one stopped.
func (c *Client) gcSpan(ctx context.Context, from, to []byte, now time.Time) (removed int, err error) {
	var ns int64
	if !now.IsZero() {
		ns = now.UnixNano()
	}
	defer func() {
		c.metrics.gcRemoved.Add(float64(removed))
		result := "ok"
		if err != nil {
			result = "error"
		}
		c.metrics.gcPasses.WithLabelValues(result).Inc()
	}()
	cursor := from
	if cursor == nil {
		cursor = []byte{}
	}
	for cursor != nil {
		in := binary.AppendVarint([]byte{opGC}, ns)
		in = appendBytes(in, cursor)
		in = appendNilable(in, to)
		in = binary.AppendUvarint(in, uint64(c.opts.GCBudget))
		out, err := c.s.Mutate(ctx, cursor, in)
		if err != nil {
			return removed, fmt.Errorf("retain: GC at %q: %w", cursor, err)
		}
		d := newDecoder(out)
		n, _, next := d.Uvarint(), d.Uvarint(), d.nilable()
		if err := d.end(); err != nil {
			return removed, err
		}
		removed += int(n)
		if next != nil && bytes.Compare(next, cursor) <= 0 {
			return removed, fmt.Errorf("%w: GC resumes at %q, not after %q", errBadInput, next, cursor)
		}
		cursor = next
	}
	return removed, nil
}

// gcLoop is the background GC: every GCInterval, a pass over the ranges
// this node owns for GC. Owned by the Client; Close stops it.
func (c *Client) gcLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.gcOwned(c.ctx)
	}
}

// gcOwned GCs each range whose first voter is this node, so that one node
// of the cluster does each range's GC.
func (c *Client) gcOwned(ctx context.Context) {
	for _, d := range c.s.Ranges() {
		if ctx.Err() != nil {
			return
		}
		actx, cancel := context.WithTimeout(ctx, c.opts.GCInterval)
		voters, _, err := c.s.Members(actx, d.ID)
		if err == nil && len(voters) > 0 && voters[0] == c.node.ID() {
			var n int
			n, err = c.gcSpan(actx, cloneNilable(d.Start), cloneNilable(d.End), time.Time{})
			if n > 0 {
				c.log.Debug("retain: expired messages removed", "range", d.ID, "removed", n)
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, basekv.ErrClosed) {
			c.log.Warn("retain: GC of a range failed", "range", d.ID, "err", err)
		}
	}
}
