package mqtt

import (
	"sync"
	"time"
)

// rate is a token bucket: rate tokens a second, up to burst. Safe for
// concurrent use.
type rate struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newRate(perSec float64, burst int) *rate {
	return &rate{rate: perSec, burst: float64(max(1, burst)), tokens: float64(max(1, burst)), last: time.Now()}
}

func (r *rate) refill(now time.Time) {
	r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	r.last = now
}

// allow takes n tokens if they are there.
func (r *rate) allow(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refill(time.Now())
	if r.tokens < float64(n) {
		return false
	}
	r.tokens -= float64(n)
	return true
}

// wait takes n tokens, going into debt and sleeping until it is repaid;
// false if stop closes first.
func (r *rate) wait(n int, stop <-chan struct{}) bool {
	r.mu.Lock()
	r.refill(time.Now())
	r.tokens -= float64(n)
	debt := -r.tokens
	r.mu.Unlock()
	if debt <= 0 {
		return true
	}
	t := time.NewTimer(time.Duration(debt / r.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
