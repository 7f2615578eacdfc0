package basekv

import (
	"fmt"
	"syscall"
	"time"
)

// The disk guard: a node checks the free space of its data directory's
// file system every DiskCheckInterval. Below MinFreeBytes it refuses
// writes (Mutate, Split, Merge answer ErrDiskFull, which is retryable)
// while reads go on, so neither pebble nor dragonboat's log runs into a
// full disk; Health reports it and the metrics show it.

func (n *Node) diskLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.DiskCheckInterval)
	defer t.Stop()
	for {
		n.checkDisk()
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

func (n *Node) checkDisk() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.opts.DataDir, &st); err != nil {
		n.log.Warn("checking free disk space", "dir", n.opts.DataDir, "err", err)
		return
	}
	free := st.Bavail * uint64(st.Bsize)
	n.metrics.diskFree.Set(float64(free))
	full := free < n.minFree.Load()
	if was := n.diskFull.Swap(full); was != full {
		if full {
			n.metrics.diskFull.Set(1)
			n.log.Error("disk nearly full: refusing writes", "dir", n.opts.DataDir, "free_bytes", free,
				"min_free_bytes", n.minFree.Load())
		} else {
			n.metrics.diskFull.Set(0)
			n.log.Info("disk space recovered: accepting writes", "free_bytes", free)
		}
	}
}

// Health reports why the node cannot take writes, or nil.
func (n *Node) Health() error {
	if n.diskFull.Load() {
		return fmt.Errorf("%w: less than %d bytes free under %s", ErrDiskFull, n.minFree.Load(), n.opts.DataDir)
	}
	return nil
}

// SetMinFreeBytes changes the free-space floor at run time and checks the
// disk against it at once.
func (n *Node) SetMinFreeBytes(v uint64) {
	n.minFree.Store(v)
	n.checkDisk()
}
