package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value maps to a bucket whose value is within 1/64 of it, and
	// buckets are monotonic in the value.
	prev := -1
	check := func(v uint64) {
		i := bucketOf(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d (of %d)", v, i, prev, histBuckets)
		}
		prev = i
		got := bucketValue(i)
		if d := float64(got) - float64(v); d > float64(v)/64+0.5 || -d > float64(v)/64+0.5 {
			t.Fatalf("bucketValue(bucketOf(%d)) = %d: off by more than 1/64", v, got)
		}
	}
	for v := uint64(0); v < 100_000; v++ {
		check(v)
	}
	for v := uint64(100_000); v < histMax; v = v*17/16 + 1 {
		check(v)
	}
	check(histMax)
	if got := bucketOf(histMax * 10); got != histBuckets-1 {
		t.Errorf("bucketOf(over max) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram()
	var s histSnapshot
	s.add(h)
	if _, ok := s.quantile(0.5); ok || s.quantileMS(0.99) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	vals := make([]int64, 0, 10_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for range cap(vals) {
		v := int64(rng.ExpFloat64() * 2000) // µs
		vals = append(vals, v)
		h.record(v)
	}
	h.record(-5) // counts as 0
	vals = append(vals, 0)
	slices.Sort(vals)
	s.reset()
	s.add(h)
	if s.n != uint64(len(vals)) {
		t.Fatalf("n = %d, want %d", s.n, len(vals))
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := float64(vals[max(0, int(q*float64(len(vals))+0.5)-1)])
		got, _ := s.quantile(q)
		if d := float64(got) - want; d > want/50+1 || -d > want/50+1 {
			t.Errorf("quantile(%v) = %d, want about %v", q, got, want)
		}
	}

	// A window is the difference of two snapshots.
	prev := s
	for range 100 {
		h.record(50_000)
	}
	s.reset()
	s.add(h)
	var win histSnapshot
	win.diff(&s, &prev)
	if win.n != 100 {
		t.Fatalf("window n = %d, want 100", win.n)
	}
	if got := win.quantileMS(0.5); got < 49 || got > 51 {
		t.Errorf("window p50 = %v ms, want 50", got)
	}
}

func TestPacer(t *testing.T) {
	if newPacer(0, 0) != nil {
		t.Fatal("rate 0 is paced")
	}
	// 1000/s: events at 0, 1ms, 2ms, ...; late wake-ups do not shift the
	// schedule.
	p := newPacer(1000, 0)
	now := time.Duration(0)
	taken := 0
	for now < time.Second {
		if d := p.wait(now); d > 0 {
			now += d + 300*time.Microsecond // oversleep
			continue
		}
		taken++
	}
	if taken < 999 || taken > 1001 {
		t.Errorf("took %d events in 1s at 1000/s", taken)
	}

	// A rate that is not a whole number of nanoseconds does not drift.
	p = newPacer(3, 0)
	n := 0
	for now := time.Duration(0); now <= 100*time.Second; now += time.Millisecond {
		for p.wait(now) == 0 {
			n++
		}
	}
	if n != 301 {
		t.Errorf("took %d events in 100s at 3/s, want 301", n)
	}

	// Behind by more than maxLag: the backlog is dropped.
	p = newPacer(100, 0)
	if p.wait(0) != 0 {
		t.Fatal("event 0 not due at 0")
	}
	burst := 0
	for p.wait(5*time.Second) == 0 {
		burst++
	}
	if burst != 1 {
		t.Errorf("after a 5s stall %d events were due at once, want 1", burst)
	}
	if d := p.wait(5 * time.Second); d != 10*time.Millisecond {
		t.Errorf("next event in %v, want 10ms", d)
	}
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"sub", "-c", "3", "-t", "a/%i/+", "-q", "2", "-V", "3", "-clean=false", "-expect", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if o.clients != 3 || o.qos != 2 || o.version != 3 || o.clean || o.expect != 10 || o.prefix != "bench-sub-" {
		t.Errorf("parsed %+v", o)
	}
	if got := o.clientTopic(12); got != "a/12/+" {
		t.Errorf("clientTopic(12) = %q", got)
	}
	if got := o.clientID(7); got != "bench-sub-7" {
		t.Errorf("clientID(7) = %q", got)
	}
	if _, err := parseArgs([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if _, err := parseArgs([]string{"pub", "-help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("pub -help: %v", err)
	}
	// validate reports every problem at once.
	_, err = parseArgs([]string{"pub", "-q", "3", "-s", "8", "-V", "4"})
	for _, want := range []string{"-q 3", "-s 8", "-V 4"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"flood"},
		{"pub", "-q", "3"},
		{"pub", "-s", "15"},
		{"pub", "-V", "4"},
		{"pub", "-c", "0"},
		{"pub", "-t", "a/#"},
		{"sub", "-t", "a/#/b"},
		{"pub", "-inflight", "0"},
		{"pub", "-inflight", "70000"},
		{"pub", "-r", "-1"},
		{"conn", "-d", "0s"},
		{"conn", "-p", "70000"},
		{"conn", "-x", "5000000000"},
		{"conn", "-nosuchflag"},
		{"conn", "-c", "x"},
		{"conn", "extra"},
		{"conn", "-cafile", "ca.pem"},
		{"conn", "-path", "mqtt"},
		{"conn", "-tls", "-cafile", "/does/not/exist"},
		{"pub", "-rxtime"},
		{"sub", "-rxtime", "-ws"},
		{"sub", "-rxtime", "-tls", "-insecure"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if stdout.Len() > 0 || stderr.Len() == 0 {
			t.Errorf("%q: stdout %q, stderr %q: want the error on stderr only", args, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "-allow-remote") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout.String())
	}
}

func TestRefusesRemoteHost(t *testing.T) {
	for _, host := range []string{"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1"} {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := Main(context.Background(), []string{"conn", "-h", host, "-d", "10s"}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-allow-remote") || stdout.Len() > 0 {
			t.Errorf("-h %s: exit %d, stdout %q, stderr %q; want 2 and a message about -allow-remote",
				host, code, stdout.String(), stderr.String())
		}
		if time.Since(start) > time.Second {
			t.Errorf("-h %s: refusing took %v", host, time.Since(start))
		}
	}
	for _, host := range []string{"127.0.0.1", "127.1.2.3", "::1", "localhost"} {
		o := defaultOptions(scenarioConn)
		o.host = host
		if _, err := resolveTarget(context.Background(), &o); err != nil {
			t.Errorf("-h %s refused: %v", host, err)
		}
	}
}
