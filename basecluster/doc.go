// Package basecluster is a node's membership: a hashicorp/memberlist host
// joined through any seed, an env name that keeps foreign clusters apart,
// periodic re-join of seeds and lost members so a healed partition merges
// back, agents (named groups of nodes with per-member metadata) and the
// replication of basecrdt values over gossip (push-pull for full state,
// broadcasts for deltas). It publishes the landscape that basekv's router
// and RPC discovery read.
//
// Contract (see DESIGN.md §4; built by the basecrdt and basecluster issue):
// a watcher of an agent gets the current member set and then each change;
// a CRDT value written on one node converges on every node; every
// goroutine is owned by the host and stopped by Close.
//
// Until that issue lands this package holds only this contract.
package basecluster
