package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

const (
	maxConnecting   = 1000                  // concurrent connects
	monitorInterval = 10 * time.Millisecond // how often sub checks -expect and -idle
	pingCheck       = time.Second           // how often the pinger looks for due clients
	stopWriteBound  = 2 * time.Second       // how long a blocked write may delay the stop
	stopWorkers     = 64                    // goroutines sending DISCONNECT at the stop
)

// Main is the bench command: `bifromq bench conn|pub|sub [flags]`. args
// are the arguments after "bench". Progress lines and errors go to stderr,
// the summary line to stdout. It returns the exit code: 0 success, 1 a
// client failed, 2 bad usage. ctx ends the run early, with a clean stop and
// the summary.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bifromq bench: %v\n(see bifromq bench --help)\n", err)
		return 2
	}
	return run(ctx, &o, stdout, stderr)
}

// run runs the scenario of o.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	addr, err := resolveTarget(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "bifromq bench: %v\n", err)
		return 2
	}
	d, err := newDialer(o, addr)
	if err != nil {
		fmt.Fprintf(stderr, "bifromq bench: %v\n", err)
		return 2
	}
	return newRunner(o, d, stdout, stderr).run(ctx)
}

// newRunner returns the runner of o, connecting with d.
func newRunner(o *options, d *dialer, stdout, stderr io.Writer) *runner {
	errw := &syncWriter{w: stderr}
	r := &runner{
		o:        o,
		v:        o.protocol(),
		stdout:   stdout,
		stderr:   errw,
		dialer:   d,
		errs:     newErrorLog(errw),
		stats:    make([]clientStats, o.clients),
		clients:  make([]atomic.Pointer[client], o.clients),
		stopCh:   make(chan struct{}),
		finished: make(chan struct{}),
	}
	// Latencies go to a few shared histograms (client i to i mod n): few
	// enough to merge every second, enough that clients on different
	// cores rarely share one.
	r.hists = make([]*histogram, min(o.clients, 4*runtime.GOMAXPROCS(0)))
	for i := range r.hists {
		r.hists[i] = newHistogram()
	}
	return r
}

// runner is one run of a scenario. See the package doc for the goroutines
// it owns and its stop sequence.
type runner struct {
	o      *options
	v      packet.Version
	stdout io.Writer
	stderr io.Writer // safe for concurrent use
	dialer *dialer
	errs   *errorLog

	start   time.Time
	stats   []clientStats
	clients []atomic.Pointer[client] // set once connected
	hists   []*histogram

	connected atomic.Int64 // connections open now
	everConn  atomic.Int64 // clients whose CONNECT succeeded
	ready     atomic.Int64 // clients connected (and, for sub, subscribed)
	ended     atomic.Int64 // clients that will do no more work
	connLast  atomic.Int64 // conn: Unix ns of the last CONNACK

	stopping   atomic.Bool
	stopCh     chan struct{} // closed when the run stops
	finished   chan struct{} // closed when the scenario is complete
	finishOnce sync.Once

	clientWG sync.WaitGroup // the starter and the client goroutines
	readerWG sync.WaitGroup // the reader goroutines
	bgWG     sync.WaitGroup // pinger, monitor, progress
}

func (r *runner) run(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, r.o.duration)
	defer cancel()
	r.start = time.Now()
	r.clientWG.Add(1)
	go r.startAll(ctx)
	r.goBackground(r.pinger)
	if r.o.scenario == scenarioSub {
		r.goBackground(r.monitor)
	}
	if !r.o.quiet {
		r.goBackground(r.progress)
	}
	select {
	case <-ctx.Done():
	case <-r.finished:
	}
	r.stop(cancel)
	return r.summarize()
}

func (r *runner) goBackground(f func()) {
	r.bgWG.Add(1)
	go func() {
		defer r.bgWG.Done()
		f()
	}()
}

// finish ends the run before -d: the scenario is complete.
func (r *runner) finish() { r.finishOnce.Do(func() { close(r.finished) }) }

// clientEnded notes that a client will do no more work; when all have, the
// run is finished.
func (r *runner) clientEnded() {
	if r.ended.Add(1) == int64(r.o.clients) {
		r.finish()
	}
}

// markReady notes that a client is connected (and subscribed).
func (r *runner) markReady() {
	if r.ready.Add(1) == int64(r.o.clients) && r.o.ready != nil {
		r.o.ready()
	}
}

// startAll starts the clients, at most maxConnecting connecting at once,
// -interval apart.
func (r *runner) startAll(ctx context.Context) {
	defer r.clientWG.Done()
	sem := make(chan struct{}, maxConnecting)
	for i := range r.o.clients {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		r.clientWG.Add(1)
		go func() {
			defer r.clientWG.Done()
			r.runClient(ctx, i, sem)
		}()
		if r.o.interval > 0 && i < r.o.clients-1 {
			t := time.NewTimer(r.o.interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
}

// runClient connects client i, starts its reader and runs its scenario.
func (r *runner) runClient(ctx context.Context, i int, sem chan struct{}) {
	t0 := time.Now()
	c, kind, err := r.connect(ctx, i)
	<-sem
	if err != nil {
		if !r.stopping.Load() && ctx.Err() == nil {
			r.errs.add(kind, err)
		}
		r.clientEnded()
		return
	}
	r.clients[i].Store(c)
	r.connected.Add(1)
	r.everConn.Add(1)
	r.readerWG.Add(1)
	go func() {
		defer r.readerWG.Done()
		c.readLoop()
		r.connected.Add(-1)
		if r.o.scenario != scenarioPub && !r.stopping.Load() {
			r.clientEnded()
		}
	}()
	switch r.o.scenario {
	case scenarioConn:
		now := time.Now()
		c.hist.record(now.Sub(t0).Microseconds())
		storeMax(&r.connLast, now.UnixNano())
		r.markReady()
	case scenarioSub:
		if c.subscribe() {
			r.markReady()
		}
	case scenarioPub:
		r.markReady()
		c.publish()
		r.clientEnded()
	}
}

// eachClient calls f for every connected client.
func (r *runner) eachClient(f func(*client)) {
	for i := range r.clients {
		if c := r.clients[i].Load(); c != nil {
			f(c)
		}
	}
}

// pinger keeps the connections alive.
func (r *runner) pinger() {
	t := time.NewTicker(pingCheck)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.stopCh:
			return
		}
		now := time.Since(r.start)
		r.eachClient(func(c *client) { c.maybePing(now) })
	}
}

// totals sums the message counters of all clients; first and last are
// Unix ns, first is math.MaxInt64 and last 0 when there were none.
func (r *runner) totals() (sent, received uint64, first, last int64) {
	first = math.MaxInt64
	for i := range r.stats {
		s := &r.stats[i]
		sent += s.sent.Load()
		received += s.received.Load()
		if f := s.first.Load(); f != 0 && f < first {
			first = f
		}
		last = max(last, s.last.Load())
	}
	return sent, received, first, last
}

// monitor ends a sub run at -expect messages or after -idle.
func (r *runner) monitor() {
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.stopCh:
			return
		}
		_, received, _, last := r.totals()
		if r.o.expect > 0 && received >= r.o.expect {
			r.finish()
		}
		if r.o.idle > 0 && last > 0 && time.Since(time.Unix(0, last)) >= r.o.idle {
			r.finish()
		}
	}
}

// snapshot merges the current counts of all histograms into s.
func (r *runner) snapshot(s *histSnapshot) {
	s.reset()
	for _, h := range r.hists {
		s.add(h)
	}
}

// progress prints a line per second.
func (r *runner) progress() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var cur, prev, win histSnapshot
	var lastCount uint64
	lastT := r.start
	for {
		select {
		case <-t.C:
		case <-r.stopCh:
			return
		}
		now := time.Now()
		sent, received, _, _ := r.totals()
		count := r.count(sent, received)
		r.snapshot(&cur)
		win.diff(&cur, &prev)
		prev = cur
		rate := float64(count-lastCount) / now.Sub(lastT).Seconds()
		lastCount, lastT = count, now
		fmt.Fprintf(r.stderr, "bench %s %6.1fs connected=%d/%d sent=%d received=%d rate=%.0f/s p50_ms=%s p99_ms=%s\n",
			r.o.scenario, now.Sub(r.start).Seconds(), r.connected.Load(), r.o.clients, sent, received, rate,
			msOrDash(&win, 0.50), msOrDash(&win, 0.99))
	}
}

func msOrDash(s *histSnapshot, q float64) string {
	if s.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", s.quantileMS(q))
}

// count is what the rate of the scenario counts.
func (r *runner) count(sent, received uint64) uint64 {
	switch r.o.scenario {
	case scenarioPub:
		return sent
	case scenarioSub:
		return received
	}
	return uint64(r.everConn.Load())
}

// stop is the stop sequence (see the package doc).
func (r *runner) stop(cancel context.CancelFunc) {
	r.stopping.Store(true)
	close(r.stopCh)
	cancel()
	dl := time.Now().Add(stopWriteBound)
	r.eachClient(func(c *client) { _ = c.conn.SetWriteDeadline(dl) })
	r.clientWG.Wait()
	// Disconnect in parallel: a TLS close may wait for its close_notify.
	work := make(chan *client)
	var wg sync.WaitGroup
	for range min(stopWorkers, r.o.clients) {
		wg.Go(func() {
			for c := range work {
				c.disconnect(time.Now().Add(time.Second))
			}
		})
	}
	r.eachClient(func(c *client) { work <- c })
	close(work)
	wg.Wait()
	r.readerWG.Wait()
	r.bgWG.Wait()
}

// summarize prints the summary line and returns the exit code.
func (r *runner) summarize() int {
	sent, received, first, last := r.totals()
	if r.o.scenario == scenarioConn {
		first, last = r.start.UnixNano(), r.connLast.Load()
	}
	var dur float64
	if last > first {
		dur = time.Duration(last - first).Seconds()
	}
	var rate float64
	if dur > 0 {
		rate = float64(r.count(sent, received)) / dur
	}
	var all histSnapshot
	r.snapshot(&all)
	nerr := r.errs.total()
	fmt.Fprintf(r.stdout, "summary scenario=%s clients=%d connected=%d sent=%d received=%d errors=%d duration_s=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f p90_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
		r.o.scenario, r.o.clients, r.everConn.Load(), sent, received, nerr, dur, rate,
		all.quantileMS(0.50), all.quantileMS(0.99), all.quantileMS(0.90), all.quantileMS(0.999), all.quantileMS(1))
	if nerr > 0 {
		fmt.Fprintf(r.stderr, "bench: errors: %s\n", r.errs)
		return 1
	}
	if r.everConn.Load() == 0 {
		fmt.Fprintf(r.stderr, "bench: no client connected within -d %v\n", r.o.duration)
		return 1
	}
	return 0
}

// storeMax sets a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for old := a.Load(); v > old && !a.CompareAndSwap(old, v); old = a.Load() {
	}
}
