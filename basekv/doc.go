// Package basekv is a distributed, range-sharded key-value store on pebble
// and dragonboat. It knows nothing of MQTT: dist, inbox and retain keep
// their state in it through coprocessors, and it is usable on its own as a
// replicated KV (see the example).
//
// # Model
//
// A Node is one member of a cluster: one dragonboat NodeHost (Raft log and
// transport) in DataDir/raft, and the stores opened on it. A Store is a
// named keyspace held in one pebble DB per node (DataDir/stores/<name>),
// cut into ranges [start, end) that together cover it. Each range is one
// Raft group whose replicas live on some of the nodes that opened the
// store; range and replica ids are random 63-bit numbers, unique
// cluster-wide and stable across restarts. Raft peers are named by node id
// (a UUID kept in DataDir/node.id) and resolved to addresses through the
// Directory, so a node that comes back on another address keeps its data.
//
// # Writes and reads
//
// Store.Mutate routes an input by key to its range and proposes it on the
// leader's node; concurrent calls to one range are group-committed (many
// inputs, one Raft entry), and every replica applies an entry batch as one
// pebble batch, together with the range's applied index. Store.Query reads
// on a local replica, linearizably through a Raft read index or from the
// replica's state. A call routed with a stale range version (a split or
// merge happened) is answered with the new descriptor and re-routed; a
// leader change or an attempt timeout (ProposalTimeout) is retried until
// the call's context ends. IsRetryable tells what a caller may retry.
//
// # Coprocessors
//
// The contract dist, inbox and retain implement is package coproc: Mutate
// (deterministic, on every replica, one input at a time, time from the
// proposal, side effects only where IsLeader and idempotent), Query, Reset
// and SplitKey. RawKV is the built-in one behind KV.
//
// # Ranges
//
// Split is a Raft command: the left half keeps its id, the right half
// becomes a new Raft group on the same voters, its data left in place.
// Merge seals the right neighbour, waits until every replica of it applied
// the seal, and has the left range absorb it. AddReplica and RemoveReplica
// change a range's voters and learners (a learner added as a voter is
// promoted); a new replica catches up from a snapshot. ReplicaOptions
// (voters, learners, -1 for every other node) is applied by each range's
// leader as nodes open the store.
//
// # On disk
//
// A store's pebble DB holds, besides the coprocessor keys ('d' + key), a
// format marker (checked at open) and per range its descriptor, applied
// index and this node's replica info under a reserved prefix (keys.go). A
// snapshot is a stream of the range's keys read from a pebble snapshot;
// restoring clears the range's span and ingests them as an sstable. Raft logs are
// compacted by snapshot every SnapshotEntries entries.
//
// dragonboat keys its log directory by host name: Open refuses, with
// ErrHostnameChanged and the directory to rename, a data directory made on
// a host of another name. dragonboat reads tuning from
// ./dragonboat-soft-settings.json at init; basekv makes it read its own
// instead, whatever the working directory (see internal/raftenv).
//
// A node refuses writes while its disk has less than MinFreeBytes free
// (ErrDiskFull), reads go on, and Health says so.
//
// # Known limits
//
// A merge interrupted between the seal and the merge leaves the right
// range sealed (serving nothing) until Merge is called again. A node that
// comes back after its replica of a range was replaced (ReplaceAfter) keeps
// the stale replica until an operator removes its data; the balancers will
// clean it up.
//
// # Without a Landscape
//
// The Directory that resolves node ids and lists each store's ranges is
// in-process: nodes of one process share one. With Options.Landscape (a
// basecluster.Host) peers and ranges come from gossip instead. Either way,
// until the RPC layer lands, a call to a range with no replica on the
// calling node is made directly on the node that has one, in-process.
package basekv
