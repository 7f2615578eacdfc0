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
// # Pieces
//
// Route keys (RouteKey, DecodeRouteKey: ordered by tenant, then filter
// levels, then kind, group and receiver); ParseFilter for normal, $share
// and $oshare filters; Match, the seek-based walk over ordered route keys
// (tested against a brute-force matcher on 100k routes); the dist.worker
// coprocessor and its client Worker (AddRoute and RemoveRoute with
// incarnations, Match on a local replica returning each route's
// incarnation, splits kept at tenant boundaries, the per-tenant match
// cache of cache.go); and the Service.
//
// # Service
//
// Service.PubAsync queues a publish on one of a fixed set of lanes chosen
// by (tenant, publisher); a lane takes what has queued (up to MaxBatch),
// matches each distinct topic once, keeps one member per $share group
// (random) and per $oshare group (rendezvous hash of the publisher), and
// hands each Deliverer one batch for all of it. A lane completes its
// publishes in order, so one publisher's messages reach each receiver,
// and are acknowledged, in publish order. A receiver its deliverer
// reports gone is unrouted with the incarnation Match saw, so a newer
// add of the same route survives. Service.Pub is the blocking form.
// Service.PubInline skips the lane when it can: the lane has nothing
// pending, the routes are cached and all belong to one InlineDeliverer
// (the node's transient sessions); then it delivers on the caller's
// goroutine, with no hand-off, and order holds since nothing of that
// publisher was pending.
// Match results are cached per (tenant, topic): every route change made
// through the Service invalidates the cache before it returns, and an
// entry lives at most a second (for changes made through other nodes).
//
// Transient sessions are aggregated by the frontend: one route per
// (tenant, filter) per node, fanned out locally (see package mqtt). The
// inbox deliverer (persistent sessions) comes with the inbox.
package dist
