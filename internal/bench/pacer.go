package bench

import "time"

// maxLag is how far a pacer may fall behind its schedule before it forgets
// the backlog: a publisher stalled for longer (a full window, a slow
// broker) resumes at its rate instead of bursting to catch up.
const maxLag = time.Second

// A pacer spaces events at a fixed rate without drift: event k of a run is
// due at base + k/rate, computed from k rather than by adding intervals, so
// rounding and late wake-ups do not accumulate. It does no I/O and reads no
// clock: the caller passes the time elapsed since its own start. It is not
// safe for concurrent use.
type pacer struct {
	perEvent float64       // nanoseconds between events
	base     time.Duration // when event 0 of this run was due
	k        int64         // events taken since base
}

// newPacer returns a pacer of rate events per second, starting at now, or
// nil for rate 0 (unpaced).
func newPacer(rate float64, now time.Duration) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{perEvent: 1e9 / rate, base: now}
}

// wait returns how long to wait from now until the next event is due, or 0
// when it is due, in which case the event is taken. A pacer more than
// maxLag behind restarts its schedule at now.
func (p *pacer) wait(now time.Duration) time.Duration {
	due := p.base + time.Duration(float64(p.k)*p.perEvent)
	if d := due - now; d > 0 {
		return d
	}
	if now-due > maxLag {
		p.base, p.k = now, 0
	}
	p.k++
	return 0
}
