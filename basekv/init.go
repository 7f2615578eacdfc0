package basekv

import (
	"github.com/bifromq-go/bifromq/basekv/internal/raftenv"
)

// dragonboat has read its settings by now (basekv imports it, so it
// initialized first): return to the process's working directory.
func init() { raftenv.Restore() }
