package mqtt

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/inbox"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// outbox is a session's outbound side: the messages waiting to be sent,
// the QoS 1 and 2 messages in flight, and the acknowledgements owed to the
// client. Deliver (on dist's lanes, or on a publisher's reader) and the
// connection's reader add to it without blocking. Whoever holds the
// outbox's write turn (running) writes it out: a sender goroutine, started
// when there is work and gone when there is none, so a slow client only
// ever holds up its own session; or, for a transient session over plain
// TCP, the reader of the connection whose input produced the work, which
// flushes it before it next waits (see flush), writing only what the socket
// takes at once and leaving any rest to a sender goroutine. The second way
// costs no goroutine hand-off: a message published to an idle subscriber is
// written by the publisher's reader, as an event loop would.
//
// Bounds: QoS 0 messages waiting over QoS0Queue and QoS 1/2 messages
// waiting (beyond the in-flight window) over SessionQueue are dropped and
// counted, as are messages over the server's QueueBudget.
type outbox struct {
	c *conn

	mu       sync.Mutex
	closed   bool
	running  bool     // the write turn is held: by a sender goroutine, or by a reader's flush list
	queue    []target // copies by value: no allocation per message
	head     int
	qos0     int // QoS 0 messages in queue
	qosN     int // QoS 1 and 2 messages in queue
	acks     []ack
	inflight map[uint16]inflight
	window   int
	nextID   uint16
	wg       sync.WaitGroup // the holder of the write turn
	sendFn   func()         // o.send, bound once (a go statement on it allocates nothing)

	p    *outPersist   // a persistent session's inbox; nil for a transient one
	bw   *rate         // OutBoundBandWidth (bytes); nil unlimited
	stop chan struct{} // closed by close: ends a paced wait

	// Owned by the sender goroutine (one at a time).
	aliases   map[string]uint16
	nextAlias uint16
	aliasOf   []string // topic by alias
	buf       []byte
	pub       packet.Publish
	leftover  []byte // encoded bytes a flush could not write at once: the sender writes them first

	// Readers feeding this outbox (see conn.flushOut): the last one's
	// connection number and when it did, and whether different readers
	// have been feeding it with less than fanInWindow between offers (a
	// burst from several publishers, which one write can serve).
	lastSource uint64
	lastOffer  int64 // unix ns
	fanIn      atomic.Bool

	taken atomic.Uint64 // messages taken from the queue for sending, ever: a waiter's sign of progress

	// backlog is how many messages are queued or in flight, kept under mu
	// and read without it: a shared group sends to its least busy member.
	backlog atomic.Int32
	slow    bool          // the queue stayed full through a wait: drop at once until it drains to half
	room    chan struct{} // closed when the queue has room again; nil when nobody waits
}

// inflight is a QoS 1 or 2 message sent and not yet fully acknowledged.
type inflight struct {
	qos    byte
	rec    bool // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
	stored bool // from the inbox: seq is its send-buffer entry
	seq    uint64
}

// ack is an acknowledgement packet owed to the client (PUBACK, PUBREC,
// PUBREL), queued from dist's completions. For a persistent session some
// first need a durable step, taken by the sender before the write:
// recordQoS2 stores an inbound QoS 2 id awaiting PUBREL (before PUBREC),
// markSeq records an outbound entry's PUBREC (before PUBREL).
type ack struct {
	t          packet.Type
	id         uint16
	code       packet.ReasonCode
	recordQoS2 bool
	mark       bool
	markSeq    uint64
}

// outPersist is the outbox's link to a persistent session's inbox: it
// fetches queued entries while the client has capacity (woken when new
// ones are queued) and commits them once delivered.
type outPersist struct {
	st         SessionStore
	tenant, id string
	inc        uint64
	wake       bool      // entries may be waiting in the inbox
	next       [2]uint64 // next seq to fetch per queue (QoS 0, send buffer)
	dupBelow   uint64    // send-buffer entries below were sent before the attach: resent with DUP
	sent       uint64    // send-buffer entries below were sent (written to the client)
	commits    []inbox.Pos
}

// fetchBatch bounds one fetch of QoS 0 entries.
const fetchBatch = 128

// idFor is the packet id of a send-buffer entry: derived from its seq, so
// a resumed session resends each message with its original id.
func idFor(seq uint64) uint16 { return uint16(seq%65535) + 1 }

func (o *outbox) init(c *conn, window int) {
	o.c = c
	o.window = max(1, window)
	o.inflight = make(map[uint16]inflight)
	o.stop = make(chan struct{})
	o.sendFn = o.send
}

// enqueue queues a message copy, or drops and counts it when a bound is
// reached.
func (o *outbox) enqueue(t target) { o.offer(t, false, nil) }

// offer queues a message copy like enqueue, except that when the
// session's queue is full and the session is not known to be slow, it
// returns a channel closed when the queue has room (and queues nothing):
// the caller may wait a little and enqueue again. A session that still has
// no room after such a wait is marked slow, and its messages are dropped
// at once until its queue drains to half. rd is the reader the offer runs
// on, if any (see startLocked).
func (o *outbox) offer(t target, mayWait bool, rd *conn) <-chan struct{} {
	s := o.c.s
	size := int64(t.msg.Size())
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	full := (t.qos == 0 && o.qos0 >= s.opts.QoS0Queue) || (t.qos > 0 && o.qosN >= s.opts.SessionQueue)
	if full && mayWait && !o.slow {
		if o.room == nil {
			o.room = make(chan struct{})
		}
		ch := o.room
		o.mu.Unlock()
		return ch
	}
	if full && !mayWait {
		o.slow = true
	}
	var drop string
	switch {
	case t.qos == 0 && o.qos0 >= s.opts.QoS0Queue:
		drop = dropQoS0Queue
	case t.qos > 0 && o.qosN >= s.opts.SessionQueue:
		drop = dropSessionQueue
	case s.queued.Add(size) > s.opts.QueueBudget:
		s.queued.Add(-size)
		drop = dropBudget
	}
	if drop != "" {
		o.mu.Unlock()
		s.metrics.dropped[drop].Inc()
		o.c.event(EventDropped, drop, t.msg.Topic)
		return nil
	}
	if o.head > 0 && o.head == len(o.queue) {
		o.queue, o.head = o.queue[:0], 0
	}
	o.queue = append(o.queue, t)
	if t.qos == 0 {
		o.qos0++
	} else {
		o.qosN++
	}
	o.noteBacklogLocked()
	s.metrics.queuedBytes.Add(float64(size))
	if rd != nil {
		// Fanned in while offers from different readers come less than
		// fanInWindow apart; a pause ends it.
		now := time.Now().UnixNano()
		if now-o.lastOffer >= int64(fanInWindow) {
			o.fanIn.Store(false)
		} else if o.lastSource != rd.seq {
			o.fanIn.Store(true)
		}
		o.lastSource, o.lastOffer = rd.seq, now
	}
	o.startLocked(rd)
	o.mu.Unlock()
	return nil
}

// pushAck queues an acknowledgement for the client; rd as for offer.
func (o *outbox) pushAck(a ack, rd *conn) {
	o.mu.Lock()
	if !o.closed {
		o.acks = append(o.acks, a)
		o.startLocked(rd)
	}
	o.mu.Unlock()
}

// fanInWindow is how close two readers' messages for one outbox must be
// for the outbox to count as fed by several at once (see conn.flushOut).
const fanInWindow = 200 * time.Microsecond

// flushListCap bounds a reader's flush list for a server running on procs
// Ps; outboxes over it get sender goroutines. With several CPUs those write
// a wide fan-out in parallel with the reader; with one they would only add
// goroutine switches, so the reader writes them all.
func flushListCap(procs int) int {
	if procs == 1 {
		return 1024
	}
	return 8
}

// startLocked makes sure what is queued gets written: nothing to do while
// the write turn is held; a reader handling input (rd, on its goroutine)
// takes the turn into its flush list when the outbox can be written
// without blocking; otherwise a sender goroutine starts.
func (o *outbox) startLocked(rd *conn) {
	if o.running || o.closed {
		return
	}
	o.running = true
	o.wg.Add(1)
	if rd != nil && o.c.raw != nil && o.p == nil && o.bw == nil && len(rd.touched) < o.c.s.flushListCap {
		rd.touched = append(rd.touched, o)
		return
	}
	go o.sendFn()
}

// kickLocked starts a sender goroutine unless the write turn is held.
func (o *outbox) kickLocked() { o.startLocked(nil) }

// sendableLocked reports whether anything can be written now.
func (o *outbox) sendableLocked() bool {
	if len(o.acks) > 0 {
		return true
	}
	if o.head < len(o.queue) && (o.queue[o.head].qos == 0 || len(o.inflight) < o.window) {
		return true
	}
	return o.p != nil && (o.p.wake || len(o.p.commits) > 0)
}

// flush writes what is queued, holding the write turn a reader took for
// it, on the reader's goroutine: only what the socket takes at once (it
// never blocks); the rest, and anything still queued, goes to a sender
// goroutine, which inherits the turn.
func (o *outbox) flush() {
	sc := senderScratches.Get().(*senderScratch)
	defer sc.put()
	o.mu.Lock()
	if o.closed {
		o.running = false
		o.mu.Unlock()
		o.wg.Done()
		return
	}
	sc.acks, sc.batch = o.takeLocked(sc.acks[:0], sc.batch[:0])
	o.mu.Unlock()
	e, err := o.encode(sc.acks, sc.batch)
	n := 0
	if err == nil && len(e.buf) > 0 {
		n, err = o.c.tryWrite(e.buf)
		o.c.s.metrics.bytesOut.Add(float64(n))
	}
	if err != nil {
		o.fail()
		o.wg.Done()
		return
	}
	o.counted(&e)
	o.mu.Lock()
	if n < len(e.buf) {
		o.leftover = append(o.leftover[:0], e.buf[n:]...)
	}
	if n < len(e.buf) || o.sendableLocked() {
		go o.sendFn() // the turn passes to it
	} else {
		o.running = false
		o.wg.Done()
	}
	o.mu.Unlock()
}

// acked handles PUBACK, PUBREC and PUBCOMP from the client; it reports
// false for a packet that matches no message in flight in that state.
func (o *outbox) acked(t packet.Type, id uint16, code packet.ReasonCode) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, ok := o.inflight[id]
	if !ok {
		return false
	}
	done := false
	switch {
	case t == packet.PUBACK && f.qos == 1:
		done = true
	case t == packet.PUBREC && f.qos == 2 && !f.rec:
		if code >= 0x80 {
			done = true // the client refused it: the flow ends (v5)
		} else {
			f.rec = true
			o.inflight[id] = f
			o.acks = append(o.acks, ack{t: packet.PUBREL, id: id, mark: f.stored, markSeq: f.seq})
		}
	case t == packet.PUBCOMP && f.qos == 2 && f.rec:
		done = true
	default:
		return false
	}
	if done {
		delete(o.inflight, id)
		o.noteBacklogLocked()
		if f.stored && o.p != nil {
			o.p.commits = append(o.p.commits, inbox.Pos{Queue: inbox.SendBuffer, Seq: f.seq})
			o.p.wake = true // the window has room: more may wait in the inbox
		}
	}
	if o.sendableLocked() {
		o.kickLocked()
	}
	return true
}

// close drops everything queued and waits for the sender to stop. The
// connection is closed first, so a sender stuck in a write returns.
func (o *outbox) close() {
	o.mu.Lock()
	if !o.closed {
		close(o.stop)
	}
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	o.closed = true
	o.releaseLocked(o.queue[o.head:])
	o.queue, o.head, o.acks = nil, 0, nil
	o.noteBacklogLocked()
	o.mu.Unlock()
	o.wg.Wait()
}

// signalRoomLocked wakes those waiting for room, and forgets that the
// session was slow once its queues are down to half.
func (o *outbox) signalRoomLocked() {
	s := o.c.s
	if o.room != nil && o.qos0 < s.opts.QoS0Queue && o.qosN < s.opts.SessionQueue {
		close(o.room)
		o.room = nil
	}
	if o.slow && o.qos0 <= s.opts.QoS0Queue/2 && o.qosN <= s.opts.SessionQueue/2 {
		o.slow = false
	}
}

// releaseLocked returns the budget of messages leaving the queue.
func (o *outbox) releaseLocked(ts []target) {
	var n int64
	for i := range ts {
		t := &ts[i]
		if !t.stored {
			n += int64(t.msg.Size())
		}
		if t.qos == 0 {
			o.qos0--
		} else {
			o.qosN--
		}
	}
	o.c.s.queued.Add(-n)
	o.c.s.metrics.queuedBytes.Sub(float64(n))
}

// sending is one message taken for sending, with its packet id.
type sending struct {
	t  target
	id uint16
}

// send is the sender goroutine: it takes what is sendable (acks, QoS 0,
// and QoS 1/2 while the window has room; for a persistent session it
// first fetches from the inbox), writes it in one go, commits what the
// client has acknowledged, and repeats until nothing is left.
func (o *outbox) send() {
	defer o.wg.Done()
	sc := senderScratches.Get().(*senderScratch)
	defer sc.put()
	acks, batch, commits := sc.acks, sc.batch, sc.commits
	defer func() { sc.acks, sc.batch, sc.commits = acks, batch, commits }()
	if len(o.leftover) > 0 {
		// What a reader's flush could not write: it goes first.
		n, err := o.c.writeRaw(o.leftover)
		o.c.s.metrics.bytesOut.Add(float64(n))
		if err != nil {
			o.fail()
			return
		}
		o.leftover = o.leftover[:0]
		if cap(o.leftover) > 64<<10 {
			o.leftover = nil
		}
	}
	for {
		acks, batch, commits = acks[:0], batch[:0], commits[:0]
		o.mu.Lock()
		if !o.closed && o.p != nil && o.p.wake && len(o.queue)-o.head < fetchBatch/2 {
			o.p.wake = false
			o.mu.Unlock()
			o.fetch()
			o.mu.Lock()
		}
		if o.closed {
			o.running = false
			o.mu.Unlock()
			return
		}
		acks, batch = o.takeLocked(acks, batch)
		if o.p != nil {
			commits = append(commits, o.p.commits...)
			o.p.commits = o.p.commits[:0]
		}
		if len(acks) == 0 && len(batch) == 0 && len(commits) == 0 {
			o.running = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		if !o.persistAcks(acks) {
			o.fail()
			return
		}
		written, err := o.write(acks, batch)
		if err != nil {
			o.fail()
			return
		}
		commits = append(commits, written...)
		o.commit(commits)
	}
}

// senderScratch is a sender goroutine's reusable state, pooled so that
// neither a burst nor an idle connection costs an allocation or memory.
type senderScratch struct {
	acks    []ack
	batch   []sending
	commits []inbox.Pos
}

var senderScratches = sync.Pool{New: func() any { return new(senderScratch) }}

func (sc *senderScratch) put() {
	clear(sc.batch) // drop the messages
	sc.acks, sc.batch, sc.commits = sc.acks[:0], sc.batch[:0], sc.commits[:0]
	senderScratches.Put(sc)
}

// fail ends the connection after a failed write or store call; the reader
// sees the closed connection and ends the session.
func (o *outbox) fail() {
	o.c.nc.Close()
	o.mu.Lock()
	o.running = false
	o.mu.Unlock()
}

// storeCtx bounds one inbox call of the sender.
func (o *outbox) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), o.c.s.opts.RouteTimeout)
}

// persistAcks takes the durable steps some acknowledgements need before
// they are sent (see ack).
func (o *outbox) persistAcks(acks []ack) bool {
	if o.p == nil {
		return true
	}
	for _, a := range acks {
		if !a.recordQoS2 && !a.mark {
			continue
		}
		ctx, cancel := o.storeCtx()
		var err error
		if a.recordQoS2 {
			err = o.p.st.SetQoS2In(ctx, o.p.tenant, o.p.id, o.p.inc, true, a.id)
		} else {
			err = o.p.st.MarkReceived(ctx, o.p.tenant, o.p.id, o.p.inc, a.markSeq)
		}
		cancel()
		if err != nil {
			o.c.s.log.Warn("persisting a QoS 2 state", "client_id", o.c.clientID, "err", err)
			return false
		}
	}
	return true
}

// fetch reads waiting entries of a persistent session's inbox into the
// queue: QoS 0 in batches, the send buffer up to the window's free room.
func (o *outbox) fetch() {
	p := o.p
	o.mu.Lock()
	room := o.window - len(o.inflight) - o.qosN
	from := p.next
	o.mu.Unlock()
	ctx, cancel := o.storeCtx()
	defer cancel()
	q0, err0 := p.st.Fetch(ctx, p.tenant, p.id, inbox.QoS0Queue, from[0], fetchBatch)
	var q1 []inbox.Entry
	var err1 error
	if room > 0 {
		q1, err1 = p.st.Fetch(ctx, p.tenant, p.id, inbox.SendBuffer, from[1], min(room, 1024))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err0 != nil || err1 != nil {
		o.c.s.log.Warn("fetching from the inbox", "client_id", o.c.clientID, "err", err0, "err1", err1)
		time.AfterFunc(200*time.Millisecond, o.wakeUp) // retry
		return
	}
	if len(q0) == fetchBatch || (room > 0 && len(q1) == min(room, 1024)) {
		p.wake = true // more may wait
	}
	for _, list := range [][]inbox.Entry{q0, q1} {
		for _, e := range list {
			i := int(e.Queue) - int(inbox.QoS0Queue)
			if e.Seq < p.next[i] {
				continue
			}
			p.next[i] = e.Seq + 1
			if e.Rec {
				// PUBREC came before the resume: the flow goes on with PUBREL.
				id := idFor(e.Seq)
				o.inflight[id] = inflight{qos: 2, rec: true, stored: true, seq: e.Seq}
				o.acks = append(o.acks, ack{t: packet.PUBREL, id: id})
				continue
			}
			t := target{c: o.c, msg: e.Message, qos: e.QoS, rap: e.RAP, ids: e.IDs, stored: true,
				queue: e.Queue, seq: e.Seq, dup: e.Queue == inbox.SendBuffer && e.Seq < p.dupBelow}
			o.queue = append(o.queue, t)
			if t.qos == 0 {
				o.qos0++
			} else {
				o.qosN++
			}
		}
	}
	o.noteBacklogLocked()
}

// wakeUp is the inbox's notice that entries were queued.
func (o *outbox) wakeUp() {
	o.mu.Lock()
	if o.p != nil {
		o.p.wake = true
		o.kickLocked()
	}
	o.mu.Unlock()
}

// commit removes delivered entries from the inbox.
func (o *outbox) commit(entries []inbox.Pos) {
	if o.p == nil || len(entries) == 0 {
		return
	}
	ctx, cancel := o.storeCtx()
	defer cancel()
	if err := o.p.st.Commit(ctx, o.p.tenant, o.p.id, o.p.inc, entries); err != nil {
		// Uncommitted entries are delivered again after a reconnect.
		o.c.s.log.Warn("committing inbox entries", "client_id", o.c.clientID, "err", err)
	}
}

// flushCommits commits what the sender had not yet, after close.
func (o *outbox) flushCommits() {
	if o.p == nil {
		return
	}
	o.mu.Lock()
	commits := append([]inbox.Pos(nil), o.p.commits...)
	o.p.commits = nil
	o.mu.Unlock()
	o.commit(commits)
}

// nextPacketID returns a free outbound packet id. Under o.mu, with the
// window not full (so one is free).
func (o *outbox) nextPacketID() uint16 {
	for {
		o.nextID++
		if o.nextID == 0 {
			o.nextID = 1
		}
		if _, busy := o.inflight[o.nextID]; !busy {
			return o.nextID
		}
	}
}

// takeLocked moves what is sendable onto acks and batch: every
// acknowledgement, QoS 0 messages, and QoS 1/2 messages while the window
// has room (each given its packet id and entered in flight).
func (o *outbox) takeLocked(acks []ack, batch []sending) ([]ack, []sending) {
	acks = append(acks, o.acks...)
	clear(o.acks)
	o.acks = o.acks[:0]
	first := o.head
	for o.head < len(o.queue) && len(batch) < 256 {
		t := &o.queue[o.head]
		if t.qos > 0 {
			if len(o.inflight) >= o.window {
				break
			}
			var id uint16
			if t.stored {
				if _, busy := o.inflight[idFor(t.seq)]; busy {
					break // its id is still in flight from 65535 entries ago
				}
				id = idFor(t.seq)
			} else {
				id = o.nextPacketID()
			}
			o.inflight[id] = inflight{qos: t.qos, stored: t.stored, seq: t.seq}
			batch = append(batch, sending{*t, id})
		} else {
			batch = append(batch, sending{*t, 0})
		}
		o.head++
	}
	o.taken.Add(uint64(o.head - first))
	o.noteBacklogLocked()
	o.releaseLocked(o.queue[first:o.head])
	clear(o.queue[first:o.head])
	o.signalRoomLocked()
	return acks, batch
}

// encoded is a batch encoded for one write.
type encoded struct {
	buf      []byte
	counts   [16]int     // packets by type
	done     []inbox.Pos // inbox entries done with once written
	sentHigh uint64      // send-buffer entries below it are written once buf is
}

// encode encodes acks and messages into the outbox's buffer. Messages
// dropped instead (expired, too large) are done with at once.
func (o *outbox) encode(acks []ack, batch []sending) (encoded, error) {
	c := o.c
	e := encoded{buf: o.buf[:0]}
	for _, a := range acks {
		// Each type encoded from a value: no allocation per ack.
		var err error
		switch a.t {
		case packet.PUBACK:
			p := packet.Puback{PacketID: a.id, ReasonCode: a.code}
			e.buf, err = p.Append(e.buf, c.version)
		case packet.PUBREC:
			p := packet.Pubrec{PacketID: a.id, ReasonCode: a.code}
			e.buf, err = p.Append(e.buf, c.version)
		default:
			p := packet.Pubrel{PacketID: a.id, ReasonCode: a.code}
			e.buf, err = p.Append(e.buf, c.version)
		}
		if err != nil {
			return e, err
		}
		e.counts[a.t]++
	}
	var now time.Time
	if len(batch) > 0 {
		now = time.Now()
	}
	for _, b := range batch {
		var ok bool
		e.buf, ok = o.appendPublish(e.buf, b, now)
		if !ok && b.id != 0 {
			o.mu.Lock()
			delete(o.inflight, b.id)
			o.noteBacklogLocked()
			o.mu.Unlock()
		}
		if ok {
			e.counts[packet.PUBLISH]++
		}
		if b.t.stored && (!ok || b.t.qos == 0) {
			e.done = append(e.done, inbox.Pos{Queue: b.t.queue, Seq: b.t.seq})
		}
		if ok && b.t.stored && b.t.queue == inbox.SendBuffer {
			e.sentHigh = max(e.sentHigh, b.t.seq+1)
		}
	}
	o.buf = e.buf
	if cap(o.buf) > 256<<10 {
		o.buf = nil
	}
	return e, nil
}

// counted records a written batch: packet counts, and the send-buffer
// entries now sent.
func (o *outbox) counted(e *encoded) {
	for t, n := range e.counts {
		if n > 0 {
			o.c.s.metrics.packetsOut[t].Add(float64(n))
		}
	}
	if e.sentHigh > 0 {
		o.mu.Lock()
		o.p.sent = max(o.p.sent, e.sentHigh)
		o.mu.Unlock()
	}
}

// write encodes acks and messages into one buffer and writes it. It
// returns the inbox entries now done with: QoS 0 entries written, and
// entries dropped (expired, too large).
func (o *outbox) write(acks []ack, batch []sending) ([]inbox.Pos, error) {
	e, err := o.encode(acks, batch)
	if err != nil {
		return nil, err
	}
	if len(e.buf) == 0 {
		return e.done, nil
	}
	if o.bw != nil {
		o.bw.wait(len(e.buf), o.stop) // pace this session's writes
	}
	n, err := o.c.writeRaw(e.buf)
	o.c.s.metrics.bytesOut.Add(float64(n))
	if err != nil {
		return nil, err
	}
	o.counted(&e)
	return e.done, nil
}

// sentTail is the seq below which the session's send-buffer entries were
// written to the client.
func (o *outbox) sentTail() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.p == nil {
		return 0
	}
	return o.p.sent
}

// appendPublish encodes one outbound PUBLISH; false when the message is
// dropped instead (expired, or over the client's Maximum Packet Size).
func (o *outbox) appendPublish(buf []byte, b sending, now time.Time) ([]byte, bool) {
	c := o.c
	s := c.s
	m := b.t.msg
	if m.Expired(now) {
		s.metrics.dropped[dropExpired].Inc()
		c.event(EventDropped, dropExpired, m.Topic)
		return buf, false
	}
	p := &o.pub
	p.Properties.Reset()
	p.Dup, p.QoS, p.PacketID = b.t.dup && b.t.qos > 0, packet.QoS(b.t.qos), b.id
	p.Retain = m.Retain && b.t.rap
	p.Topic, p.Payload = bytesOf(m.Topic), m.Payload
	var newAlias bool
	if c.version == packet.V5 {
		pr := &p.Properties
		if mp := m.Props; mp != nil {
			pr.PayloadFormat = mp.PayloadFormat
			pr.ContentType, pr.ResponseTopic, pr.CorrelationData = mp.ContentType, mp.ResponseTopic, mp.CorrelationData
			pr.User = append(pr.User, mp.User...)
		}
		pr.SubscriptionIDs = append(pr.SubscriptionIDs, b.t.ids...)
		if !m.Expires.IsZero() {
			// The remaining interval, rounded up (MQTT-3.3.2-6).
			pr.MessageExpiry = uint32((m.Expires.Sub(now) + time.Second - 1) / time.Second)
		}
		if c.clientAliasMax > 0 {
			if a, ok := o.aliases[m.Topic]; ok {
				pr.TopicAlias, p.Topic = a, nil
			} else {
				pr.TopicAlias, newAlias = o.assignAlias(m.Topic), true
			}
		}
	}
	start := len(buf)
	out, err := p.Append(buf, c.version)
	if err == nil && c.clientMaxPacket > 0 && len(out)-start > int(c.clientMaxPacket) {
		err = errTooLarge
	}
	if err != nil {
		if newAlias {
			// The client never learnt it.
			delete(o.aliases, m.Topic)
			o.aliasOf[p.Properties.TopicAlias] = ""
		}
		s.metrics.dropped[dropTooLarge].Inc()
		c.event(EventDropped, dropTooLarge, m.Topic)
		s.log.Debug("message dropped: over the client's maximum packet size", "client_id", c.clientID,
			"topic", m.Topic, "err", err)
		return buf, false
	}
	return out, true
}

// assignAlias gives topic an outbound alias: the next free one, and once
// all are taken, the next in turn is reassigned.
func (o *outbox) assignAlias(topic string) uint16 {
	if o.aliases == nil {
		o.aliases = make(map[string]uint16)
		o.aliasOf = make([]string, int(o.c.clientAliasMax)+1)
	}
	o.nextAlias = o.nextAlias%o.c.clientAliasMax + 1
	if old := o.aliasOf[o.nextAlias]; old != "" {
		delete(o.aliases, old)
	}
	o.aliases[topic] = o.nextAlias
	o.aliasOf[o.nextAlias] = topic
	return o.nextAlias
}

// Reasons a message for a subscriber is dropped (label "reason").
const (
	dropQoS0Queue    = "qos0_queue_full"
	dropSessionQueue = "session_queue_full"
	dropBudget       = "queue_budget"
	dropExpired      = "expired"
	dropTooLarge     = "too_large_for_client"
)

var dropReasons = []string{dropQoS0Queue, dropSessionQueue, dropBudget, dropExpired, dropTooLarge}

// noteBacklogLocked publishes the count of messages queued or in flight.
func (o *outbox) noteBacklogLocked() {
	o.backlog.Store(int32(len(o.queue) - o.head + len(o.inflight)))
}
