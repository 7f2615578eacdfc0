//go:build !unix

package standalone

import "errors"

type dirLock struct{}

// lockDir is not implemented off unix: flock(2) is what keeps a second node
// off a data directory.
func lockDir(dir string) (*dirLock, error) {
	return nil, errors.New("standalone: locking the data dir is supported on unix only")
}

func (l *dirLock) release() error { return nil }
