// Package retain keeps retained messages in the retain.store basekv store,
// one per (tenant, topic): an empty payload clears the topic, message
// expiry is honoured when matching and by a GC pass, and a wildcard
// subscribe matches through an index, never by scanning a tenant's retained
// messages, capped by RetainMessageMatchLimit (the caller's limit).
//
// # Contract
//
// Client (Open, OpenOptions) is the service of one node; its methods are
// safe for concurrent use and take a context that bounds basekv's retries.
//
//   - Retain(ctx, tenant, msg) makes msg the retained message of (tenant,
//     msg.Topic), replacing the one held; an empty payload clears the
//     topic, and so does a message already expired when the store applies
//     it. msg.Topic must be a valid topic name (ErrBadTopic: no wildcard,
//     not empty). It returns once the change is Raft-applied.
//   - Match(ctx, tenant, filter, limit) returns at most limit unexpired
//     messages of tenant whose topics match filter (ErrBadFilter for an
//     invalid or shared-subscription filter, ErrBadLimit for a negative
//     limit; 0 returns nothing): the first ones in key order (tenant, then
//     topic levels, bytewise), each with Topic and Retain set, owned by
//     the caller. '+' and '#' follow MQTT 5 §4.7: "a/#" matches "a"; a
//     topic starting with '$' matches no filter starting with '+' or '#'
//     (MQTT-4.7.2-1). Reads come from a local replica when there is one.
//   - GC(ctx, now) and GCTenant(ctx, tenant, now) delete the messages
//     expired at now (zero: each input's proposal timestamp), a bounded
//     number of keys per Raft entry, and return how many they removed.
//     Unless Options.GCInterval is negative, a background GC owned by the
//     Client does this every GCInterval for the ranges whose first voter
//     is this node.
//   - Close stops the background GC and waits for it; it is idempotent and
//     later calls return ErrClosed. The store itself closes with its node.
//
// Errors are sentinels to test with errors.Is; store errors come wrapped
// as basekv returns them (basekv.IsRetryable).
//
// # Store
//
// The retain.store coprocessor (Coprocessor; inputs in coproc.go): a key
// per message, seg(tenant) seg(level1) ... seg(levelN) (key.go), whose
// value is the dist.Message encoding. Mutate is deterministic: expiry at
// apply time uses MutateContext.Timestamp, never the local clock. Any key
// is a split point: a tenant's messages may span ranges, and Match and GC
// go from range to range in key order following the range ends the
// coprocessor reports. Reset only records the new boundary; there is no
// cache.
//
// # Matching
//
// The match walk (match.go) descends the filter's levels over the key
// order: an exact level is a seek, '+' visits one key per distinct level
// value (seeking past each value's subtree; when the rest of the filter
// is exact, the seek to the candidate usually lands on the next value),
// '#' iterates the subtree. The keys it reads are the matches (and
// expired ones) plus one or two per distinct level value at each '+'
// level it reaches — a filter whose exact levels exist nowhere reads
// nothing — and it stops at the limit. A '+' over a level with very many
// distinct values costs a seek for each.
package retain
