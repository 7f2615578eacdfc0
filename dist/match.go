package dist

import (
	"strings"
)

// Scanner is the ordered view of route keys that matching walks: the
// dist.worker range's keys (through basekv's coproc.Reader), or a sorted
// slice in tests.
type Scanner interface {
	// Scan calls fn for every key that starts with prefix, in order, until
	// fn returns false. The key is valid during fn only.
	Scan(prefix []byte, fn func(key []byte) bool) error
}

// Match returns the routes of tenant whose filters match topic, by one
// ordered walk over the keys that seeks rather than scans: at each level of
// the topic it looks only where a filter with '#', '+' or that exact level
// could be, and skips a branch as soon as a seek shows no key under it.
// Topics starting with '$' never match a filter whose first level is a
// wildcard (MQTT 5 §4.7.2).
func Match(s Scanner, tenant, topic string) ([]Route, error) {
	levels := strings.Split(topic, "/")
	m := matcher{s: s, levels: levels, dollar: strings.HasPrefix(topic, "$")}
	m.walk(appendSeg(nil, tenant), 0)
	return m.out, m.err
}

type matcher struct {
	s      Scanner
	levels []string
	dollar bool
	out    []Route
	err    error
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
	found := false
	if err := m.s.Scan(prefix, func([]byte) bool { found = true; return false }); err != nil && m.err == nil {
		m.err = err
	}
	return found
}

// collect decodes every route under prefix (one filter's routes).
func (m *matcher) collect(prefix []byte) {
	err := m.s.Scan(prefix, func(k []byte) bool {
		if r, err := DecodeRouteKey(k); err == nil {
			m.out = append(m.out, r)
		}
		return true
	})
	if err != nil && m.err == nil {
		m.err = err
	}
}

// prefixEnd is the smallest key greater than every key with prefix p, or
// nil when there is none.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
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
