package basekv

import (
	"context"
	"errors"

	"github.com/lni/dragonboat/v4"
)

// Errors of this package. Test them with errors.Is; IsRetryable tells the
// ones a caller may retry.
var (
	// ErrClosed: the node or store is closed.
	ErrClosed = errors.New("basekv: closed")
	// ErrInvalidOptions wraps every Options.Validate problem.
	ErrInvalidOptions = errors.New("basekv: invalid options")
	// ErrOutOfRange: a coprocessor read or wrote a key outside its range.
	ErrOutOfRange = errors.New("basekv: key outside the range")
	// ErrNoRange: no range of the store is known for a key yet (the store
	// is starting, or its ranges are moving). Retryable.
	ErrNoRange = errors.New("basekv: no range for the key")
	// ErrStaleRoute: the request reached a range whose version changed
	// (split or merge) since it was routed. The client re-routes; callers
	// see it only when the retries ran out. Retryable.
	ErrStaleRoute = errors.New("basekv: stale route")
	// ErrUnavailable: the range has no leader or did not answer in time.
	// Retryable.
	ErrUnavailable = errors.New("basekv: range unavailable")
	// ErrDiskFull: the store's disk is nearly full; writes are refused and
	// reads go on. Retryable once space is freed.
	ErrDiskFull = errors.New("basekv: disk full")
	// ErrHostnameChanged: the data directory was created on a host of
	// another name; dragonboat keys its log directory by host name.
	ErrHostnameChanged = errors.New("basekv: host name changed")
	// ErrFormat: the store's on-disk format is not one this version reads.
	ErrFormat = errors.New("basekv: unsupported store format")
)

// CoprocError is a coprocessor's own failure for one input, passed back to
// the caller. It is not retryable: the input was applied and refused.
type CoprocError struct{ Msg string }

func (e *CoprocError) Error() string { return "basekv: coprocessor: " + e.Msg }

// IsRetryable reports whether a call that failed with err may succeed if
// made again: the range was moving, had no leader, timed out, or the disk
// was full.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrNoRange) || errors.Is(err, ErrStaleRoute) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, ErrDiskFull) || errors.Is(err, context.DeadlineExceeded) || dragonboat.IsTempError(err) ||
		errors.Is(err, dragonboat.ErrShardNotReady) || errors.Is(err, dragonboat.ErrShardNotFound)
}
