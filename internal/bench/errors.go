package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Sentinel errors.
var (
	// errNotLoopback: -h is not loopback-only and -allow-remote is not
	// given (exit code 2). Main prints it after "bifromq bench: ".
	errNotLoopback = errors.New("not a loopback address")
)

// Error kinds, the keys errors are counted and logged by. A kind that
// carries a reason code (refusals) gets it appended, so each code is
// logged once.
const (
	kindConnect    = "connect failed"          // dial, TLS, WebSocket, CONNACK timeout
	kindRefused    = "connection refused"      // CONNACK failure code
	kindSubRefused = "subscription refused"    // SUBACK failure code
	kindPubRefused = "publish refused"         // PUBACK or PUBREC failure code
	kindLost       = "connection lost"         // read or write error while running
	kindServerDisc = "disconnected by server"  // v5 DISCONNECT from the server
	kindProtocol   = "protocol error"          // a packet the client cannot decode or did not expect
	kindTimeout    = "subscribe timeout"       // no SUBACK in time
	kindConfig     = "cannot encode a publish" // the topic or payload cannot be encoded
)

// errorLog counts errors by kind and writes the first of each kind to w.
// It is safe for concurrent use.
type errorLog struct {
	w  io.Writer
	mu struct {
		sync.Mutex
		total int
		kinds map[string]int
		order []string
	}
}

func newErrorLog(w io.Writer) *errorLog {
	l := &errorLog{w: w}
	l.mu.kinds = make(map[string]int)
	return l
}

// add counts err under kind, logging it when it is the first of its kind.
func (l *errorLog) add(kind string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.total++
	n := l.mu.kinds[kind]
	l.mu.kinds[kind] = n + 1
	if n == 0 {
		l.mu.order = append(l.mu.order, kind)
		fmt.Fprintf(l.w, "bench: %s: %v (more errors of this kind are only counted)\n", kind, err)
	}
}

// total returns the number of errors counted.
func (l *errorLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.total
}

// String lists the counts by kind in the order they first occurred.
func (l *errorLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	parts := make([]string, 0, len(l.mu.order))
	for _, k := range l.mu.order {
		parts = append(parts, fmt.Sprintf("%s: %d", k, l.mu.kinds[k]))
	}
	return strings.Join(parts, ", ")
}

// syncWriter serialises writes to w, so that lines written by several
// goroutines do not interleave (and a test's bytes.Buffer is not raced).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
