package dist

import (
	"bytes"
	"strings"
)

// Seeker is the ordered view of route keys that matching walks: a pebble
// iterator in the dist.worker store, a sorted slice in tests.
type Seeker interface {
	// SeekGE positions at the first key >= key and reports whether there
	// is one.
	SeekGE(key []byte) bool
	// Next moves to the next key and reports whether there is one.
	Next() bool
	// Key is the current key, valid until the next move.
	Key() []byte
}

// Match returns the routes of tenant whose filters match topic, by one
// ordered walk over the keys that seeks rather than scans: at each level of
// the topic it looks only where a filter with '#', '+' or that exact level
// could be, and skips a branch as soon as a seek shows no key under it.
// Topics starting with '$' never match a filter whose first level is a
// wildcard (MQTT 5 §4.7.2).
func Match(it Seeker, tenant, topic string) []Route {
	levels := strings.Split(topic, "/")
	m := matcher{it: it, levels: levels, dollar: strings.HasPrefix(topic, "$")}
	m.walk(appendSeg(nil, tenant), 0)
	return m.out
}

type matcher struct {
	it     Seeker
	levels []string
	dollar bool
	out    []Route
}

var (
	segHash = appendSeg(nil, "#")
	segPlus = appendSeg(nil, "+")
)

// walk visits the filters under prefix (which encodes the tenant and the
// first d filter levels).
func (m *matcher) walk(prefix []byte, d int) {
	if !m.any(prefix) {
		return
	}
	wild := !(d == 0 && m.dollar)
	if wild {
		// '#' matches the rest, including nothing ("a/#" matches "a").
		m.collect(concat(prefix, segHash, filterEnd))
	}
	if d == len(m.levels) {
		m.collect(concat(prefix, filterEnd))
		return
	}
	m.walk(concat(prefix, appendSeg(nil, m.levels[d])), d+1)
	if wild && m.levels[d] != "+" {
		m.walk(concat(prefix, segPlus), d+1)
	}
}

// any reports whether some key starts with prefix.
func (m *matcher) any(prefix []byte) bool {
	return m.it.SeekGE(prefix) && bytes.HasPrefix(m.it.Key(), prefix)
}

// collect decodes every route under prefix (one filter's routes).
func (m *matcher) collect(prefix []byte) {
	for ok := m.it.SeekGE(prefix); ok && bytes.HasPrefix(m.it.Key(), prefix); ok = m.it.Next() {
		if r, err := DecodeRouteKey(m.it.Key()); err == nil {
			m.out = append(m.out, r)
		}
	}
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
