package retain

import (
	"bytes"
	"strings"
)

// Keys of the retain.store: one per retained message,
//
//	seg(tenant) seg(level1) ... seg(levelN)      N >= 1
//
// seg(s) is s with every 0x00 byte written 0x00 0xFF, then the terminator
// 0x00 0x01. seg is prefix-free and preserves order segment by segment, so
//
//   - a tenant's keys are contiguous: [seg(tenant), end(seg(tenant)));
//   - the keys under a topic prefix (levels 1..d fixed) are contiguous, and
//     the key of the d-level topic itself is their first one;
//   - the keys with the same level at depth d+1 are contiguous, so a walk
//     finds the next distinct level value by seeking past the current one's
//     prefix: end(p seg(v)) is p esc(v) 0x00 0x02;
//   - first levels starting with '$' are contiguous: [seg(tenant) "$",
//     seg(tenant) "%").
//
// end(p) is the smallest key greater than every key with prefix p. Topics
// never contain U+0000 (packet.ValidateTopicName); the escape is there for
// tenants, which may.
//
// The value of a key is the dist.Message binary encoding of the retained
// message, whose Topic is the key's topic.

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

// segLen returns the length of the segment b starts with, terminator
// included, or -1 when b does not start with a well-formed segment.
func segLen(b []byte) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		switch b[i+1] {
		case 1:
			return i + 2
		case 0xFF:
			i++
		default:
			return -1
		}
	}
	return -1
}

// readSeg decodes the segment b starts with and returns the rest.
func readSeg(b []byte) (seg string, rest []byte, ok bool) {
	n := segLen(b)
	if n < 0 {
		return "", nil, false
	}
	raw := b[:n-2]
	if bytes.IndexByte(raw, 0) < 0 {
		return string(raw), b[n:], true
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		out = append(out, raw[i])
		if raw[i] == 0 {
			i++ // 0x00 0xFF is an escaped 0x00
		}
	}
	return string(out), b[n:], true
}

// tenantPrefix is the prefix of every key of tenant.
func tenantPrefix(tenant string) []byte { return appendSeg(nil, tenant) }

// topicKey is the key of tenant's retained message on topic.
func topicKey(tenant, topic string) []byte {
	b := make([]byte, 0, len(tenant)+len(topic)+2*strings.Count(topic, "/")+4)
	b = appendSeg(b, tenant)
	for {
		level, rest, more := strings.Cut(topic, "/")
		b = appendSeg(b, level)
		if !more {
			return b
		}
		topic = rest
	}
}

// decodeKey returns the tenant and topic of a key made by topicKey.
func decodeKey(k []byte) (tenant, topic string, ok bool) {
	tenant, k, ok = readSeg(k)
	if !ok || len(k) == 0 {
		return "", "", false
	}
	var sb strings.Builder
	for len(k) > 0 {
		var level string
		if level, k, ok = readSeg(k); !ok {
			return "", "", false
		}
		sb.WriteString(level)
		if len(k) > 0 {
			sb.WriteByte('/')
		}
	}
	return tenant, sb.String(), true
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

// successor is the smallest key greater than k.
func successor(k []byte) []byte {
	return append(append(make([]byte, 0, len(k)+1), k...), 0)
}
