package bench

import (
	"math/bits"
	"sync/atomic"
)

// A histogram counts latencies in microseconds in log-linear buckets, like
// HdrHistogram with 64 sub-buckets per power of two: values below 128 µs
// are exact, larger ones are kept with a relative error under 1/64 (1.6%).
// Values above histMax (about 2.4 hours) count as histMax.
//
//	value (µs)      bucket
//	0..127          value                      (exact)
//	128..255        128 + (v>>1 - 64)          (width 2)
//	256..511        192 + (v>>2 - 64)          (width 4)
//	2^(k+6)..       64k + (v>>k)               (width 2^k)
//
// record is lock-free and safe for concurrent use (atomic adds). A snapshot
// reads the counts while they change; every count it sees is a count some
// record made, and counts only grow, so the difference of two snapshots
// taken in order is never negative.
type histogram struct {
	lo, hi atomic.Int32 // lowest and highest bucket used; lo > hi when empty
	counts [histBuckets]atomic.Uint64
}

const (
	histSubBits  = 6
	histSub      = 1 << histSubBits // sub-buckets per power of two
	histMaxShift = 26               // largest bucket width is 2^histMaxShift
	histBuckets  = (histMaxShift + 2) * histSub
	histMax      = 1<<(histMaxShift+histSubBits+1) - 1 // µs
)

func newHistogram() *histogram {
	h := &histogram{}
	h.lo.Store(histBuckets)
	h.hi.Store(-1)
	return h
}

// bucketOf returns the bucket of v µs.
func bucketOf(v uint64) int {
	if v > histMax {
		v = histMax
	}
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	return shift*histSub + int(v>>shift)
}

// bucketValue returns the value a bucket stands for: the middle of its range.
func bucketValue(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	m := uint64(i - shift*histSub)
	lo, hi := m<<shift, (m+1)<<shift-1
	return lo + (hi-lo)/2
}

// record counts one latency of us microseconds (negative counts as 0).
func (h *histogram) record(us int64) {
	if us < 0 {
		us = 0
	}
	i := int32(bucketOf(uint64(us)))
	h.counts[i].Add(1)
	for lo := h.lo.Load(); i < lo && !h.lo.CompareAndSwap(lo, i); lo = h.lo.Load() {
	}
	for hi := h.hi.Load(); i > hi && !h.hi.CompareAndSwap(hi, i); hi = h.hi.Load() {
	}
}

// histSnapshot is a point-in-time copy of one or more histograms, merged.
// It is plain data, owned by its user.
type histSnapshot struct {
	n      uint64
	counts [histBuckets]uint64
}

// add merges the current counts of h into s.
func (s *histSnapshot) add(h *histogram) {
	lo, hi := h.lo.Load(), h.hi.Load()
	for i := lo; i <= hi; i++ {
		c := h.counts[i].Load()
		s.counts[i] += c
		s.n += c
	}
}

// reset empties s.
func (s *histSnapshot) reset() { *s = histSnapshot{} }

// diff sets s to a - b, for snapshots b taken before a of the same
// histograms.
func (s *histSnapshot) diff(a, b *histSnapshot) {
	s.n = a.n - b.n
	for i := range s.counts {
		s.counts[i] = a.counts[i] - b.counts[i]
	}
}

// quantile returns the value (µs) under which a fraction q of the counts
// lie, and false when s is empty.
func (s *histSnapshot) quantile(q float64) (uint64, bool) {
	if s.n == 0 {
		return 0, false
	}
	rank := uint64(q*float64(s.n) + 0.5)
	rank = max(1, min(rank, s.n))
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return bucketValue(i), true
		}
	}
	return bucketValue(histBuckets - 1), true
}

// quantileMS is quantile in milliseconds, 0 when s is empty.
func (s *histSnapshot) quantileMS(q float64) float64 {
	v, _ := s.quantile(q)
	return float64(v) / 1000
}
