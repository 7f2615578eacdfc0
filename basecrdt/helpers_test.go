package basecrdt

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// model is one CRDT configuration the property tests drive.
type model struct {
	name string
	path []Kind
}

var models = []model{
	{"EWFlag", []Kind{KindEWFlag}},
	{"DWFlag", []Kind{KindDWFlag}},
	{"MVReg", []Kind{KindMVReg}},
	{"AWORSet", []Kind{KindAWORSet}},
	{"RWORSet", []Kind{KindRWORSet}},
	{"CCounter", []Kind{KindCCounter}},
	{"ORMap-EWFlag", []Kind{KindORMap, KindEWFlag}},
	{"ORMap-DWFlag", []Kind{KindORMap, KindDWFlag}},
	{"ORMap-MVReg", []Kind{KindORMap, KindMVReg}},
	{"ORMap-AWORSet", []Kind{KindORMap, KindAWORSet}},
	{"ORMap-RWORSet", []Kind{KindORMap, KindRWORSet}},
	{"ORMap-CCounter", []Kind{KindORMap, KindCCounter}},
	{"ORMap-ORMap-MVReg", []Kind{KindORMap, KindORMap, KindMVReg}},
	{"ORMap-ORMap-CCounter", []Kind{KindORMap, KindORMap, KindCCounter}},
	{"ORMap-ORMap-ORMap-AWORSet", []Kind{KindORMap, KindORMap, KindORMap, KindAWORSet}},
}

func mustNew(t testing.TB, path []Kind) CRDT {
	t.Helper()
	x, err := New(path[0], path[1:]...)
	if err != nil {
		t.Fatalf("New(%v): %v", path, err)
	}
	return x
}

var (
	testKeys  = []string{"k1", "k2", "k3"}
	testElems = []string{"a", "b", "c", "d"}
)

// randomOp applies one random mutation (sometimes two, their deltas
// joined) to x as replica r and returns the delta.
func randomOp(t testing.TB, rng *rand.Rand, path []Kind, r ReplicaID, x CRDT) CRDT {
	t.Helper()
	d := oneOp(t, rng, path, r, x)
	if rng.Intn(6) == 0 {
		if err := d.Join(oneOp(t, rng, path, r, x)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func oneOp(t testing.TB, rng *rand.Rand, path []Kind, r ReplicaID, x CRDT) CRDT {
	t.Helper()
	switch path[0] {
	case KindORMap:
		m := x.(*ORMap)
		key := testKeys[rng.Intn(len(testKeys))]
		if rng.Intn(4) == 0 {
			return m.Remove(key)
		}
		return m.Apply(r, key, func(v CRDT) CRDT { return randomOp(t, rng, path[1:], r, v) })
	case KindMVReg:
		if rng.Intn(5) == 0 {
			return x.(*MVReg).Clear()
		}
		return x.(*MVReg).Write(r, []byte{byte('a' + rng.Intn(4))})
	case KindAWORSet:
		e := testElems[rng.Intn(len(testElems))]
		if rng.Intn(3) == 0 {
			return x.(*AWORSet).Remove(r, e)
		}
		return x.(*AWORSet).Add(r, e)
	case KindRWORSet:
		e := testElems[rng.Intn(len(testElems))]
		if rng.Intn(3) == 0 {
			return x.(*RWORSet).Remove(r, e)
		}
		return x.(*RWORSet).Add(r, e)
	case KindEWFlag:
		if rng.Intn(2) == 0 {
			return x.(*EWFlag).Disable(r)
		}
		return x.(*EWFlag).Enable(r)
	case KindDWFlag:
		if rng.Intn(2) == 0 {
			return x.(*DWFlag).Disable(r)
		}
		return x.(*DWFlag).Enable(r)
	case KindCCounter:
		n := rng.Int63n(10)
		if rng.Intn(3) == 0 {
			return x.(*CCounter).Dec(r, n)
		}
		return x.(*CCounter).Inc(r, n)
	}
	t.Fatalf("no op for %v", path)
	return nil
}

// observe renders the observable value of x.
func observe(x CRDT) string {
	switch v := x.(type) {
	case *ORMap:
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range v.Keys() {
			if i > 0 {
				b.WriteByte(' ')
			}
			e, _ := v.Get(k)
			fmt.Fprintf(&b, "%s:%s", k, observe(e))
		}
		b.WriteByte('}')
		return b.String()
	case *MVReg:
		return fmt.Sprintf("%q", v.Values())
	case *AWORSet:
		return fmt.Sprint(v.Elements())
	case *RWORSet:
		return fmt.Sprint(v.Elements())
	case *EWFlag:
		return fmt.Sprint(v.Value())
	case *DWFlag:
		return fmt.Sprint(v.Value())
	case *CCounter:
		return fmt.Sprint(v.Value())
	}
	return fmt.Sprintf("?%T", x)
}

// dump renders x fully (observable value, context, encoding) for failure
// messages.
func dump(x CRDT) string {
	b, _ := x.MarshalBinary()
	return fmt.Sprintf("%s ctx=%s enc=%x", observe(x), x.(causal).context(), b)
}

func joined(t testing.TB, xs ...CRDT) CRDT {
	t.Helper()
	out := xs[0].Clone()
	for _, x := range xs[1:] {
		if err := out.Join(x); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
	return out
}

func enc(t testing.TB, x CRDT) []byte {
	t.Helper()
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}
