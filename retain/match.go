package retain

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/basekv/coproc"
	"github.com/bifromq-go/bifromq/dist"
)

// The match walk. Given a tenant and a topic filter, it visits only the
// parts of the key space where a matching topic can be, level by level:
//
//	filter  s1/+/m3
//	keys    T s0 ...                  never read
//	        T s1 d0 m0   ┐ '+' at depth 2: read the first key under T s1
//	        T s1 d0 m3   │ and take its level, d0; seek to the candidate
//	        T s1 d0 m9   │ T s1 d0 m3 (the rest of the filter is exact);
//	        T s1 d1 m3   │ then seek to end(T s1 d0), which lands on the
//	        ...          ┘ next distinct level, d1 — and so on
//	        T s2 ...                  never read
//
//   - an exact level appends seg(level) to the prefix: no read at all
//     until the filter ends (a point read of the topic's key) or a
//     wildcard needs one;
//   - '+' reads one key per distinct level value under the prefix, walks
//     the rest of the filter under that value, and seeks past the value's
//     subtree. When '+' is the last level, the key read is the candidate
//     itself. When the rest is exact levels only, the walk seeks straight
//     to the candidate and reads one key past it: when that key is outside
//     the value's subtree (as when the candidate was its last key, or
//     there are no keys at or after the candidate in it), it names the next
//     value, so one seek per value;
//   - '#' iterates the subtree, its parent topic first ("a/#" matches
//     "a");
//   - at the first level, '+' and '#' skip the '$' topics
//     (MQTT-4.7.2-1) by seeking past [T "$", T "%").
//
// So the keys read are those matching (plus expired ones) and about one or
// two per distinct level value at each '+' level reached, never the
// tenant's other keys: a filter that matches nothing under a missing
// exact level reads none. The walk is in key order and stops as soon as
// limit unexpired messages were found.

// walker is one match walk over a Reader.
type walker struct {
	r      coproc.Reader
	levels []string
	from   []byte // keys below from are skipped; nil: none
	limit  int
	now    time.Time
	emit   func(key, value []byte) // valid during the call only

	found   int
	visited int // keys read
	err     error
}

// matchWalk calls emit, in key order, for the first limit unexpired
// retained messages of tenant (at or after from) whose topics match
// filter, a valid topic filter without a share prefix. It returns the
// number of keys it read.
func matchWalk(r coproc.Reader, tenant, filter string, from []byte, limit int, now time.Time,
	emit func(key, value []byte)) (visited int, err error) {
	w := &walker{r: r, levels: strings.Split(filter, "/"), from: from, limit: limit, now: now, emit: emit}
	if limit > 0 {
		w.walk(tenantPrefix(tenant), 0)
	}
	return w.visited, w.err
}

func (w *walker) done() bool { return w.err != nil || w.found >= w.limit }

func (w *walker) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// walk visits the topics under p, which encodes the tenant and the first
// d topic levels, against the filter's levels from d on.
func (w *walker) walk(p []byte, d int) {
	if w.done() {
		return
	}
	if d == len(w.levels) {
		w.exact(p)
		return
	}
	switch l := w.levels[d]; l {
	case "#":
		if d == 0 {
			dollar := append(clone(p), '$')
			w.scan(p, dollar)
			w.scan(prefixEnd(dollar), prefixEnd(p))
		} else {
			w.scan(p, prefixEnd(p))
		}
	case "+":
		w.plus(p, d)
	default:
		w.walk(appendSeg(clone(p), l), d+1)
	}
}

// exact considers the topic whose key is p: a point read (through
// Iterate, which keeps to the range's boundary, where Get would fail).
func (w *walker) exact(p []byte) {
	w.scan(p, successor(p))
}

// scan considers every key in [lower, upper).
func (w *walker) scan(lower, upper []byte) {
	w.iterate(lower, upper, func(k, v []byte) bool {
		w.consider(k, v)
		return !w.done()
	})
}

// plus walks, for each distinct level value v at depth d under p, the
// topics under p seg(v) against the rest of the filter.
//
// When the rest is exact levels E only (as in "+/status"), one seek per
// value does: it goes to the candidate p seg(v) seg(E), and the first key
// past v's subtree that it lands on names the next value.
func (w *walker) plus(p []byte, d int) {
	upper := prefixEnd(p)
	last := d+1 == len(w.levels)
	suffix := exactSuffix(w.levels[d+1:])
	lower := p
	var landed []byte // a key under p past the last child, from the seek to a candidate
	for !w.done() {
		if landed == nil {
			w.iterate(lower, upper, func(k, v []byte) bool {
				landed = clone(k)
				if last && w.isChild(p, d, k) {
					// The first key under a child is the child's own
					// topic when it exists: the only candidate of a
					// last '+'.
					w.consider(k, v)
				}
				return false
			})
			if landed == nil {
				return
			}
		}
		k := landed
		landed = nil
		rest := k[len(p):]
		switch {
		case len(rest) == 0: // the topic p itself: '+' needs one more level
			lower = successor(p)
			continue
		case d == 0 && rest[0] == '$':
			lower = prefixEnd(append(clone(p), '$'))
			continue
		}
		n := segLen(rest)
		if n < 0 {
			w.fail(fmt.Errorf("%w: %q", errBadKey, k))
			return
		}
		child := k[:len(p)+n]
		lower = prefixEnd(child)
		switch {
		case last: // considered when read
		case suffix != nil:
			target := append(clone(child), suffix...)
			seen := false
			w.iterate(target, upper, func(k, v []byte) bool {
				seen = true
				switch {
				case bytes.Equal(k, target):
					w.consider(k, v)
					return !w.done() // and look at the next key
				case bytes.HasPrefix(k, child):
					return false // still under child: seek past it
				}
				landed = clone(k)
				return false
			})
			if !seen {
				return // nothing at or after target under p
			}
		default:
			w.walk(child, d+1)
		}
	}
}

// isChild reports whether k, a key under p, is the key of a topic one
// level below p that a '+' at depth d matches.
func (w *walker) isChild(p []byte, d int, k []byte) bool {
	rest := k[len(p):]
	return len(rest) > 0 && !(d == 0 && rest[0] == '$') && segLen(rest) == len(rest)
}

// exactSuffix encodes levels when none is a wildcard, else nil (also for
// no levels).
func exactSuffix(levels []string) []byte {
	var b []byte
	for _, l := range levels {
		if l == "+" || l == "#" {
			return nil
		}
		b = appendSeg(b, l)
	}
	return b
}

// iterate reads [lower, upper) ∩ [from, ...) through fn, counting keys.
func (w *walker) iterate(lower, upper []byte, fn func(k, v []byte) bool) {
	if w.done() {
		return
	}
	if w.from != nil && bytes.Compare(lower, w.from) < 0 {
		lower = w.from
	}
	if upper != nil && bytes.Compare(lower, upper) >= 0 {
		return
	}
	err := w.r.Iterate(lower, upper, func(k, v []byte) bool {
		w.visited++
		return fn(k, v)
	})
	if err != nil {
		w.fail(err)
	}
}

// consider emits the message of key k unless it expired.
func (w *walker) consider(k, v []byte) {
	exp, err := expiry(v)
	if err != nil {
		w.fail(fmt.Errorf("retain: value of key %q: %w", k, err))
		return
	}
	if !exp.IsZero() && !w.now.Before(exp) {
		return
	}
	w.emit(k, v)
	w.found++
}

// expiry decodes when a stored message expires (zero: never).
func expiry(v []byte) (time.Time, error) {
	var m dist.Message
	if err := m.UnmarshalBinary(v); err != nil {
		return time.Time{}, err
	}
	return m.Expires, nil
}

func clone(b []byte) []byte { return append(make([]byte, 0, len(b)+16), b...) }
