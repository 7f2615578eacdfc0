package basecrdt

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

var (
	seedFlag  = flag.Int64("crdt.seed", 0, "seed of the CRDT property tests (0: from the clock)")
	runsFlag  = flag.Int("crdt.runs", 12, "runs per CRDT model in the property tests")
	stepsFlag = flag.Int("crdt.steps", 120, "steps per property-test run")
)

func baseSeed() int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return time.Now().UnixNano()
}

// TestProperties drives three replicas of every model through random
// mutations and random exchanges of deltas and full states, checking the
// lattice laws, the delta laws and convergence.
func TestProperties(t *testing.T) {
	base := baseSeed()
	for mi, m := range models {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for run := range *runsFlag {
				seed := base + int64(mi*1000+run)
				runProperty(t, m, seed, reproduce(t, seed, base))
				if t.Failed() {
					return
				}
			}
		})
	}
}

// fatalf reports a property failure with the seed that reproduces it.
func fatalf(t *testing.T, repro string, format string, args ...any) {
	t.Helper()
	t.Fatalf("%s: %s", repro, fmt.Sprintf(format, args...))
}

// reproduce names a run's seed and how to rerun it.
func reproduce(t *testing.T, seed, base int64) string {
	return fmt.Sprintf("seed %d (rerun: go test ./basecrdt -run '^%s$' -crdt.seed=%d)", seed, t.Name(), base)
}

type replica struct {
	id    ReplicaID
	state CRDT
	out   []CRDT // deltas this replica produced
	// mark is a copy of the state at some point and since are the CRDTs
	// (own deltas, received deltas and states) joined into the state after
	// it: mark joined with since must equal the state.
	mark  CRDT
	since []CRDT
}

func runProperty(t *testing.T, m model, seed int64, repro string) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	rs := make([]*replica, 3)
	for i := range rs {
		s := mustNew(t, m.path)
		rs[i] = &replica{id: ReplicaID(string(rune('A' + i))), state: s, mark: s.Clone()}
	}
	var pool []CRDT // deltas and state copies to draw law checks from
	record := func(r *replica, x CRDT) {
		r.since = append(r.since, x)
		pool = append(pool, x)
	}
	join := func(r *replica, x CRDT) {
		before := enc(t, x)
		if err := r.state.Join(x); err != nil {
			fatalf(t, repro, "Join: %v", err)
		}
		if !bytes.Equal(before, enc(t, x)) {
			fatalf(t, repro, "Join changed its argument")
		}
		record(r, x)
	}

	for step := range *stepsFlag {
		r := rs[rng.Intn(3)]
		o := rs[rng.Intn(3)]
		switch k := rng.Intn(12); {
		case k < 5: // local mutation
			before := r.state.Clone()
			d := randomOp(t, rng, m.path, r.id, r.state)
			if d.Kind() != m.path[0] {
				fatalf(t, repro, "delta kind %v", d.Kind())
			}
			// delta-mutator law: X ⊔ m^δ(X) = m(X)
			if got := joined(t, before, d); !got.Equal(r.state) {
				fatalf(t, repro, "step %d: state ⊔ delta != mutated state\nbefore %s\ndelta  %s\ngot    %s\nwant   %s",
					step, dump(before), dump(d), dump(got), dump(r.state))
			}
			r.out = append(r.out, d)
			record(r, d.Clone())
		case k < 8: // a random subset of another replica's deltas, in random order, maybe twice
			if len(o.out) == 0 {
				continue
			}
			for range rng.Intn(len(o.out)) + 1 {
				join(r, o.out[rng.Intn(len(o.out))])
			}
		case k < 10: // a full state
			join(r, o.state.Clone())
		default: // a new mark
			r.mark, r.since = r.state.Clone(), nil
		}
		pool = append(pool, r.state.Clone())
		for range 2 {
			a, b, c := pool[rng.Intn(len(pool))], pool[rng.Intn(len(pool))], pool[rng.Intn(len(pool))]
			checkLaws(t, repro, a, b, c)
		}
	}

	// Joining everything a replica received since its mark into the mark
	// gives its state: deltas and states are interchangeable.
	for _, r := range rs {
		if got := joined(t, append([]CRDT{r.mark}, r.since...)...); !got.Equal(r.state) {
			fatalf(t, repro, "replica %s: mark ⊔ joins since != state\ngot  %s\nwant %s", r.id, dump(got), dump(r.state))
		}
	}
	// Exchange everything: all replicas converge.
	for _, r := range rs {
		for _, o := range rs {
			if r != o {
				join(r, o.state.Clone())
			}
		}
	}
	join(rs[0], rs[2].state.Clone())
	join(rs[0], rs[1].state.Clone())
	for _, r := range rs[1:] {
		if !r.state.Equal(rs[0].state) {
			fatalf(t, repro, "replicas did not converge\n%s: %s\n%s: %s", rs[0].id, dump(rs[0].state), r.id, dump(r.state))
		}
		if observe(r.state) != observe(rs[0].state) {
			fatalf(t, repro, "converged replicas observe %s and %s", observe(rs[0].state), observe(r.state))
		}
		if !bytes.Equal(enc(t, r.state), enc(t, rs[0].state)) {
			fatalf(t, repro, "equal states encode differently")
		}
	}
	// Every state is the join of deltas: all deltas of all replicas, in a
	// random order, into an empty state give the converged state.
	var all []CRDT
	for _, r := range rs {
		all = append(all, r.out...)
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	if got := joined(t, append([]CRDT{mustNew(t, m.path)}, all...)...); !got.Equal(rs[0].state) {
		fatalf(t, repro, "empty ⊔ all deltas != converged state\ngot  %s\nwant %s", dump(got), dump(rs[0].state))
	}
	checkRoundTrip(t, repro, rs[0].state)
}

// checkLaws checks the join-semilattice laws on a, b, c.
func checkLaws(t *testing.T, repro string, a, b, c CRDT) {
	t.Helper()
	ab, ba := joined(t, a, b), joined(t, b, a)
	if !ab.Equal(ba) {
		fatalf(t, repro, "not commutative\na    %s\nb    %s\na⊔b  %s\nb⊔a  %s", dump(a), dump(b), dump(ab), dump(ba))
	}
	if !bytes.Equal(enc(t, ab), enc(t, ba)) {
		fatalf(t, repro, "a⊔b and b⊔a are Equal but encode differently")
	}
	l, r := joined(t, ab, c), joined(t, a, joined(t, b, c))
	if !l.Equal(r) {
		fatalf(t, repro, "not associative\na %s\nb %s\nc %s\n(a⊔b)⊔c %s\na⊔(b⊔c) %s", dump(a), dump(b), dump(c), dump(l), dump(r))
	}
	if aa := joined(t, a, a); !aa.Equal(a) {
		fatalf(t, repro, "not idempotent\na   %s\na⊔a %s", dump(a), dump(aa))
	}
	if aab := joined(t, ab, a); !aab.Equal(ab) {
		fatalf(t, repro, "a⊔b⊔a != a⊔b\na %s\nb %s", dump(a), dump(b))
	}
	checkRoundTrip(t, repro, ab)
}

func checkRoundTrip(t *testing.T, repro string, x CRDT) {
	t.Helper()
	b := enc(t, x)
	y, err := Unmarshal(b)
	if err != nil {
		fatalf(t, repro, "Unmarshal(MarshalBinary(x)): %v\nx %s", err, dump(x))
	}
	if !y.Equal(x) {
		fatalf(t, repro, "round trip changed the value\nx %s\ny %s", dump(x), dump(y))
	}
	if observe(y) != observe(x) {
		fatalf(t, repro, "round trip changed the observable value: %s != %s", observe(y), observe(x))
	}
}

// TestDeltasIntoOldCopy: the deltas a replica produced since an old copy,
// joined into that copy (or into any state holding it), equal its full
// state joined there.
func TestDeltasIntoOldCopy(t *testing.T) {
	base := baseSeed()
	for mi, m := range models {
		t.Run(m.name, func(t *testing.T) {
			for run := range 20 {
				seed := base + int64(mi*1000+run)
				rng := rand.New(rand.NewSource(seed))
				repro := reproduce(t, seed, base)
				a, b := mustNew(t, m.path), mustNew(t, m.path)
				for range rng.Intn(10) {
					randomOp(t, rng, m.path, "A", a)
					randomOp(t, rng, m.path, "B", b)
				}
				old := a.Clone()
				if err := b.Join(old); err != nil {
					t.Fatal(err)
				}
				for range rng.Intn(5) {
					randomOp(t, rng, m.path, "B", b)
				}
				var ds []CRDT
				for range rng.Intn(10) + 1 {
					ds = append(ds, randomOp(t, rng, m.path, "A", a))
				}
				if got := joined(t, append([]CRDT{old}, ds...)...); !got.Equal(a) {
					fatalf(t, repro, "old ⊔ deltas != state\ngot  %s\nwant %s", dump(got), dump(a))
				}
				if got, want := joined(t, append([]CRDT{b}, ds...)...), joined(t, b, a); !got.Equal(want) {
					fatalf(t, repro, "b ⊔ deltas != b ⊔ state\ngot  %s\nwant %s", dump(got), dump(want))
				}
			}
		})
	}
}
