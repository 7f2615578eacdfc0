// Package basecrdt holds the delta-state CRDTs the cluster replicates
// (Almeida, Shoker and Baquero, "Delta State Replicated Data Types"): an
// observed-remove map that can nest, a multi-value register, add-wins and
// remove-wins observed-remove sets, enable-wins and disable-wins flags, and
// a causal counter.
//
// # Contract
//
// The types are pure data: no I/O, no clock, no goroutines, no randomness.
// They are not safe for concurrent use; the caller serialises every call on
// a value (basecluster holds a lock around each CRDT). Slices passed in are
// copied and slices returned are the caller's.
//
// Every type is a causal CRDT: a dot store plus a causal context (Context:
// the dots the state has seen, kept as a version vector and a cloud of the
// dots beyond a gap). A dot (replica, counter) names one event; a replica
// allocates its dots from the context with Next, so a ReplicaID must never
// be shared by two live replicas and a replica that lost its state must come
// back under a new id. Two states join by keeping the dots both hold, and
// the dots one holds that the other has not seen; a dot one holds and the
// other has seen but dropped is gone. The contexts then join. Join is
// commutative, associative and idempotent; joining the same states in any
// order, any number of times, yields Equal states.
//
// # Deltas
//
// Every mutator applies its change to the receiver and returns a delta: a
// small value of the same type holding only the new dots and, in its
// context, the dots the change replaced. A delta is itself a valid state:
// state ⊔ delta equals the mutated state, and joining the deltas a replica
// produced since its state S into any state that includes S equals joining
// its current state there (when it received nothing else meanwhile). So
// replication can broadcast deltas (cheap; they may be lost, duplicated or
// reordered) and repair losses with an occasional full-state exchange. A
// delta joined before the deltas that precede it is harmless: the contexts
// record dots exactly, gaps included, and every state converges to the
// join of everything it received.
//
// # Types
//
//   - ORMap: map from string keys to values of one kind fixed at
//     construction (New(KindORMap, valueKind...)), possibly ORMaps. The
//     values share the map's context. Apply updates a value through its
//     own mutators and returns the map's delta; Remove drops the value's
//     observed dots, so an update concurrent with a Remove keeps its effect
//     (only what the Remove observed is gone) and a removed key updated again
//     starts from an empty value. A key whose value is empty is absent.
//   - MVReg: multi-value register. A Write supersedes every value it has
//     seen; concurrent Writes are all kept until a later Write sees them.
//     Values are returned sorted bytewise, equal values once.
//   - AWORSet / RWORSet: observed-remove sets of strings. Under a
//     concurrent Add and Remove of one element the add-wins set keeps the
//     element and the remove-wins set drops it. RWORSet keeps a tombstone
//     dot per removed element.
//   - EWFlag / DWFlag: boolean flags, initially false. Under a concurrent
//     Enable and Disable the enable-wins flag ends true and the
//     disable-wins flag false.
//   - CCounter: causal counter; each replica holds one dot carrying its
//     running contribution, the value is the sum. It can be reset by the
//     Remove of the map key holding it: a concurrent Inc survives the reset
//     with its replica's whole contribution.
//
// # Encoding
//
// MarshalBinary writes, and Unmarshal reads, one deterministic encoding:
// equal states encode to equal bytes. uvarint and varint are those of
// encoding/binary; a string is a uvarint length and its bytes.
//
//	encoding = format kind* replicas context store
//	format   = 0x01
//	kind*    = the kind path: the kind byte (KindORMap=1, MVReg=2, AWORSet=3,
//	           RWORSet=4, EWFlag=5, DWFlag=6, CCounter=7), then while the last
//	           byte written is KindORMap the kind byte of its values (at most
//	           16 bytes in all)
//	replicas = uvarint n, n strings, strictly ascending: every replica named
//	           by the context or the store; a dot names its replica by index
//	dot      = uvarint replica index, uvarint counter (1 to 2^62)
//	context  = uvarint n, n (uvarint replica index, uvarint counter)
//	           in ascending replica order (the version vector);
//	           uvarint m, m dots ascending (the cloud)
//
// Dots order by replica id, then counter; keys and elements order bytewise.
// The store depends on the kind; every list is a uvarint count followed by
// its items in strictly ascending order:
//
//	EWFlag   = dots
//	DWFlag   = (dot, byte 1 enable | 0 disable)*
//	MVReg    = (dot, uvarint length, value bytes)*
//	CCounter = (dot, varint contribution)*
//	AWORSet  = (string element, EWFlag store, non-empty)*
//	RWORSet  = (string element, DWFlag store, non-empty)*
//	ORMap    = (string key, the store of the value kind, non-empty)*
//
// The context is written compacted. Unmarshal rejects with ErrCorrupt,
// and never panics on, anything else: truncated or trailing bytes, counts
// or lengths beyond the bytes left (so garbage cannot make it allocate
// much), unsorted or duplicate lists, counters of 0 or above 2^62, empty
// values, a dot appearing twice in the store or missing from the context.
package basecrdt
