// Package dist is subscription routing: routes (tenant, topic filter
// levels, receiver) kept in the dist.worker basekv store, ordered by tenant
// then filter levels, with normal, $share/<group>/<filter> and
// $oshare/<group>/<filter> routes. Matching walks the sorted routes once,
// seeking rather than scanning; $-topics never match a leading wildcard; a
// per-tenant match cache is updated incrementally.
//
// Contract (see DESIGN.md §5; built by the dist issue): Pub(topic, message,
// publisher) returns the fan-out count and, for QoS 1 and 2, returns only
// after every persistent delivery is durable; deliveries are batched and
// grouped by target through the Deliverer interface that the mqtt frontend
// (transient sessions) and inbox (persistent sessions) register; a
// receiver that no longer exists is unrouted. dist imports neither mqtt
// nor inbox.
//
// # Status
//
// Here now: route keys (RouteKey, DecodeRouteKey: ordered by tenant, then
// filter levels, then kind, group and receiver), ParseFilter for normal,
// $share and $oshare filters, Match, the seek-based walk over ordered
// route keys (tested against a brute-force matcher on 100k routes;
// BenchmarkMatch), and the dist.worker coprocessor with its client Worker:
// AddRoute and RemoveRoute with incarnations, Match on a local replica,
// splits kept at tenant boundaries, and the per-tenant match cache (a trie
// per tenant, built and updated on the apply path; see cache.go), and the
// Service: Pub matches, keeps one member per $share group (random) and per
// $oshare group (rendezvous hash of the publisher), groups deliveries by
// Deliverer (a receiver names its deliverer: ReceiverID) and unroutes
// receivers reported gone. Still to come: batching of concurrent Pubs,
// per-node aggregation of transient routes, and the mqtt and inbox
// deliverers.
package dist
