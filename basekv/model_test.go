package basekv

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"
)

var modelSeed = flag.Int64("model.seed", 0, "seed of TestModel (0: from the clock)")

// TestModel runs random operations against a 3-node store and an in-memory
// map and requires the same answers: puts, deletes, compare-and-sets, gets
// and scans, with splits, merges and leader kills (a node closed and
// reopened) in between. The seed is printed; rerun a failure with
// -model.seed.
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -model.seed=%d)", seed, seed)
	rnd := rand.New(rand.NewSource(seed))
	ops := 400
	if testing.Short() {
		ops = 150
	}
	c := newCluster(t, 3, ReplicaOptions{Voters: 3})
	c.waitVoters(c.kvs[0], 3)
	model := map[string]string{}
	randKey := func() []byte { return []byte(fmt.Sprintf("key%03d", rnd.Intn(300))) }
	live := func() *KV {
		for {
			if kv := c.kvs[rnd.Intn(3)]; kv != nil {
				return kv
			}
		}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}
	down := -1
	for op := 0; op < ops; op++ {
		cx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		kv := live()
		switch p := rnd.Intn(100); {
		case p < 35:
			k, v := randKey(), fmt.Sprint(rnd.Intn(1000))
			if err := kv.Put(cx, k, []byte(v)); err != nil {
				fail("op %d put %s: %v", op, k, err)
			}
			model[string(k)] = v
		case p < 45:
			k := randKey()
			if err := kv.Delete(cx, k); err != nil {
				fail("op %d delete %s: %v", op, k, err)
			}
			delete(model, string(k))
		case p < 55:
			k := randKey()
			cur, exists := model[string(k)]
			var old []byte
			if exists && rnd.Intn(4) > 0 {
				old = []byte(cur) // usually the right old value
			} else if rnd.Intn(2) == 0 {
				old = []byte("wrong")
			}
			nv := []byte(fmt.Sprint(rnd.Intn(1000)))
			swapped, got, err := kv.CAS(cx, k, old, nv)
			if err != nil {
				fail("op %d CAS %s: %v", op, k, err)
			}
			want := (old == nil && !exists) || (old != nil && exists && string(old) == cur)
			if swapped != want {
				fail("op %d CAS %s old %q (model %q, %v): swapped %v", op, k, old, cur, exists, swapped)
			}
			if swapped {
				model[string(k)] = string(nv)
			} else if string(got) != cur || (got == nil) == exists {
				fail("op %d CAS %s: current %q, model %q", op, k, got, cur)
			}
		case p < 75:
			k := randKey()
			v, ok, err := kv.Get(cx, k)
			mv, mok := model[string(k)]
			if err != nil || ok != mok || string(v) != mv {
				fail("op %d get %s: %q %v %v, model %q %v", op, k, v, ok, err, mv, mok)
			}
		case p < 85:
			lo, hi := randKey(), randKey()
			if bytes.Compare(lo, hi) > 0 {
				lo, hi = hi, lo
			}
			pairs, err := kv.Scan(cx, lo, hi, 0)
			if err != nil {
				fail("op %d scan: %v", op, err)
			}
			var want []string
			for k := range model {
				if k >= string(lo) && k < string(hi) {
					want = append(want, k)
				}
			}
			sort.Strings(want)
			if len(pairs) != len(want) {
				fail("op %d scan [%s,%s): %d pairs, model %d", op, lo, hi, len(pairs), len(want))
			}
			for i, p := range pairs {
				if string(p.Key) != want[i] || string(p.Value) != model[want[i]] {
					fail("op %d scan: pair %d is %s=%s, model %s=%s", op, i, p.Key, p.Value, want[i], model[want[i]])
				}
			}
		case p < 91:
			if _, err := kv.Store().Split(cx, randKey()); err != nil {
				t.Logf("op %d split: %v", op, err) // a key at a range start has no split point
			}
		case p < 96:
			if len(kv.Store().Ranges()) > 1 {
				if _, err := kv.Store().Merge(cx, randKey()); err != nil {
					t.Logf("op %d merge: %v", op, err) // the last range has no right neighbour
				}
			}
		default:
			if down >= 0 {
				c.start(down)
				down = -1
				c.waitVoters(live(), 3)
				continue
			}
			down = c.leaderIndex(live())
			c.stop(down)
		}
	}
	if down >= 0 {
		c.start(down)
	}
	// Finally every node's own replicas agree with the model.
	c.waitVoters(c.kvs[0], 3)
	cx := ctx(t)
	for i, kv := range c.kvs {
		pairs, err := kv.Scan(cx, nil, nil, 0)
		if err != nil || len(pairs) != len(model) {
			fail("final scan through node %d: %d pairs (%v), model %d", i, len(pairs), err, len(model))
		}
	}
}
