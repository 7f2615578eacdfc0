// Package standalone turns a configuration into a running node, and is the
// bifromq binary's logic (cmd/bifromq only handles signals).
//
// # Configuration
//
// Config is the schema of the YAML file (see bifromq.example.yaml, which
// lists every key with its default) and of the command-line flags. Its
// precedence is: defaults (DefaultConfig), then the file (LoadConfig), then
// flags (Config.ApplyFlags, whose --config names the file). Every field has a
// default, so a node needs no file. Config.Validate reports every problem at
// once as a *ConfigError (errors.Is(err, ErrConfig)), each problem naming the
// field's YAML path, e.g. "mqtt.tls.certFile: required when mqtt.tls.addr is
// set". LoadConfig reports unknown keys and ill-typed values the same way,
// with file and line.
//
// The default addresses bind 127.0.0.1: like mosquitto 2, a node started
// without configuration serves only its own host. Listening on 0.0.0.0 (or a
// routable address) serves the network. A listener address of "off" disables
// the listener; TLS and WSS are off by default because they need certificate
// files. At least one MQTT listener must be on, and no two listeners may
// claim the same port on overlapping hosts.
//
// # Node
//
// Start runs a node: it validates the Config, creates the data directory
// (mode 0750) and takes an exclusive, non-blocking flock(2) on
// <dataDir>/LOCK, so a second node on the same directory fails at once with
// ErrDataDirLocked naming the directory. The kernel drops the lock when the
// process dies, so a crash never leaves a stale lock. It then creates the
// node's private Prometheus registry (Go and process collectors, plus
// bifromq_build_info), shared by every component: the MQTT server registers
// on it, the HTTP API serves it at /metrics. It joins the gossip cluster,
// opens the basekv node (Raft on cluster.raftAddr, state under dataDir) with
// the dist.worker, inbox.store and retain.store stores, starts the dist and
// inbox services, builds the auth provider and tenant settings from the
// auth and tenants sections (warning loudly when auth is the dev
// provider), then starts the MQTT server and then the HTTP API, whose
// /readyz reports ready once the MQTT server is started and until Close
// begins. Nothing is global: two nodes with two data
// directories and disjoint addresses can run in one process.
//
// Node.Close stops, in order: readiness (/readyz turns 503), the MQTT server
// (v5 clients get DISCONNECT 0x8B "server shutting down"; connections get
// up to mqtt.drainTimeout), the HTTP API, retain, the inbox service and
// dist, the stores, the gossip membership, and finally the lock. It is
// idempotent.
//
// # The binary
//
// Main is the whole binary behind a testable face: `bifromq [run] [flags]`
// runs a node until its context is done (SIGINT or SIGTERM in cmd/bifromq)
// and exits 0; `bifromq version` prints "bifromq <version> (<go version>)";
// `bifromq help` and `bifromq --help` print the usage and exit 0. A bad
// command line or configuration prints the whole error (every problem) to
// stderr and exits 2; a node that fails to start or stop exits 1. Other
// subcommands (bench, ...) are Command values passed to Main.
package standalone
