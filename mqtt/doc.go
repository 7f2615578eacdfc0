// Package mqtt is the protocol frontend of a node: listeners (TCP, TLS,
// WebSocket, WSS, optionally behind the PROXY protocol), connection
// lifecycle and, as later layers land, sessions, the session dictionary,
// authentication and tenant settings. It talks to dist, inbox and retain
// only through their Go client interfaces.
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
// Until routing lands (the dist issue) PUBLISH is validated and
// acknowledged (v5: "no matching subscribers") and nothing is delivered;
// SUBSCRIBE is granted per filter and nothing is stored.
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
// _received_bytes_total, _sent_bytes_total, _decode_errors_total{reason}.
package mqtt
