package testsuite

import (
	"testing"
	"time"
)

// TestNodesJoinThroughASeed starts three standalone nodes, the second and
// third naming only the first as seed: every node sees all three members.
func TestNodesJoinThroughASeed(t *testing.T) {
	a := StartNode(t, NodeConfig(t))
	var others []string
	for i := 0; i < 2; i++ {
		cfg := NodeConfig(t)
		cfg.Cluster.Seeds = []string{a.Cluster().Addr()}
		others = append(others, StartNode(t, cfg).Cluster().ID())
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Cluster().Members()) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("members %v, want 3", a.Cluster().Members())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, m := range a.Cluster().Members() {
		if m.ID != a.Cluster().ID() && m.ID != others[0] && m.ID != others[1] {
			t.Fatalf("unknown member %v", m)
		}
	}
}
