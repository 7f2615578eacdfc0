package basecrdt

import (
	"errors"
	"slices"
	"testing"
)

func mustJoin(t *testing.T, a CRDT, bs ...CRDT) {
	t.Helper()
	for _, b := range bs {
		if err := a.Join(b); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
}

func TestContext(t *testing.T) {
	c := NewContext()
	if d := c.Next("a"); d != (Dot{"a", 1}) {
		t.Fatalf("Next = %v", d)
	}
	c.Add(Dot{"a", 3})
	c.Add(Dot{"b", 2})
	if !c.Contains(Dot{"a", 1}) || c.Contains(Dot{"a", 2}) || !c.Contains(Dot{"a", 3}) || c.Contains(Dot{"b", 1}) {
		t.Fatalf("Contains wrong: %s", c)
	}
	if d := c.Next("a"); d != (Dot{"a", 4}) {
		t.Fatalf("Next after a gap = %v, want a:4", d)
	}
	o := NewContext()
	o.Add(Dot{"a", 1})
	o.Add(Dot{"a", 2})
	o.Add(Dot{"b", 1})
	c.Join(o)
	if got := c.String(); got != "{a:4 b:2 |}" {
		t.Fatalf("after Join = %s, want the cloud compacted into {a:4 b:2 |}", got)
	}
	var z Context // the zero value is ready
	z.Add(Dot{"x", 2})
	if z.Contains(Dot{"x", 1}) || !z.Contains(Dot{"x", 2}) || z.String() != "{ | x:2}" {
		t.Fatalf("zero context: %s", &z)
	}
	if !z.Clone().Equal(&z) || z.Equal(c) {
		t.Fatal("Clone/Equal")
	}
}

func TestAWORSetAddWins(t *testing.T) {
	a, b := NewAWORSet(), NewAWORSet()
	mustJoin(t, b, a.Add("A", "x"))
	da := a.Remove("A", "x") // A removes x while B concurrently re-adds it
	db := b.Add("B", "x")
	mustJoin(t, a, db)
	mustJoin(t, b, da)
	if !a.Contains("x") || !b.Contains("x") {
		t.Fatalf("concurrent add and remove: a=%v b=%v, want x present (add wins)", a.Elements(), b.Elements())
	}
	// A remove that has seen the add removes it.
	mustJoin(t, b, a.Remove("A", "x"))
	if b.Contains("x") || len(b.Elements()) != 0 {
		t.Fatalf("observed remove left %v", b.Elements())
	}
	mustJoin(t, a, b.Add("B", "z"), b.Add("B", "y"))
	if got := a.Elements(); !slices.Equal(got, []string{"y", "z"}) {
		t.Fatalf("Elements = %v", got)
	}
}

func TestRWORSetRemoveWins(t *testing.T) {
	a, b := NewRWORSet(), NewRWORSet()
	mustJoin(t, b, a.Add("A", "x"))
	da := a.Remove("A", "x")
	db := b.Add("B", "x")
	mustJoin(t, a, db)
	mustJoin(t, b, da)
	if a.Contains("x") || b.Contains("x") {
		t.Fatalf("concurrent add and remove: a=%v b=%v, want x absent (remove wins)", a.Elements(), b.Elements())
	}
	// An add that has seen the remove brings it back.
	mustJoin(t, b, a.Add("A", "x"))
	if !b.Contains("x") {
		t.Fatal("add after remove not applied")
	}
	// A remove of an element never seen still beats a concurrent add.
	c := NewRWORSet()
	dc := c.Remove("C", "y")
	mustJoin(t, a, a.Add("A", "y"))
	mustJoin(t, a, dc)
	if a.Contains("y") {
		t.Fatal("blind remove lost against a concurrent add")
	}
}

func TestEWFlag(t *testing.T) {
	a, b := NewEWFlag(), NewEWFlag()
	if a.Value() {
		t.Fatal("new flag enabled")
	}
	mustJoin(t, b, a.Enable("A"))
	if !b.Value() {
		t.Fatal("enable not replicated")
	}
	da, db := a.Disable("A"), b.Enable("B")
	mustJoin(t, a, db)
	mustJoin(t, b, da)
	if !a.Value() || !b.Value() {
		t.Fatalf("concurrent enable/disable: %v %v, want enabled (enable wins)", a.Value(), b.Value())
	}
	mustJoin(t, b, a.Disable("A"))
	if b.Value() {
		t.Fatal("observed disable did not disable")
	}
}

func TestDWFlag(t *testing.T) {
	a, b := NewDWFlag(), NewDWFlag()
	if a.Value() {
		t.Fatal("new flag enabled")
	}
	mustJoin(t, b, a.Enable("A"))
	if !b.Value() {
		t.Fatal("enable not replicated")
	}
	da, db := a.Disable("A"), b.Enable("B")
	mustJoin(t, a, db)
	mustJoin(t, b, da)
	if a.Value() || b.Value() {
		t.Fatalf("concurrent enable/disable: %v %v, want disabled (disable wins)", a.Value(), b.Value())
	}
	mustJoin(t, b, a.Enable("A"))
	if !b.Value() {
		t.Fatal("enable after disable did not enable")
	}
}

func TestMVReg(t *testing.T) {
	a, b := NewMVReg(), NewMVReg()
	if len(a.Values()) != 0 {
		t.Fatal("new register not empty")
	}
	da, db := a.Write("A", []byte("x")), b.Write("B", []byte("y"))
	mustJoin(t, a, db)
	mustJoin(t, b, da)
	want := [][]byte{[]byte("x"), []byte("y")}
	if got := a.Values(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("concurrent writes: %q, want both", got)
	}
	if !a.Equal(b) {
		t.Fatal("replicas differ")
	}
	v := []byte("z")
	mustJoin(t, b, a.Write("A", v))
	v[0] = 'q' // the register holds a copy
	if got := b.Values(); len(got) != 1 || string(got[0]) != "z" {
		t.Fatalf("later write: %q, want only z", got)
	}
	got := b.Values()
	got[0][0] = 'w' // Values returns copies
	if string(b.Values()[0]) != "z" {
		t.Fatal("Values aliased the register")
	}
	// Concurrent writes of one value show once.
	c, d := NewMVReg(), NewMVReg()
	mustJoin(t, c, d.Write("D", []byte("s")), c.Write("C", []byte("s")))
	if got := c.Values(); len(got) != 1 {
		t.Fatalf("equal concurrent values: %q", got)
	}
	mustJoin(t, b, a.Clear())
	if len(b.Values()) != 0 {
		t.Fatal("Clear left values")
	}
}

func TestCCounter(t *testing.T) {
	a, b, c := NewCCounter(), NewCCounter(), NewCCounter()
	var ds []CRDT
	ds = append(ds, a.Inc("A", 5), a.Inc("A", 3), b.Inc("B", 10), b.Dec("B", 4), c.Dec("C", 1))
	for _, x := range []*CCounter{a, b, c} {
		mustJoin(t, x, ds...)
		if x.Value() != 13 {
			t.Fatalf("Value = %d, want 5+3+10-4-1 = 13", x.Value())
		}
	}
	// Replaying an old delta changes nothing.
	mustJoin(t, a, ds[0])
	if a.Value() != 13 {
		t.Fatalf("replayed delta: %d", a.Value())
	}
}

func TestORMapObservedRemove(t *testing.T) {
	a := NewORMap(KindAWORSet)
	b := NewORMap(KindAWORSet)
	add := func(m *ORMap, r ReplicaID, k, e string) *ORMap {
		return m.Apply(r, k, func(v CRDT) CRDT { return v.(*AWORSet).Add(r, e) })
	}
	mustJoin(t, b, add(a, "A", "k", "x"))
	// A removes k while B concurrently adds y to it.
	da := a.Remove("k")
	db := add(b, "B", "k", "y")
	mustJoin(t, a, db)
	mustJoin(t, b, da)
	for _, m := range []*ORMap{a, b} {
		v, ok := m.Get("k")
		if !ok {
			t.Fatal("concurrent update lost to remove")
		}
		if got := v.(*AWORSet).Elements(); !slices.Equal(got, []string{"y"}) {
			t.Fatalf("after concurrent update/remove: %v, want [y] (x observed-removed)", got)
		}
	}
	if !a.Equal(b) {
		t.Fatal("replicas differ")
	}
}

func TestORMapRemoveThenReAdd(t *testing.T) {
	m := NewORMap(KindCCounter)
	inc := func(r ReplicaID, k string, n int64) *ORMap {
		return m.Apply(r, k, func(v CRDT) CRDT { return v.(*CCounter).Inc(r, n) })
	}
	other := NewORMap(KindCCounter)
	mustJoin(t, other, inc("A", "k", 7), inc("A", "j", 1))
	mustJoin(t, other, m.Remove("k"))
	if _, ok := other.Get("k"); ok {
		t.Fatal("removed key present")
	}
	mustJoin(t, other, inc("A", "k", 2))
	v, ok := other.Get("k")
	if !ok || v.(*CCounter).Value() != 2 {
		t.Fatalf("re-added counter = %v, want 2 (fresh)", v)
	}
	if got := other.Keys(); !slices.Equal(got, []string{"j", "k"}) {
		t.Fatalf("Keys = %v", got)
	}
	// A remove of an absent key is an empty delta.
	if d := m.Remove("nope"); d.Len() != 0 || !d.Equal(NewORMap(KindCCounter)) {
		t.Fatal("remove of absent key not empty")
	}
}

func TestORMapNested(t *testing.T) {
	x, err := New(KindORMap, KindORMap, KindMVReg)
	if err != nil {
		t.Fatal(err)
	}
	a := x.(*ORMap)
	b := a.Clone().(*ORMap)
	write := func(m *ORMap, r ReplicaID, k1, k2, v string) *ORMap {
		return m.Apply(r, k1, func(in CRDT) CRDT {
			return in.(*ORMap).Apply(r, k2, func(reg CRDT) CRDT { return reg.(*MVReg).Write(r, []byte(v)) })
		})
	}
	mustJoin(t, b, write(a, "A", "t", "n1", "v1"), write(a, "A", "t", "n2", "v2"))
	// Concurrently: A removes t/n1, B overwrites t/n2 and adds u/n1.
	da := a.Apply("A", "t", func(in CRDT) CRDT { return in.(*ORMap).Remove("n1") })
	db1, db2 := write(b, "B", "t", "n2", "w2"), write(b, "B", "u", "n1", "x")
	mustJoin(t, a, db1, db2)
	mustJoin(t, b, da)
	if !a.Equal(b) {
		t.Fatalf("nested replicas differ: %s / %s", observe(a), observe(b))
	}
	if got, want := observe(a), `{t:{n2:["w2"]} u:{n1:["x"]}}`; got != want {
		t.Fatalf("nested map = %s, want %s", got, want)
	}
	// Removing the outer key drops everything it observed.
	mustJoin(t, b, a.Remove("t"))
	if got := observe(b); got != `{u:{n1:["x"]}}` {
		t.Fatalf("after outer remove: %s", got)
	}
	// An inner value emptied (register cleared) removes its keys.
	mustJoin(t, b, a.Apply("A", "u", func(in CRDT) CRDT {
		return in.(*ORMap).Apply("A", "n1", func(reg CRDT) CRDT { return reg.(*MVReg).Clear() })
	}))
	if b.Len() != 0 || a.Len() != 0 {
		t.Fatalf("cleared register left keys: %s / %s", observe(a), observe(b))
	}
	// Get returns a copy.
	mustJoin(t, a, write(a, "A", "t", "n", "v"))
	g, _ := a.Get("t")
	g.(*ORMap).Remove("n")
	if observe(a) != `{t:{n:["v"]}}` {
		t.Fatal("Get aliased the map")
	}
	if vk := a.ValueKinds(); !slices.Equal(vk, []Kind{KindORMap, KindMVReg}) {
		t.Fatalf("ValueKinds = %v", vk)
	}
}

func TestORMapApplyMisuse(t *testing.T) {
	m := NewORMap(KindMVReg)
	if d := m.Apply("A", "k", func(CRDT) CRDT { return nil }); d.Len() != 0 || m.Len() != 0 {
		t.Fatal("nil delta changed something")
	}
	for name, f := range map[string]func(CRDT) CRDT{
		"wrong kind": func(CRDT) CRDT { return NewEWFlag() },
		"the value":  func(v CRDT) CRDT { v.(*MVReg).Write("A", nil); return v },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			m.Apply("A", "k", f)
		}()
	}
}

func TestNewAndKinds(t *testing.T) {
	for _, path := range [][]Kind{{0}, {8}, {KindORMap}, {KindMVReg, KindMVReg}, {KindORMap, KindORMap}, {KindORMap, 0}} {
		if _, err := New(path[0], path[1:]...); !errors.Is(err, ErrInvalidKind) {
			t.Errorf("New(%v) = %v, want ErrInvalidKind", path, err)
		}
	}
	deep := make([]Kind, maxDepth)
	for i := range deep {
		deep[i] = KindORMap
	}
	deep[maxDepth-1] = KindMVReg
	if _, err := New(deep[0], deep[1:]...); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
	if _, err := New(KindORMap, append(deep[:maxDepth-1:maxDepth-1], KindORMap, KindMVReg)...); !errors.Is(err, ErrInvalidKind) {
		t.Errorf("depth %d: %v, want ErrInvalidKind", maxDepth+1, err)
	}
	for _, m := range models {
		x := mustNew(t, m.path)
		if x.Kind() != m.path[0] {
			t.Errorf("%s: Kind = %v", m.name, x.Kind())
		}
	}
	// Join refuses other kinds, also an ORMap of other value kinds.
	pairs := [][2]CRDT{
		{NewMVReg(), NewEWFlag()},
		{NewORMap(KindMVReg), NewORMap(KindEWFlag)},
		{NewORMap(KindORMap, KindMVReg), NewORMap(KindORMap, KindEWFlag)},
		{NewAWORSet(), NewRWORSet()},
	}
	for _, p := range pairs {
		before := enc(t, p[0])
		if err := p[0].Join(p[1]); !errors.Is(err, ErrKindMismatch) {
			t.Errorf("Join(%s, %s) = %v, want ErrKindMismatch", kindName(p[0]), kindName(p[1]), err)
		}
		if string(enc(t, p[0])) != string(before) {
			t.Error("failed Join changed the receiver")
		}
		if p[0].Equal(p[1]) {
			t.Error("different kinds Equal")
		}
	}
	if err := NewMVReg().Join(nil); !errors.Is(err, ErrKindMismatch) {
		t.Errorf("Join(nil) = %v", err)
	}
}
