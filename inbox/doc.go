// Package inbox keeps persistent sessions in the inbox.store basekv store,
// replicated, so a client resumes its session, with its queued messages,
// after a reconnect or a broker crash.
//
// # Data
//
// Per inbox (tenant, client id): metadata (Meta: incarnation, version,
// session expiry, detached-at, owner, queue limit and drop policy,
// subscriptions with their options, delayed will, inbound QoS 2 ids
// awaiting PUBREL, the deadline) and two queues, QoS 0 and the QoS 1/2
// send buffer, one key per entry by sequence number. Each tenant keeps a
// deadline index of its detached inboxes. A tenant's keys stay in one
// range (SplitKey), so an inbox, its queues and the index change
// atomically. Key and value encodings are in meta.go; the inputs in
// coproc.go.
//
// # Operations
//
// Attach resumes an inbox (clean start 0, not expired: "session present")
// or replaces it with a new incarnation, returning the old one's filters
// to unroute. Detach keeps it for its expiry with a delayed will, or
// deletes it (expiry 0). Subscribe and Unsubscribe are bounded by
// MaxTopicFiltersPerInbox. Insert (from dist, through the Service's
// Deliver) queues a message once per inbox for all of its matching
// filters (highest QoS, every subscription id, no-local applied); a full
// queue drops the new message, or for QoS 0 with DropOldest the oldest,
// and the drop is reported (and counted) while the publisher is still
// acknowledged. Fetch reads entries by sequence; Commit deletes delivered
// ones; MarkReceived records a client's PUBREC (a resumed session then
// sends PUBREL, not the message); SetQoS2In stores inbound QoS 2 ids.
//
// Every op but Attach names the incarnation it acts for and does nothing
// for another one, so a replaced session's late calls cannot touch its
// successor. Routes to an inbox carry its incarnation the same way.
//
// # Acknowledgement and durability
//
// Deliver returns only once each insert is Raft-applied (with the store's
// replication), so the frontend's PUBACK or PUBREC to the publisher comes
// after the message is durable in every inbox it matches.
//
// # Expiry and wills
//
// The Service's expiry loop (every ExpiryInterval) proposes a scan of each
// range's deadline index: inboxes past their session expiry are deleted
// and unrouted; wills past min(will delay, session expiry) are published.
// The schedule lives in the store, not in timers, so nothing needs
// rebuilding after a leader change or a restart; the scan is idempotent,
// and only the proposer of the entry that changed an inbox publishes its
// will. SweepOrphans, run when a frontend starts, detaches the sessions an
// earlier (crashed) run of that node left attached, so they expire too.
package inbox
