// Package inbox keeps persistent sessions in the inbox.store basekv store:
// per inbox its metadata (incarnation, mod version, expiry, limits,
// subscriptions, delayed will) and two bounded queues, QoS 0 and the QoS 1/2
// send buffer, replicated so a client resumes its session on any node after
// a crash.
//
// Contract (see DESIGN.md §5; built by the inbox issue): an insert from
// dist is acknowledged only once Raft-applied; fetch is pushed on write and
// pulled by the client's capacity; the frontend commits after delivery, so
// anything uncommitted is redelivered after a reconnect; expiry and delayed
// wills are scheduled by the range leader and rebuilt after a leader
// change; deleting an inbox unroutes its filters.
//
// Until that issue lands this package holds only this contract.
package inbox
