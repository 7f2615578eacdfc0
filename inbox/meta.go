package inbox

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"

	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/internal/wire"
)

// Keys of the inbox.store. One inbox (tenant, id) owns
//
//	seg(tenant) seg(id) 0x01              its metadata (Meta)
//	seg(tenant) seg(id) 0x02 seq(8 BE)    an entry of its QoS 0 queue
//	seg(tenant) seg(id) 0x03 seq(8 BE)    an entry of its QoS 1/2 send buffer
//
// and each tenant has a deadline index of its detached inboxes,
//
//	seg(tenant) 0x00 0x03 deadline(8 BE, unix ms) seg(id)
//
// read by the expiry scan. seg(s) is s with each 0x00 written 0x00 0xFF,
// then 0x00 0x01, so a tenant's keys (and one inbox's) are contiguous and
// the index marker 0x00 0x03 cannot start an id's segment.

// Queue names an inbox queue.
type Queue byte

// The two queues of an inbox.
const (
	QoS0Queue  Queue = 0x02 // QoS 0 messages
	SendBuffer Queue = 0x03 // QoS 1 and 2 messages
)

const metaSuffix = 0x01

var indexMarker = []byte{0, 3}

func appendSeg(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xFF)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// readSeg reads one segment; ok is false at an index marker or bad input.
func readSeg(b []byte) (seg string, rest []byte, ok bool) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return "", nil, false
		}
		switch b[i+1] {
		case 0xFF:
			out = append(out, 0)
			i++
		case 1:
			return string(out), b[i+2:], true
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

func tenantPrefix(tenant string) []byte { return appendSeg(nil, tenant) }

func inboxPrefix(tenant, id string) []byte { return appendSeg(appendSeg(nil, tenant), id) }

func metaKey(tenant, id string) []byte { return append(inboxPrefix(tenant, id), metaSuffix) }

func entryKey(tenant, id string, q Queue, seq uint64) []byte {
	return wire.AppendUint64(append(inboxPrefix(tenant, id), byte(q)), seq)
}

func indexPrefix(tenant string) []byte { return append(tenantPrefix(tenant), indexMarker...) }

func indexKey(tenant string, deadline int64, id string) []byte {
	return appendSeg(wire.AppendUint64(indexPrefix(tenant), uint64(deadline)), id)
}

// prefixEnd is the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// SubOptions are a subscription's options as the inbox keeps them.
type SubOptions struct {
	QoS            byte
	NoLocal        bool
	RetainAsPub    bool
	RetainHandling byte
	ID             uint32 // subscription identifier; 0 none
}

// Will is a session's will message with its delay.
type Will struct {
	Message *dist.Message
	Delay   uint32 // seconds
}

// Never is the session expiry interval that never expires.
const Never = 0xFFFFFFFF

// Meta is an inbox's metadata.
type Meta struct {
	Incarnation uint64 // identifies this life of the inbox; routes carry it
	Version     uint64 // bumped by every change, for optimistic concurrency
	Expiry      uint32 // session expiry interval, seconds (Never: never)
	DetachedAt  int64  // unix ms; 0 while a connection is attached
	Owner       string // the server instance attached (while attached)
	Limit       uint32 // SessionInboxSize: entries per queue
	DropOldest  bool   // QoS 0 queue full: drop the oldest (else the newest)
	Tail        [2]uint64
	Count       [2]uint32
	Subs        map[string]SubOptions // by topic filter as the client wrote it
	Will        *Will
	QoS2In      []uint16 // inbound QoS 2 packet ids awaiting PUBREL
	Deadline    int64    // the indexed deadline (unix ms), 0 none
	// SentTail: send-buffer entries below this seq were sent to a client
	// (as of the last detach), so a resumed session resends them with DUP.
	SentTail uint64
}

func qidx(q Queue) int { return int(q) - int(QoS0Queue) }

const metaVersion = 1

// AppendBinary appends m's encoding.
func (m *Meta) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, metaVersion)
	b = wire.AppendUvarint(b, m.Incarnation)
	b = wire.AppendUvarint(b, m.Version)
	b = wire.AppendUvarint(b, uint64(m.Expiry))
	b = wire.AppendVarint(b, m.DetachedAt)
	b = wire.AppendBytes(b, m.Owner)
	b = wire.AppendUvarint(b, uint64(m.Limit))
	b = wire.AppendBool(b, m.DropOldest)
	for i := range 2 {
		b = wire.AppendUvarint(b, m.Tail[i])
		b = wire.AppendUvarint(b, uint64(m.Count[i]))
	}
	filters := make([]string, 0, len(m.Subs))
	for f := range m.Subs {
		filters = append(filters, f)
	}
	slices.Sort(filters)
	b = wire.AppendUvarint(b, uint64(len(filters)))
	for _, f := range filters {
		o := m.Subs[f]
		b = wire.AppendBytes(b, f)
		b = append(b, o.QoS, o.RetainHandling)
		b = wire.AppendBool(b, o.NoLocal)
		b = wire.AppendBool(b, o.RetainAsPub)
		b = wire.AppendUvarint(b, uint64(o.ID))
	}
	b = wire.AppendBool(b, m.Will != nil)
	if m.Will != nil {
		b = wire.AppendUvarint(b, uint64(m.Will.Delay))
		var err error
		if b, err = m.Will.Message.AppendBinary(b); err != nil {
			return nil, err
		}
	}
	b = wire.AppendUvarint(b, uint64(len(m.QoS2In)))
	for _, id := range m.QoS2In {
		b = wire.AppendUvarint(b, uint64(id))
	}
	b = wire.AppendVarint(b, m.Deadline)
	b = wire.AppendUvarint(b, m.SentTail)
	return b, nil
}

// UnmarshalBinary decodes m.
func (m *Meta) UnmarshalBinary(b []byte) error {
	d := wire.NewDecoder(b)
	if v := d.Byte(); v != metaVersion {
		return fmt.Errorf("inbox: metadata version %d", v)
	}
	*m = Meta{}
	m.Incarnation = d.Uvarint()
	m.Version = d.Uvarint()
	m.Expiry = uint32(d.Uvarint())
	m.DetachedAt = d.Varint()
	m.Owner = d.String()
	m.Limit = uint32(d.Uvarint())
	m.DropOldest = d.Bool()
	for i := range 2 {
		m.Tail[i] = d.Uvarint()
		m.Count[i] = uint32(d.Uvarint())
	}
	n := d.Count()
	m.Subs = make(map[string]SubOptions, n)
	for i := 0; i < n && d.Err == nil; i++ {
		f := d.String()
		var o SubOptions
		o.QoS, o.RetainHandling = d.Byte(), d.Byte()
		o.NoLocal, o.RetainAsPub = d.Bool(), d.Bool()
		o.ID = uint32(d.Uvarint())
		m.Subs[f] = o
	}
	if d.Bool() {
		w := &Will{Delay: uint32(d.Uvarint()), Message: &dist.Message{}}
		if err := w.Message.DecodeFrom(d); err != nil {
			return err
		}
		m.Will = w
	}
	n = d.Count()
	for i := 0; i < n && d.Err == nil; i++ {
		m.QoS2In = append(m.QoS2In, uint16(d.Uvarint()))
	}
	m.Deadline = d.Varint()
	m.SentTail = d.Uvarint()
	if err := d.Done(); err != nil {
		return fmt.Errorf("inbox: metadata: %w", err)
	}
	return nil
}

// expireAt is when a detached inbox expires (unix ms), or 0.
func (m *Meta) expireAt() int64 {
	if m.DetachedAt == 0 || m.Expiry == Never {
		return 0
	}
	return m.DetachedAt + int64(m.Expiry)*1000
}

// willAt is when a detached inbox's will is due (unix ms), or 0:
// min(will delay, session expiry) after the detach (MQTT-3.1.3-9).
func (m *Meta) willAt() int64 {
	if m.DetachedAt == 0 || m.Will == nil {
		return 0
	}
	return m.DetachedAt + int64(min(m.Will.Delay, m.Expiry))*1000
}

// deadline is the next time the expiry scan must look at the inbox.
func (m *Meta) deadline() int64 {
	e, w := m.expireAt(), m.willAt()
	switch {
	case e == 0:
		return w
	case w == 0:
		return e
	}
	return min(e, w)
}

// Entry is one queued message of an inbox.
type Entry struct {
	Queue Queue
	Seq   uint64
	QoS   byte     // delivered QoS
	RAP   bool     // deliver with the retain flag as published
	IDs   []uint32 // subscription identifiers
	// Rec: QoS 2 whose PUBREC the client sent; resume sends PUBREL.
	Rec     bool
	Message *dist.Message
}

// An entry's value: version, QoS, RAP, Rec, the subscription ids, then
// the message's encoding, plain or (flag 1) s2-compressed. Messages of at
// least compressMin bytes are compressed when that saves an eighth or
// more: pebble compresses its sstable blocks already, but the Raft log,
// the WAL and the memtable hold entries as written, and for text and JSON
// payloads s2 cuts them to a third or less at ~950 MB/s, where zstd
// (fastest) gets a sixth at ~240 MB/s (BenchmarkEntryCompression).
const (
	entryVersion = 1
	compressMin  = 512
)

func (e *Entry) appendValue(b []byte) ([]byte, error) {
	b = append(b, entryVersion, e.QoS)
	b = wire.AppendBool(b, e.RAP)
	b = wire.AppendBool(b, e.Rec)
	b = wire.AppendUvarint(b, uint64(len(e.IDs)))
	for _, id := range e.IDs {
		b = wire.AppendUvarint(b, uint64(id))
	}
	m, err := e.Message.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if len(m) >= compressMin {
		if c := s2.Encode(nil, m); len(c) <= len(m)-len(m)/8 {
			return append(append(b, 1), c...), nil
		}
	}
	return append(append(b, 0), m...), nil
}

func (e *Entry) decodeValue(v []byte) error {
	d := wire.NewDecoder(v)
	if ver := d.Byte(); ver != entryVersion {
		return fmt.Errorf("inbox: entry version %d", ver)
	}
	e.QoS = d.Byte()
	e.RAP, e.Rec = d.Bool(), d.Bool()
	n := d.Count()
	e.IDs = nil
	for i := 0; i < n && d.Err == nil; i++ {
		e.IDs = append(e.IDs, uint32(d.Uvarint()))
	}
	compressed := d.Byte()
	if d.Err != nil {
		return d.Err
	}
	m := d.B
	if compressed == 1 {
		var err error
		if m, err = s2.Decode(nil, m); err != nil {
			return fmt.Errorf("inbox: entry: %w", err)
		}
	}
	e.Message = &dist.Message{}
	return e.Message.UnmarshalBinary(m)
}
