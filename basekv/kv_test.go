package basekv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSingleNodeKV(t *testing.T) {
	n := openNode(t, testOptions(t, t.TempDir(), nil))
	kv, err := n.KV("kv", ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	for i := 0; i < 100; i++ {
		if err := kv.Put(c, key(i), []byte{byte(i)}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	v, ok, err := kv.Get(c, key(42))
	if err != nil || !ok || !bytes.Equal(v, []byte{42}) {
		t.Fatalf("get: %v %v %v", v, ok, err)
	}
	if _, ok, _ := kv.Get(c, []byte("missing")); ok {
		t.Fatal("missing key found")
	}
	pairs, err := kv.Scan(c, key(10), key(20), 0)
	if err != nil || len(pairs) != 10 || !bytes.Equal(pairs[0].Key, key(10)) || !bytes.Equal(pairs[9].Key, key(19)) {
		t.Fatalf("scan: %d pairs, %v", len(pairs), err)
	}
	if pairs, _ := kv.Scan(c, nil, nil, 5); len(pairs) != 5 {
		t.Fatalf("scan with limit: %d pairs", len(pairs))
	}
	if err := kv.Delete(c, key(42)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := kv.Get(c, key(42)); ok {
		t.Fatal("deleted key found")
	}
	// CAS: create if absent, swap on match, refuse on mismatch, delete.
	if ok, _, err := kv.CAS(c, []byte("c"), nil, []byte("1")); !ok || err != nil {
		t.Fatalf("CAS create: %v %v", ok, err)
	}
	if ok, cur, _ := kv.CAS(c, []byte("c"), nil, []byte("2")); ok || string(cur) != "1" {
		t.Fatalf("CAS on existing key with nil old: %v %q", ok, cur)
	}
	if ok, _, _ := kv.CAS(c, []byte("c"), []byte("1"), []byte("2")); !ok {
		t.Fatal("CAS swap failed")
	}
	if ok, cur, _ := kv.CAS(c, []byte("c"), []byte("1"), []byte("3")); ok || string(cur) != "2" {
		t.Fatalf("CAS with a wrong old value: %v %q", ok, cur)
	}
	if ok, _, _ := kv.CAS(c, []byte("c"), []byte("2"), nil); !ok {
		t.Fatal("CAS delete failed")
	}
	if _, ok, _ := kv.Get(c, []byte("c")); ok {
		t.Fatal("CAS-deleted key found")
	}
	if err := kv.Put(c, nil, []byte("x")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("empty key: %v", err)
	}
}

// TestDiskFull sets the free-space floor above what the disk has: writes
// are refused with a retryable ErrDiskFull, reads go on, Health says why.
func TestDiskFull(t *testing.T) {
	opts := testOptions(t, t.TempDir(), nil)
	opts.DiskCheckInterval = 20 * time.Millisecond
	n := openNode(t, opts)
	kv, err := n.KV("kv", ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if err := kv.Put(c, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	n.SetMinFreeBytes(1 << 62)
	if err := kv.Put(c, []byte("b"), []byte("2")); !errors.Is(err, ErrDiskFull) || !IsRetryable(err) {
		t.Fatalf("write on a full disk: %v", err)
	}
	if v, ok, err := kv.Get(c, []byte("a")); err != nil || !ok || string(v) != "1" {
		t.Fatalf("read on a full disk: %q %v %v", v, ok, err)
	}
	if err := n.Health(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("health: %v", err)
	}
	n.SetMinFreeBytes(1)
	if err := kv.Put(c, []byte("b"), []byte("2")); err != nil {
		t.Fatalf("write after space came back: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := testOptions(t, t.TempDir(), nil)
	opts.Registerer = reg
	n := openNode(t, opts)
	kv, err := n.KV("kv", ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := kv.Put(ctx(t), key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				found[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				found[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				found[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for _, name := range []string{"bifromq_basekv_proposals_total", "bifromq_basekv_applied_entries_total",
		"bifromq_basekv_range_applied_index", "bifromq_basekv_range_leader", "bifromq_basekv_mutate_seconds",
		"bifromq_basekv_disk_free_bytes"} {
		if found[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, found[name])
		}
	}
}

// TestHostnameChanged: a data directory whose Raft log was written under
// another host name is refused with the directory to rename, not silently
// started empty beside it.
func TestHostnameChanged(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "raft", "some-other-host"), 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testOptions(t, dir, nil))
	if !errors.Is(err, ErrHostnameChanged) || !strings.Contains(err.Error(), "some-other-host") {
		t.Fatalf("got %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{RTT: time.Microsecond, ElectionTicks: 2, HeartbeatTicks: 1, LogDB: "huge", MaxBatch: -1}
	err := o.Validate()
	for _, want := range []string{"DataDir", "RaftAddr", "RTT", "ElectionTicks", "LogDB", "MaxBatch"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("got %v", err)
	}
}
