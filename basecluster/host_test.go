package basecluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's Shutdown does not wait for an in-flight probe, which
		// ends within its probe timeout.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

// limit scales a time limit of the issue under the race detector.
func limit(d time.Duration) time.Duration {
	if raceEnabled {
		return 3 * d
	}
	return d
}

// partition blocks traffic between two groups of gossip addresses.
type partition struct {
	mu      sync.Mutex
	blocked map[[2]string]bool
}

func (p *partition) cut(a, b []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = map[[2]string]bool{}
	for _, x := range a {
		for _, y := range b {
			p.blocked[[2]string{x, y}] = true
			p.blocked[[2]string{y, x}] = true
		}
	}
}

func (p *partition) heal() {
	p.mu.Lock()
	p.blocked = nil
	p.mu.Unlock()
}

func (p *partition) isBlocked(from, to string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked[[2]string{from, to}]
}

// faultTransport is memberlist's network transport with every packet and
// stream to a blocked peer dropped.
type faultTransport struct {
	*memberlist.NetTransport
	p    *partition
	self string
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.p.isBlocked(t.self, addr) {
		return time.Now(), nil // dropped on the wire
	}
	return t.NetTransport.WriteTo(b, addr)
}

// WriteToAddress and DialAddressTimeout are the NodeAwareTransport forms
// memberlist prefers; the embedded NetTransport has them, so they must be
// filtered too.
func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.p.isBlocked(t.self, addr) {
		return nil, errors.New("partitioned")
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startHost starts a test-profile host on a free loopback port.
func startHost(t *testing.T, p *partition, env string, seeds ...string) *Host {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0,
		Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort())
	h, err := Start(Options{NodeID: newUUID(), Env: env, BindAddr: addr, Seeds: seeds, Profile: ProfileTest,
		Transport: &faultTransport{NetTransport: nt, p: p, self: addr}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Kill() })
	return h
}

func startCluster(t *testing.T, n int) ([]*Host, *partition) {
	p := &partition{}
	hs := []*Host{startHost(t, p, "test")}
	for i := 1; i < n; i++ {
		hs = append(hs, startHost(t, p, "test", hs[0].Addr()))
	}
	return hs, p
}

// within waits until cond holds, failing after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func memberIDs(h *Host) []string {
	var ids []string
	for _, m := range h.Members() {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestJoinThroughOneSeed(t *testing.T) {
	hs, _ := startCluster(t, 5)
	within(t, limit(5*time.Second), "all 5 see 5 members", func() bool {
		for _, h := range hs {
			if len(h.Members()) != 5 {
				return false
			}
		}
		return true
	})
}

func TestCRDTConvergesAndKilledNodeGone(t *testing.T) {
	hs, _ := startCluster(t, 5)
	within(t, limit(5*time.Second), "cluster formed", func() bool { return len(hs[4].Members()) == 5 })
	if err := hs[1].Publish("svc", []byte("from-1")); err != nil {
		t.Fatal(err)
	}
	took := within(t, limit(2*time.Second), "value visible everywhere", func() bool {
		for _, h := range hs {
			if string(h.Landscape("svc")[hs[1].ID()]) != "from-1" {
				return false
			}
		}
		return true
	})
	t.Logf("a landscape write reached all 5 nodes in %v", took)

	killed := hs[3].ID()
	hs[3].Kill()
	took = within(t, limit(3*time.Second), "killed node gone everywhere", func() bool {
		for i, h := range hs {
			if i == 3 {
				continue
			}
			for _, id := range memberIDs(h) {
				if id == killed {
					return false
				}
			}
		}
		return true
	})
	t.Logf("the others saw the killed node gone in %v", took)
}

func TestAgentsAndWatcher(t *testing.T) {
	hs, _ := startCluster(t, 3)
	within(t, limit(5*time.Second), "cluster formed", func() bool { return len(hs[2].Members()) == 3 })
	w := hs[0].WatchAgent("dist.worker")
	defer w.Close()
	if first := <-w.C(); len(first) != 0 {
		t.Fatalf("first set %v, want empty", first)
	}
	for i, h := range hs {
		if err := h.JoinAgent("dist.worker", []byte(fmt.Sprintf("meta-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var got []AgentMember
	within(t, limit(5*time.Second), "watcher sees 3 members", func() bool {
		select {
		case got = <-w.C():
		default:
		}
		return len(got) == 3
	})
	want := []string{hs[0].ID(), hs[1].ID(), hs[2].ID()}
	sort.Strings(want)
	for i, m := range got {
		if m.ID != want[i] {
			t.Fatalf("members %v", got)
		}
	}
	if err := hs[2].LeaveAgent("dist.worker"); err != nil {
		t.Fatal(err)
	}
	within(t, limit(5*time.Second), "watcher sees the leave", func() bool {
		select {
		case got = <-w.C():
		default:
		}
		return len(got) == 2
	})
	hs[1].Kill()
	within(t, limit(5*time.Second), "a killed member leaves the agent", func() bool {
		select {
		case got = <-w.C():
		default:
		}
		return len(got) == 1 && got[0].ID == hs[0].ID()
	})
}

func TestEnvIsolation(t *testing.T) {
	p := &partition{}
	a := startHost(t, p, "prod")
	b := startHost(t, p, "staging", a.Addr())
	time.Sleep(limit(time.Second))
	if len(a.Members()) != 1 || len(b.Members()) != 1 {
		t.Fatalf("nodes of different envs merged: %v / %v", memberIDs(a), memberIDs(b))
	}
}

// TestPartitionHeals cuts the cluster in two for 10 s while both sides
// write, then heals it: one cluster again within 10 s, CRDTs converged,
// with no operator action.
func TestPartitionHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s partition; run without -short")
	}
	hs, p := startCluster(t, 5)
	within(t, limit(5*time.Second), "cluster formed", func() bool { return len(hs[4].Members()) == 5 })
	left, right := hs[:2], hs[2:]
	var la, ra []string
	for _, h := range left {
		la = append(la, h.Addr())
	}
	for _, h := range right {
		ra = append(ra, h.Addr())
	}
	p.cut(la, ra)
	within(t, limit(5*time.Second), "the halves see each other gone", func() bool {
		return len(left[0].Members()) == 2 && len(right[0].Members()) == 3
	})
	for i, h := range hs {
		if err := h.Publish("side", []byte(fmt.Sprintf("written-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Second)
	p.heal()
	took := within(t, limit(10*time.Second), "one cluster with converged CRDTs", func() bool {
		for _, h := range hs {
			if len(h.Members()) != 5 {
				return false
			}
			l := h.Landscape("side")
			if len(l) != 5 {
				return false
			}
			for i, o := range hs {
				if string(l[o.ID()]) != fmt.Sprintf("written-%d", i) {
					return false
				}
			}
		}
		return true
	})
	t.Logf("healed and converged %v after the partition ended", took)
}

// TestSeedByDNSName joins through a seed given as a host name.
func TestSeedByDNSName(t *testing.T) {
	p := &partition{}
	a := startHost(t, p, "test")
	_, port, _ := net.SplitHostPort(a.Addr())
	b := startHost(t, p, "test", net.JoinHostPort("localhost", port))
	within(t, limit(5*time.Second), "joined through localhost", func() bool {
		return len(a.Members()) == 2 && len(b.Members()) == 2
	})
}
