package retain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/basekv/coproc"
)

// memWriter records a Mutate's writes.
type memWriter struct{ puts, dels []string }

func (w *memWriter) Put(k, _ []byte) error         { w.puts = append(w.puts, string(k)); return nil }
func (w *memWriter) Delete(k []byte) error         { w.dels = append(w.dels, string(k)); return nil }
func (w *memWriter) DeleteRange(_, _ []byte) error { return errors.New("unused") }

func putInput(tenant string, topic string, payload string, expires time.Time) []byte {
	m := msg(topic, payload)
	m.Expires = expires
	v, _ := m.MarshalBinary()
	return appendBytes(appendBytes([]byte{opPut}, topicKey(tenant, topic)), v)
}

func TestCoprocessorInputs(t *testing.T) {
	cp := Coprocessor(StoreName, 1, coproc.Boundary{})
	r := newMemReader()
	r.retain("t", msg("held", "v"))
	r.sort()
	now := time.Now()
	ctx := coproc.MutateContext{RangeID: 1, Timestamp: now.UnixNano()}
	for _, c := range []struct {
		name string
		in   []byte
		out  byte
		put  bool
		del  bool
	}{
		{"new", putInput("t", "a", "v", time.Time{}), putNew, true, false},
		{"replace", putInput("t", "held", "v", now.Add(time.Hour)), putReplaced, true, false},
		{"clear", putInput("t", "held", "", time.Time{}), putCleared, false, true},
		{"clear nothing", putInput("t", "a", "", time.Time{}), putNoop, false, false},
		{"expired at apply", putInput("t", "held", "v", now), putCleared, false, true},
	} {
		w := &memWriter{}
		out, err := cp.Mutate(ctx, c.in, r, w)
		if err != nil || len(out) != 1 || out[0] != c.out || (len(w.puts) == 1) != c.put || (len(w.dels) == 1) != c.del {
			t.Errorf("%s: %v %v puts %q dels %q", c.name, out, err, w.puts, w.dels)
		}
	}
	m := msg("b", "v")
	v, _ := m.MarshalBinary()
	mismatch := appendBytes(appendBytes([]byte{opPut}, topicKey("t", "a")), v)
	for name, in := range map[string][]byte{
		"empty":          {},
		"unknown op":     {'Z'},
		"truncated":      putInput("t", "a", "v", time.Time{})[:10],
		"trailing":       append(putInput("t", "a", "v", time.Time{}), 0),
		"topic mismatch": mismatch,
		"bad key":        appendBytes(appendBytes([]byte{opPut}, []byte{1, 2}), v),
		"bad value":      appendBytes(appendBytes([]byte{opPut}, topicKey("t", "a")), []byte{9}),
	} {
		if _, err := cp.Mutate(ctx, in, r, &memWriter{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, in := range map[string][]byte{
		"empty":      {},
		"mutate op":  {opPut},
		"bad filter": matchInput("t", "a/#/b", 10, now, nil),
		"shared":     matchInput("t", "$share/g/a", 10, now, nil),
		"trailing":   append(matchInput("t", "a", 10, now, nil), 0),
	} {
		if _, err := cp.Query(in, r); err == nil {
			t.Errorf("query %s: accepted", name)
		}
	}
}

func matchInput(tenant, filter string, limit int, now time.Time, from []byte) []byte {
	in := appendBytes([]byte{opMatch}, []byte(tenant))
	in = appendBytes(in, []byte(filter))
	in = binary.AppendUvarint(in, uint64(limit))
	in = binary.AppendVarint(in, now.UnixNano())
	return appendBytes(in, from)
}

// TestCoprocessorGCBudget: a GC input reads at most its budget and says
// where to resume; the last one of a range points at the range's end, or
// is done at the end of the span.
func TestCoprocessorGCBudget(t *testing.T) {
	end := topicKey("t", "z")
	cp := Coprocessor(StoreName, 1, coproc.Boundary{End: end})
	r := newMemReader()
	now := time.Now()
	for _, tp := range []string{"a", "b", "c", "d", "e"} {
		m := msg(tp, "v")
		if tp != "c" {
			m.Expires = now
		}
		r.retain("t", m)
	}
	r.sort()
	gcIn := func(from, to []byte) []byte {
		in := binary.AppendVarint([]byte{opGC}, 0)
		in = appendBytes(in, from)
		in = appendNilable(in, to)
		return binary.AppendUvarint(in, 2)
	}
	ctx := coproc.MutateContext{Boundary: coproc.Boundary{End: end}, Timestamp: now.UnixNano()}
	var removed []string
	from := []byte{}
	for i := 0; ; i++ {
		w := &memWriter{}
		out, err := cp.Mutate(ctx, gcIn(from, nil), r, w)
		if err != nil {
			t.Fatal(err)
		}
		d := newDecoder(out)
		n, read, next := d.Uvarint(), d.Uvarint(), d.nilable()
		if d.end() != nil || int(n) != len(w.dels) || read > 2 {
			t.Fatalf("output %x: %d removed, %d read, %d deletes", out, n, read, len(w.dels))
		}
		removed = append(removed, w.dels...)
		if i == 2 {
			// The budget ran out twice, then the range ended before to
			// (unbounded): resume at the range's end.
			if !bytes.Equal(next, end) {
				t.Fatalf("third resume %q, want the range end", next)
			}
			out, _ := cp.Mutate(ctx, gcIn(topicKey("t", "e"), topicKey("t", "f")), r, &memWriter{})
			d := newDecoder(out)
			d.Uvarint()
			d.Uvarint()
			if next := d.nilable(); next != nil || d.end() != nil {
				t.Fatalf("GC within a span ending before the range's end: next %q", next)
			}
			break
		}
		if next == nil {
			t.Fatalf("step %d: done early", i)
		}
		from = next
	}
	if len(removed) != 4 {
		t.Fatalf("removed %q", removed)
	}
}
