package standalone

import (
	"runtime"
	"runtime/debug"
)

// version is the release, set at link time:
//
//	go build -ldflags "-X github.com/bifromq-go/bifromq/standalone.version=v1.2.3" ./cmd/bifromq
var version = "dev"

// Version returns the release of this binary: the one set at link time, else
// the main module's version when built with `go install module@version`,
// else "dev".
func Version() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// versionLine is what `bifromq version` prints.
func versionLine() string {
	return "bifromq " + Version() + " (" + runtime.Version() + ")"
}
