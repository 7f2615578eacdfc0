//go:build unix

package standalone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFileName is the lock file in the data directory.
const lockFileName = "LOCK"

// dirLock is an exclusive flock(2) on <dataDir>/LOCK. The kernel drops it
// when the process dies, so a crashed node never leaves a stale lock; the
// file itself stays (removing it would let two nodes lock two different
// files of the same name).
type dirLock struct {
	f    *os.File
	path string
}

// lockDir takes the lock of dir, which must exist, without waiting.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("standalone: opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = fmt.Sprintf(" by process %d", pid)
				}
			}
			return nil, fmt.Errorf("%w: data dir %s is in use by another node (%s is locked%s)",
				ErrDataDirLocked, dir, path, holder)
		}
		return nil, fmt.Errorf("standalone: locking %s: %w", path, err)
	}
	// The pid is for the message above, seen by a node that finds the lock
	// taken; a failure to record it changes nothing else.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f, path: path}, nil
}

// release drops the lock. Call it once.
func (l *dirLock) release() error {
	uerr := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	cerr := l.f.Close() // closing drops the lock too; unlocking first says so
	if err := errors.Join(uerr, cerr); err != nil {
		return fmt.Errorf("standalone: releasing %s: %w", l.path, err)
	}
	return nil
}
