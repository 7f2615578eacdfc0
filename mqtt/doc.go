// Package mqtt is the protocol frontend of a node: listeners (TCP, TLS,
// WebSocket, WSS, optionally behind the PROXY protocol), connection
// lifecycle, transient sessions and, as later layers land, persistent
// sessions, authentication and tenant settings. It talks to dist (and
// later inbox and retain) only through interfaces it declares (Router).
//
// # Connection lifecycle
//
// A Server accepts connections on each listener, paced by ConnectRate and
// capped by MaxConnections (a connection over the cap is answered CONNACK
// "quota exceeded" on v5 or "server unavailable" on v3, then closed). Each
// connection has one goroutine, owned by the Server, that:
//
//  1. completes the TLS or PROXY handshake and reads CONNECT, all within
//     ConnectTimeout; a first packet that is not CONNECT closes the
//     connection without an answer (MQTT-3.1.0-1);
//  2. answers CONNECT with a CONNACK in the client's version: return code 1
//     in the 3.1.1 form for an unsupported level (MQTT-3.1.2-2), a v5
//     reason code for a v5 CONNECT that is malformed or breaks a rule, and
//     a success carrying the server's limits (Receive Maximum, Maximum
//     Packet Size, Topic Alias Maximum, Server Keep Alive, Assigned Client
//     Identifier) otherwise;
//  3. reads packets with a deadline of 1.5 times the keep-alive interval
//     (MQTT-3.1.2-24), answering PINGREQ, the QoS 1 and 2 flows, SUBSCRIBE
//     and UNSUBSCRIBE per protocol. Any violation closes the connection, a
//     v5 client first getting a DISCONNECT with the reason code.
//
// # Authentication, tenants and settings
//
// After CONNECT is decoded, Options.Auth (package mqtt/auth) names the
// client's tenant and user and returns its ACL; a refusal is answered
// with the provider's reason code. The tenant's settings (Options.Settings,
// package mqtt/settings) are read then and hold for the connection: the
// enabled protocol versions, the will's limits and ACL, the limits the
// CONNACK announces to v5 clients, and on every PUBLISH and SUBSCRIBE the
// topic limits, payload size, publish rate, bandwidths, feature switches
// and the ACL (see the README for each reaction). Every key the frontend
// writes to a store, and every $share group, starts with the tenant.
// Events (EventCollector) report connects, refusals, disconnects,
// takeovers, drops, throttling and denials.
//
// # Persistent sessions
//
// See persist.go: a client with clean start 0 or a session expiry over 0
// has its session in Options.Inbox (package inbox); the frontend fetches
// its queued messages as the client's window allows and commits what the
// client acknowledged.
//
// # Transient sessions
//
// A clean session with expiry 0 lives only in its connection (a stored
// session of the same client id is discarded at CONNECT). Its
// subscriptions are routed per node: the first local subscriber of a (tenant, filter) adds one route
// naming this server's deliverer ("mqtt."+NodeID), the last one removes
// it, and the server fans deliveries out to its local subscribers
// (router.go). A session gets one copy of a message for all its matching
// non-shared subscriptions, at their highest QoS and with every
// subscription identifier; each shared subscription gets its own copy.
// A $share group's copy goes to its least busy member on this node (the
// fewest messages queued or unacknowledged, ties at random), an $oshare
// group's to the member its publisher hashes to.
// No-local and retain-as-published apply per subscription; delivered QoS
// is min(published, granted), and grants are capped by MaximumQoS.
//
// Inbound (inbound.go): each PUBLISH is handed to the Router in the order
// read; its PUBACK or PUBREC is sent once dist has taken it, in PUBLISH
// order. When dist can deliver it on the reader's goroutine (cached
// routes, all to this node's transient sessions, an idle lane:
// Router.PubInline) it does, and the reader itself writes the copies and
// the acknowledgement before it next waits, without blocking (see
// Outbound): the subscribers' copies first, its acknowledgements after
// the copies of the other readers with input at that moment (a burst is
// written together, and a subscriber fed by many publishers gets one
// write). Otherwise the publish goes through dist's lanes. A QoS 2
// message is distributed on its first PUBLISH; a resent
// PUBLISH with the same id before PUBREL is acknowledged, not routed
// again. QoS 1 messages awaiting dist and QoS 2 awaiting PUBREL count
// against ReceiveMaximum (v5 over it: DISCONNECT 0x93). A v3 client has
// no failure acknowledgement: when dist fails a message, the connection
// is closed.
//
// Outbound (outbound.go): each session has a queue drained by whoever
// holds its write turn: a sender goroutine that exists only while there is
// work, or, on plain TCP, the reader whose input queued the work, which
// writes what the socket takes at once (raw system calls, package
// internal/rawconn) and leaves any rest to a sender goroutine. Either way
// acknowledgements and messages are written in batches. QoS 1/2 messages go out while the in-flight
// window has room (the client's Receive Maximum, or MaxInflight for v3),
// with packet ids not in flight. Beyond the window they wait up to
// SessionQueue; QoS 0 messages wait up to QoS0Queue; all waiting messages
// of the server share QueueBudget bytes. Over a bound a message is dropped
// and counted, never blocking the publisher or other sessions. At send
// time an expired message is dropped and the others carry their remaining
// expiry; a message over the client's Maximum Packet Size is dropped
// (MQTT-3.1.2-25) and the session goes on; topics get outbound aliases up
// to the client's Topic Alias Maximum (reassigned in turn once all are
// used). Messages are not retransmitted on a live connection (MQTT 5
// §4.4 allows resending only on reconnect with a kept session: the inbox
// issue); those unacknowledged when a transient session ends end with it.
//
// A full session queue makes the delivery wait for room (so publishers
// slow down to what subscribers take) for as long as the session keeps
// draining; a session that takes nothing through a whole wait (100 ms) is
// marked slow and its new messages are dropped until it drains to half.
//
// A will is published when the connection ends without a normal
// DISCONNECT (or with v5 reason 0x04): immediately for a transient
// session (the will delay is min(delay, session expiry = 0)); a persistent
// session's delayed will is kept in its inbox and published by the inbox
// service unless the client resumes the session in time. A CONNECT
// with a client id already connected on this server takes the session
// over: the old connection gets DISCONNECT 0x8E (v5) and is closed, and
// its will is published.
//
// # Shutdown
//
// Server.Close stops the listeners, sends every connected v5 client
// DISCONNECT 0x8B (server shutting down), half-closes every connection and
// waits for its goroutine, at most DrainTimeout; then it cuts what remains.
// Close is idempotent.
//
// # Metrics
//
// bifromq_mqtt_connections{listener}, _connections_accepted_total,
// _connections_rejected_total{reason}, _disconnects_total{reason},
// _packets_received_total{type}, _packets_sent_total{type},
// _received_bytes_total, _sent_bytes_total, _decode_errors_total{reason},
// _messages_published_total, _messages_dropped_total{reason},
// _queued_bytes, _session_takeovers_total, _wills_published_total.
package mqtt
