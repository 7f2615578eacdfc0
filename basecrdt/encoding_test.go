package basecrdt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand"
	"testing"
)

// sampleStates returns a few random states of every model.
func sampleStates(t testing.TB, seed int64) []CRDT {
	rng := rand.New(rand.NewSource(seed))
	var out []CRDT
	for _, m := range models {
		out = append(out, mustNew(t, m.path))
		for range 3 {
			a, b := mustNew(t, m.path), mustNew(t, m.path)
			for range rng.Intn(12) + 1 {
				randomOp(t, rng, m.path, "A", a)
				if rng.Intn(2) == 0 {
					randomOp(t, rng, m.path, "replica-B", b)
				}
				if rng.Intn(4) == 0 {
					if err := a.Join(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			out = append(out, a, randomOp(t, rng, m.path, "A", a))
		}
	}
	return out
}

func TestEncodingRoundTrip(t *testing.T) {
	for _, x := range sampleStates(t, 1) {
		b := enc(t, x)
		y, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(%x): %v", b, err)
		}
		if !y.Equal(x) || observe(y) != observe(x) {
			t.Fatalf("round trip: %s != %s", dump(y), dump(x))
		}
		if b2 := enc(t, y); !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs: %x != %x", b2, b)
		}
		// Every proper prefix is truncated, one more byte is trailing.
		for i := range len(b) {
			if _, err := Unmarshal(b[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("prefix %d of %x: %v, want ErrCorrupt", i, b, err)
			}
		}
		if _, err := Unmarshal(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("trailing byte accepted: %v", err)
		}
	}
}

// TestEncodingDeterministic: equal states reached along different paths
// (different join orders, hence different map histories) encode equally.
func TestEncodingDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, m := range models {
		var ds []CRDT
		a, b := mustNew(t, m.path), mustNew(t, m.path)
		for range 30 {
			ds = append(ds, randomOp(t, rng, m.path, "A", a), randomOp(t, rng, m.path, "B", b))
		}
		x := joined(t, append([]CRDT{mustNew(t, m.path)}, ds...)...)
		rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		y := joined(t, append([]CRDT{mustNew(t, m.path)}, ds...)...)
		z := joined(t, b, a)
		if !x.Equal(y) || !x.Equal(z) {
			t.Fatalf("%s: states differ", m.name)
		}
		if !bytes.Equal(enc(t, x), enc(t, y)) || !bytes.Equal(enc(t, x), enc(t, z)) {
			t.Fatalf("%s: equal states encode differently", m.name)
		}
	}
}

// TestEncodingGolden pins the format.
func TestEncodingGolden(t *testing.T) {
	f := NewEWFlag()
	f.Enable("a")
	m := NewORMap(KindMVReg)
	m.Apply("b", "k", func(v CRDT) CRDT { return v.(*MVReg).Write("b", []byte("v")) })
	c := NewCCounter()
	c.Dec("a", 2)
	for _, tc := range []struct {
		x    CRDT
		want string
	}{
		// format, kind, 1 replica "a", vv {0:1}, empty cloud, 1 dot (0,1)
		{f, "01 05 01 01 61 01 00 01 00 01 00 01"},
		// format, ORMap of MVReg, replica "b", vv {0:1}, cloud {}, 1 key "k": 1 dot (0,1) "v"
		{m, "01 01 02 01 01 62 01 00 01 00 01 01 6b 01 00 01 01 76"},
		// CCounter: dot (0,1) holds varint -2
		{c, "01 07 01 01 61 01 00 01 00 01 00 01 03"},
		{NewRWORSet(), "01 04 00 00 00 00"},
	} {
		got := enc(t, tc.x)
		want, _ := hex.DecodeString(string(bytes.ReplaceAll([]byte(tc.want), []byte(" "), nil)))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding % x, want %s", kindName(tc.x), got, tc.want)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"empty":                 {},
		"bad format":            h("02 05 00 00 00 00"),
		"kind 0":                h("01 00 00 00 00 00"),
		"kind 8":                h("01 08 00 00 00 00"),
		"ORMap of kind 0":       h("01 01 00 00 00 00 00"),
		"ORMaps too deep":       bytes.Repeat([]byte{1}, 40),
		"huge count":            h("01 05 ff ff ff ff 0f"),
		"huge string":           h("01 05 01 ff ff 03 61"),
		"replicas unsorted":     h("01 05 02 01 62 01 61 00 00 00"),
		"replicas duplicate":    h("01 05 02 01 61 01 61 00 00 00"),
		"replica index":         h("01 05 01 01 61 01 01 01 00 00"),
		"vv zero":               h("01 05 01 01 61 01 00 00 00 00"),
		"vv beyond maxCounter":  h("01 05 01 01 61 01 00 81 80 80 80 80 80 80 80 40 00 00"),
		"dot beyond maxCounter": h("01 05 01 01 61 00 01 00 81 80 80 80 80 80 80 80 40 00"),
		"dot counter 0":         h("01 05 01 01 61 00 01 00 00 00"),
		"store dot not in ctx":  h("01 05 01 01 61 00 00 01 00 01"),
		"store dots unsorted":   h("01 05 01 01 61 01 00 02 00 02 00 02 00 01"),
		"dot in two elements":   h("01 04 01 01 30 01 00 30 00 02 01 30 01 00 01 01 01 62 01 00 01 00"),
		"bad bool":              h("01 06 01 01 61 01 00 01 00 01 00 01 02"),
		"empty element":         h("01 03 00 00 00 01 01 78 00"),
		"elements unsorted":     h("01 03 01 01 61 01 00 02 00 02 01 79 01 00 01 01 78 01 00 02"),
		"empty map value":       h("01 01 02 00 00 00 01 01 6b 00"),
		"bad uvarint":           h("01 05 ff ff ff ff ff ff ff ff ff ff ff"),
		"trailing":              h("01 04 00 00 00 00 00"),
	} {
		x, err := Unmarshal(b)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Unmarshal(% x) = %v, %v; want ErrCorrupt", name, b, x, err)
		}
	}
	// A non-compact cloud is accepted and compacted.
	x, err := Unmarshal(h("01 05 01 01 61 00 02 00 01 00 02 01 00 02"))
	if err != nil {
		t.Fatal(err)
	}
	if got := x.(*EWFlag).ctx.String(); got != "{a:2 |}" || !x.(*EWFlag).Value() {
		t.Fatalf("non-compact cloud decoded as %s", got)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, x := range sampleStates(f, 3) {
		f.Add(enc(f, x))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		b2 := enc(t, x)
		y, err := Unmarshal(b2)
		if err != nil {
			t.Fatalf("re-encoding of an accepted input rejected: %v", err)
		}
		if !y.Equal(x) || !bytes.Equal(enc(t, y), b2) {
			t.Fatalf("round trip of an accepted input not stable")
		}
		// An accepted state behaves: joins are idempotent and a mutation
		// applies.
		if xx := joined(t, x, y); !xx.Equal(x) {
			t.Fatalf("x ⊔ x != x")
		}
		z := x.Clone()
		path := z.(causal).kinds()
		d := randomOp(t, rand.New(rand.NewSource(int64(len(b)))), path, "fuzz", z)
		if got := joined(t, x, d); !got.Equal(z) {
			t.Fatalf("x ⊔ delta != mutated x")
		}
	})
}
