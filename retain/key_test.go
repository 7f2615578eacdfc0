package retain

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, c := range []struct{ tenant, topic string }{
		{"t", "a"}, {"t", "a/b/c"}, {"", "/"}, {"t\x00x", "a//b/"}, {"t", "$SYS/x"}, {"\x00", "\xff/\x01"},
	} {
		tenant, topic, ok := decodeKey(topicKey(c.tenant, c.topic))
		if !ok || tenant != c.tenant || topic != c.topic {
			t.Fatalf("round trip of %q %q: %q %q %v", c.tenant, c.topic, tenant, topic, ok)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, tenantPrefix("t"), append(tenantPrefix("t"), 'a', 0, 7)} {
		if _, _, ok := decodeKey(bad); ok {
			t.Fatalf("%q decoded", bad)
		}
	}
}

// TestKeyOrder: keys compare like their (tenant, levels...) tuples, level
// by level, and each tenant's and each topic prefix's keys are contiguous.
func TestKeyOrder(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	alphabet := []string{"", "a", "b", "\x00", "\x01", "$", "%", "a\x00", "\xff"}
	str := func() string {
		var sb strings.Builder
		for i := rnd.Intn(3); i > 0; i-- {
			sb.WriteString(alphabet[rnd.Intn(len(alphabet))])
		}
		return sb.String()
	}
	tuple := func() []string {
		out := []string{str()}
		for i := 1 + rnd.Intn(3); i > 0; i-- {
			out = append(out, str())
		}
		return out
	}
	cmpTuple := func(a, b []string) int {
		for i := 0; i < len(a) && i < len(b); i++ {
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
		return len(a) - len(b)
	}
	sign := func(x int) int {
		switch {
		case x < 0:
			return -1
		case x > 0:
			return 1
		}
		return 0
	}
	for i := 0; i < 20000; i++ {
		a, b := tuple(), tuple()
		ka, kb := topicKey(a[0], strings.Join(a[1:], "/")), topicKey(b[0], strings.Join(b[1:], "/"))
		if got, want := sign(bytes.Compare(ka, kb)), sign(cmpTuple(a, b)); got != want {
			t.Fatalf("%q vs %q: key order %d, tuple order %d", a, b, got, want)
		}
		// b's key is under a's topic prefix exactly when a's levels are
		// a prefix of b's.
		pa := ka
		isPrefix := len(a) <= len(b) && cmpTuple(a, b[:len(a)]) == 0
		if bytes.HasPrefix(kb, pa) != isPrefix {
			t.Fatalf("%q under %q: %v, want %v", b, a, !isPrefix, isPrefix)
		}
		if isPrefix && bytes.Compare(kb, prefixEnd(pa)) >= 0 {
			t.Fatalf("%q not below end(%q)", b, a)
		}
	}
}
