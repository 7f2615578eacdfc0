package standalone

import "errors"

// Errors of the package; test for them with errors.Is.
var (
	// ErrConfig is wrapped by every configuration error: what Validate,
	// LoadConfig and ApplyFlags report about the configuration itself (see
	// ConfigError for the list of problems).
	ErrConfig = errors.New("standalone: invalid config")
	// ErrDataDirLocked is wrapped by Start's error when another node holds
	// the data directory.
	ErrDataDirLocked = errors.New("standalone: data dir locked")
)
