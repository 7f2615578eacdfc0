// Package basecrdt holds the delta-state CRDTs the cluster replicates: an
// observed-remove map that can nest, a multi-value register, add-wins and
// remove-wins observed-remove sets, enable-wins and disable-wins flags, and
// a causal counter. They are pure data types: Merge, Delta and Apply, a
// documented binary encoding, no I/O and no clock. Merge is commutative,
// associative and idempotent, and applying a delta equals merging the full
// state (property-tested).
//
// Until the basecrdt and basecluster issue lands this package holds only
// this contract.
package basecrdt
