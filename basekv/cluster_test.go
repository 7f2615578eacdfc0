package basekv

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bifromq-go/bifromq/basecluster"
)

// cluster is n nodes in one process sharing a directory. With gossip,
// each node also runs a basecluster host and resolves peers and routes
// ranges from its landscape.
type cluster struct {
	t      *testing.T
	dir    *Directory
	opts   []Options
	nodes  []*Node
	kvs    []*KV
	hosts  []*basecluster.Host
	ro     ReplicaOptions
	gossip bool
}

func newCluster(t *testing.T, n int, ro ReplicaOptions) *cluster {
	return newClusterMode(t, n, ro, false)
}

func newClusterMode(t *testing.T, n int, ro ReplicaOptions, gossip bool) *cluster {
	c := &cluster{t: t, dir: NewDirectory(), ro: ro, gossip: gossip}
	for i := 0; i < n; i++ {
		c.opts = append(c.opts, testOptions(t, t.TempDir(), c.dir))
		c.nodes = append(c.nodes, nil)
		c.kvs = append(c.kvs, nil)
		c.hosts = append(c.hosts, nil)
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			if c.nodes[i] != nil {
				c.stop(i)
			}
		}
	})
	return c
}

// clusterModes runs f with the in-process directory and with gossip.
func clusterModes(t *testing.T, f func(t *testing.T, gossip bool)) {
	for _, gossip := range []bool{false, true} {
		name := "directory"
		if gossip {
			name = "gossip"
		}
		t.Run(name, func(t *testing.T) { f(t, gossip) })
	}
}

func (c *cluster) startHost(i int) {
	c.t.Helper()
	var seeds []string
	for j, h := range c.hosts {
		if j != i && h != nil {
			seeds = append(seeds, h.Addr())
		}
	}
	h, err := basecluster.Start(basecluster.Options{DataDir: c.opts[i].DataDir, Env: "basekv-test",
		BindAddr: "127.0.0.1:0", Seeds: seeds, Profile: basecluster.ProfileTest, Logger: c.opts[i].Logger})
	if err != nil {
		c.t.Fatal(err)
	}
	c.hosts[i] = h
	c.opts[i].Landscape = h
}

func (c *cluster) start(i int) {
	c.t.Helper()
	if c.gossip {
		c.startHost(i)
	}
	n, err := Open(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	kv, err := n.KV("kv", c.ro)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i], c.kvs[i] = n, kv
}

func (c *cluster) stop(i int) {
	c.nodes[i].Close()
	c.nodes[i], c.kvs[i] = nil, nil
	if c.hosts[i] != nil {
		c.hosts[i].Kill()
		c.hosts[i] = nil
	}
}

// waitVoters waits until every range has want voters.
func (c *cluster) waitVoters(kv *KV, want int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, r := range kv.Store().routes().routes {
			voters, _, err := kv.Store().Members(ctx(c.t), r.desc.ID)
			if err != nil || len(voters) != want || len(r.holders) < want {
				ok = false
			}
		}
		if ok && len(kv.Store().Ranges()) > 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, r := range kv.Store().routes().routes {
				voters, learners, err := kv.Store().Members(ctx(c.t), r.desc.ID)
				c.t.Logf("%s: %d holders, voters %v learners %v (%v)", &r.desc, len(r.holders), voters, learners, err)
			}
			c.t.Fatalf("ranges did not reach %d voters", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) leaderIndex(kv *KV) int {
	c.t.Helper()
	d := kv.Store().Ranges()[0]
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			if rsm := c.kvs[i].Store().localRange(d.ID); rsm != nil && c.kvs[i].Store().isLeader(d.ID, rsm.replica) {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader")
	return -1
}

func TestThreeNodesLeaderKill(t *testing.T) { clusterModes(t, testThreeNodesLeaderKill) }

func testThreeNodesLeaderKill(t *testing.T, gossip bool) {
	c := newClusterMode(t, 3, ReplicaOptions{Voters: 3}, gossip)
	c.waitVoters(c.kvs[0], 3)
	cx := ctx(t)
	for i := 0; i < 50; i++ {
		if err := c.kvs[i%3].Put(cx, key(i), []byte("v1")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	leader := c.leaderIndex(c.kvs[0])
	c.stop(leader)
	other := (leader + 1) % 3
	for i := 50; i < 100; i++ {
		if err := c.kvs[other].Put(cx, key(i), []byte("v2")); err != nil {
			t.Fatalf("put %d after killing the leader: %v", i, err)
		}
	}
	c.start(leader)
	// The restarted node catches up: its own replica has the last write.
	waitLocal(t, c.kvs[leader], key(99), "v2")
	pairs, err := c.kvs[leader].Scan(cx, nil, nil, 0)
	if err != nil || len(pairs) != 100 {
		t.Fatalf("scan after restart: %d pairs, %v", len(pairs), err)
	}
}

func TestSplitUnderWritesAndRouting(t *testing.T) { clusterModes(t, testSplitUnderWritesAndRouting) }

func testSplitUnderWritesAndRouting(t *testing.T, gossip bool) {
	c := newClusterMode(t, 3, ReplicaOptions{Voters: 3}, gossip)
	c.waitVoters(c.kvs[0], 3)
	cx := ctx(t)
	// Writers put increasing values to their own keys while the range
	// splits; every acknowledged write must be readable, none twice.
	const writers, perWriter = 8, 60
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				k := []byte(fmt.Sprintf("w%d/%03d", w, i))
				if err := c.kvs[w%3].Put(cx, k, []byte(fmt.Sprint(i))); err != nil {
					failed.Store(fmt.Errorf("put %s: %w", k, err))
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	right, err := c.kvs[1].Store().Split(cx, []byte("w4"))
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	if string(right.Start) != "w4" {
		t.Fatalf("right half %s", &right)
	}
	ranges := c.kvs[0].Store().Ranges()
	if len(ranges) != 2 || string(ranges[0].End) != "w4" || string(ranges[1].Start) != "w4" {
		t.Fatalf("ranges after split: %v", ranges)
	}
	for _, kv := range c.kvs {
		pairs, err := kv.Scan(cx, nil, nil, 0)
		if err != nil || len(pairs) != writers*perWriter {
			t.Fatalf("scan: %d pairs, want %d (%v)", len(pairs), writers*perWriter, err)
		}
		seen := map[string]bool{}
		for _, p := range pairs {
			if seen[string(p.Key)] {
				t.Fatalf("key %s twice", p.Key)
			}
			seen[string(p.Key)] = true
		}
	}
	// Each half answers for its keys, and new writes route to the right one.
	if err := c.kvs[2].Put(cx, []byte("w7/new"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.kvs[0].Get(cx, []byte("w7/new")); !ok || string(v) != "x" || err != nil {
		t.Fatalf("get after split: %q %v %v", v, ok, err)
	}
	c.waitVoters(c.kvs[0], 3)

	// Merge the halves back, under writes again.
	var wg2 sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := 0; i < 30; i++ {
				k := []byte(fmt.Sprintf("m%d/%03d", w*2+1, i))
				if err := c.kvs[w%3].Put(cx, k, []byte("m")); err != nil {
					failed.Store(fmt.Errorf("put %s during merge: %w", k, err))
					return
				}
			}
		}()
	}
	merged, err := c.kvs[2].Store().Merge(cx, []byte("a"))
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	wg2.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	if merged.Start != nil || merged.End != nil {
		t.Fatalf("merged range %s", &merged)
	}
	waitRanges(t, c.kvs[1], 1)
	pairs, err := c.kvs[1].Scan(cx, nil, nil, 0)
	if err != nil || len(pairs) != writers*perWriter+1+4*30 {
		t.Fatalf("scan after merge: %d pairs (%v)", len(pairs), err)
	}
}

func waitRanges(t *testing.T, kv *KV, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(kv.Store().Ranges()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("ranges %v, want %d", kv.Store().Ranges(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReplicaChanges(t *testing.T) {
	c := newCluster(t, 3, ReplicaOptions{Manual: true})
	cx := ctx(t)
	st := c.kvs[0].Store()
	var id uint64
	deadline := time.Now().Add(10 * time.Second)
	for len(st.Ranges()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no range")
		}
		time.Sleep(20 * time.Millisecond)
	}
	id = st.Ranges()[0].ID
	if err := c.kvs[0].Put(cx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.nodes[1].ID(), c.nodes[2].ID()
	if err := st.AddReplica(cx, id, n1, true); err != nil {
		t.Fatalf("add learner: %v", err)
	}
	if err := st.AddReplica(cx, id, n2, false); err != nil {
		t.Fatalf("add voter: %v", err)
	}
	voters, learners, err := st.Members(cx, id)
	if err != nil || len(voters) != 2 || len(learners) != 1 || learners[0] != n1 {
		t.Fatalf("members: voters %v learners %v (%v)", voters, learners, err)
	}
	// The learner has the data.
	waitLocal(t, c.kvs[1], []byte("a"), "1")
	if err := st.AddReplica(cx, id, n1, false); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if voters, learners, _ = st.Members(cx, id); len(voters) != 3 || len(learners) != 0 {
		t.Fatalf("after promotion: voters %v learners %v", voters, learners)
	}
	if err := st.RemoveReplica(cx, id, n2); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if voters, _, _ = st.Members(cx, id); len(voters) != 2 {
		t.Fatalf("after removal: voters %v", voters)
	}
	if c.kvs[2].Store().localRange(id) != nil {
		t.Fatal("removed replica still running")
	}
	if err := c.kvs[2].Put(cx, []byte("b"), []byte("2")); err != nil {
		t.Fatalf("write through a node without a replica: %v", err)
	}
}

// waitLocal waits until kv's own replica of the range holding k (not
// another node's) holds want.
func waitLocal(t *testing.T, kv *KV, k []byte, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out []byte
		err := fmt.Errorf("no local replica")
		for _, d := range kv.Store().localDescriptors() {
			if d.Contains(k) {
				out, err = kv.Store().localQuery(ctx(t), d.ID, &query{ver: d.Ver, input: appendBytes([]byte{'G'}, k)}, false)
			}
		}
		if err == nil && bytes.HasSuffix(out, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not reach %q: %q %v", k, want, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWholeClusterRestart(t *testing.T) { clusterModes(t, testWholeClusterRestart) }

func testWholeClusterRestart(t *testing.T, gossip bool) {
	c := newClusterMode(t, 3, ReplicaOptions{Voters: 3}, gossip)
	c.waitVoters(c.kvs[0], 3)
	cx := ctx(t)
	for i := 0; i < 200; i++ {
		if err := c.kvs[i%3].Put(cx, key(i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.kvs[0].Store().Split(cx, key(100)); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	cx2, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pairs, err := c.kvs[2].Scan(cx2, nil, nil, 0)
	if err != nil || len(pairs) != 200 {
		t.Fatalf("after restart: %d pairs, %v", len(pairs), err)
	}
	if n := len(c.kvs[1].Store().Ranges()); n != 2 {
		t.Fatalf("%d ranges after restart, want 2", n)
	}
}

// TestRestartOnNewAddress restarts a node on another Raft address with its
// data directory: peers find it by node id and it keeps its data.
func TestRestartOnNewAddress(t *testing.T) { clusterModes(t, testRestartOnNewAddress) }

func testRestartOnNewAddress(t *testing.T, gossip bool) {
	c := newClusterMode(t, 3, ReplicaOptions{Voters: 3}, gossip)
	c.waitVoters(c.kvs[0], 3)
	cx := ctx(t)
	if err := c.kvs[0].Put(cx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	c.stop(2)
	old := c.opts[2].RaftAddr
	c.opts[2].RaftAddr = freeAddr(t)
	if c.opts[2].RaftAddr == old {
		t.Fatal("no new address")
	}
	if err := c.kvs[0].Put(cx, []byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	c.start(2)
	waitLocal(t, c.kvs[2], []byte("b"), "2")
	// It takes part again: with node 0 down, writes need it.
	c.stop(0)
	if err := c.kvs[1].Put(cx, []byte("c"), []byte("3")); err != nil {
		t.Fatalf("write needing the moved node: %v", err)
	}
	waitLocal(t, c.kvs[2], []byte("c"), "3")
}

// TestReplaceGoneReplica: with four nodes and three voters, a voter's node
// that stays gone is replaced by the fourth node, and removed.
func TestReplaceGoneReplica(t *testing.T) {
	c := newCluster(t, 4, ReplicaOptions{Voters: 3, ReplaceAfter: 500 * time.Millisecond})
	c.waitVoters(c.kvs[0], 3)
	cx := ctx(t)
	if err := c.kvs[0].Put(cx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	id := c.kvs[0].Store().Ranges()[0].ID
	voters, _, err := c.kvs[0].Store().Members(cx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Stop a voter that is not the first node (the test reads through it).
	gone := -1
	for i := 1; i < 4; i++ {
		for _, v := range voters {
			if v == c.nodes[i].ID() && gone < 0 {
				gone = i
			}
		}
	}
	goneID := c.nodes[gone].ID()
	c.stop(gone)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _, err := c.kvs[0].Store().Members(cx, id)
		if err == nil && len(v) == 3 {
			replaced := true
			for _, n := range v {
				if n == goneID {
					replaced = false
				}
			}
			if replaced {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("voters %v still include the gone node %s", v, goneID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, ok, err := c.kvs[0].Get(cx, []byte("a")); err != nil || !ok || string(v) != "1" {
		t.Fatalf("get after replacement: %q %v %v", v, ok, err)
	}
}
