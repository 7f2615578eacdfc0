// Package raftenv gives dragonboat the settings basekv wants, whatever the
// process's working directory.
//
// dragonboat reads its "soft" settings (per-replica queue sizes among
// them) from ./dragonboat-soft-settings.json while its packages initialize,
// so by default a node's memory and behaviour would depend on the
// directory it was started from, and a malformed file there would panic
// the process. This package's init, which Go runs before dragonboat's (its
// import path sorts first and it needs only packages dragonboat's settings
// package needs too), switches the working directory to a private
// temporary directory holding basekv's settings file; Restore, called from
// basekv's own init after dragonboat's, switches back and removes it.
//
// The settings shrink the per-replica queues, which dragonboat sizes for
// one busy shard per NodeHost, to what basekv needs with group commit
// (proposals are batches, a few in flight per range), cutting an idle
// range's memory by about a megabyte.
package raftenv

import (
	"os"
	"path/filepath"

	"github.com/lni/dragonboat/v4/logger"
)

// SoftSettings is the dragonboat-soft-settings.json basekv runs with.
const SoftSettings = `{
  "IncomingProposalQueueLength": 256,
  "IncomingReadIndexQueueLength": 256,
  "PendingProposalShards": 4,
  "InMemEntrySliceSize": 64,
  "MinEntrySliceFreeSize": 16,
  "ReceiveQueueLength": 128
}
`

var (
	saved   string // working directory to restore
	tempDir string
	// Applied reports whether the settings were in place when dragonboat
	// initialized (false when no temporary directory could be made).
	Applied bool
)

func init() {
	// dragonboat's settings package logs every soft setting it applies,
	// at every start of every program that links basekv (`bifromq
	// version` included); only its warnings matter.
	logger.GetLogger("settings").SetLevel(logger.WARNING)
	wd, err := os.Getwd()
	if err != nil {
		return
	}
	dir, err := os.MkdirTemp("", "bifromq-raftenv-")
	if err != nil {
		return
	}
	if os.WriteFile(filepath.Join(dir, "dragonboat-soft-settings.json"), []byte(SoftSettings), 0o600) != nil ||
		os.Chdir(dir) != nil {
		os.RemoveAll(dir)
		return
	}
	saved, tempDir, Applied = wd, dir, true
}

// Restore returns to the original working directory. basekv calls it from
// its init; later calls do nothing.
func Restore() {
	if tempDir == "" {
		return
	}
	os.Chdir(saved)
	os.RemoveAll(tempDir)
	tempDir = ""
}
