// Package basekv is a distributed, range-sharded key-value store built on
// pebble (one DB per store per node) and dragonboat (one Raft group per
// range, all ranges of a node in one NodeHost). It knows nothing of MQTT and
// is usable on its own.
//
// Contract (see DESIGN.md §3; built by the basekv issue):
//
//   - A store is a named keyspace cut into ranges [start, end) that together
//     cover it without overlap. Range and replica ids are unique cluster-wide
//     and stable across restarts.
//   - A range descriptor carries a version; a request routed with a stale
//     version is answered with the current descriptor so the client
//     re-routes.
//   - A coprocessor (dist, inbox, retain, or the built-in raw KV) implements
//     Mutate (deterministic, on every replica, time taken from the proposal,
//     side effects only where isLeader and idempotent), Query (read-only,
//     optionally linearizable), Reset(boundary) and SplitKey.
//   - Split is a Raft command that keeps the data in place; adjacent ranges
//     with equal replica sets merge back.
//   - The router sends mutations to the leader and queries to a local
//     replica, batches concurrent calls per range, and retries on a stale
//     version, a leader change or a timeout.
//
// Until that issue lands this package holds only this contract.
package basekv
