// Package basecluster is a node's membership in its cluster: a
// hashicorp/memberlist host, named CRDTs replicated over its gossip, agents
// and the landscape built on them, and the re-join loop that merges a
// partitioned cluster back with no operator.
//
// # Membership
//
// Start binds the gossip address (TCP and UDP), joins the seeds (host:port
// or DNS names, every address of which is tried) and starts the re-join
// loop: every RejoinInterval it joins the seeds when alone, and the members
// it lost in the last LostMemberTTL, so the two halves of a healed
// partition find each other again. The node id is the UUID in
// DataDir/node.id, shared with basekv. Env is written on every packet
// (memberlist's label): gossip of another env is dropped, so clusters of
// different envs never merge. ProfileTest tunes failure detection to about
// a second; ProfileLAN keeps memberlist's LAN tuning.
//
// # Replicated CRDTs
//
// Host.CRDT opens a named basecrdt value. Mutate applies a mutation and
// broadcasts its delta on gossip; every push-pull exchange carries every
// value's full state, which repairs lost broadcasts. Each process mutates
// as its own replica (node id and start time), so a restarted node never
// reuses the dots of its previous life. A value received before this node
// opened it is kept.
//
// # Agents and the landscape
//
// An agent (dist.worker, inbox.store, rpc, ...) is a group of nodes with
// per-member metadata: JoinAgent, LeaveAgent, AgentMembers, and WatchAgent,
// whose channel delivers the current member set and then each change (the
// latest one when the reader is slow). The landscape is what nodes publish
// for the others per topic, one value per node (Publish, Withdraw,
// Landscape, WatchLandscape); basekv publishes its Raft address and its
// stores' range descriptors there. Agent members and landscape entries
// count only while their node is alive, so a crashed node disappears from
// both as soon as the membership declares it dead.
//
// # Concurrency
//
// Every method is safe for concurrent use. Host owns its goroutines (the
// re-join loop, the notify loop that tells watchers outside memberlist's
// locks) and stops them in Close (which tells the others it leaves) or Kill
// (which does not, as a crash).
package basecluster
