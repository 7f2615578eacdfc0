// Package transport opens the listeners of the MQTT frontend. Listen turns
// a Config into a net.Listener whose Accept yields net.Conns that carry the
// raw MQTT byte stream, whatever the wire: "tcp", "tls", "ws" (WebSocket)
// or "wss" (WebSocket over TLS), each optionally behind a proxy that sends
// a PROXY protocol (v1 or v2) header. The MQTT server reads and writes
// packets on the conn and never sees TLS records, HTTP or WebSocket frames.
//
// # Stack of each kind
//
//	tcp  TCP [→ PROXY]
//	tls  TCP [→ PROXY] → TLS                         (*tls.Conn)
//	ws   TCP [→ PROXY] → HTTP upgrade → WebSocket    (frames ↔ byte stream)
//	wss  TCP [→ PROXY] → TLS → HTTP upgrade → WebSocket
//
// # Accept never blocks on a client
//
// Accept does no I/O on a new connection. For "tcp" and "tls" the PROXY
// header and the TLS handshake happen lazily, on the first Read (or Write,
// for TLS), or when the server calls Handshake, which it should do first,
// under its connect deadline, in the connection's own goroutine.
// RemoteAddr and LocalAddr of a PROXY conn read the header too if that has
// not happened, so they may block up to HandshakeTimeout: do not call them
// from the accept loop before Handshake. For "ws" and "wss" an internal
// http.Server does the PROXY, TLS and HTTP work in its own per-connection
// goroutines, bounded by HandshakeTimeout, and Accept returns connections
// whose handshakes are complete; Handshake is a no-op for them.
//
// # Concurrency and ownership
//
// Accept may be called from one goroutine (the accept loop) while Close is
// called from any other. Every conn returned by Accept belongs to the
// caller, who must Close it; it supports the usual net.Conn concurrency (a
// reader goroutine, a writer goroutine, deadline setters and Close from any
// goroutine). A WebSocket conn becomes unusable after a Read or Write error,
// including a deadline: MQTT closes the connection on any of them anyway.
//
// # Close
//
// Close of a listener stops accepting: a blocked Accept returns an error
// for which errors.Is(err, net.ErrClosed) holds, and so does every later
// Accept. For "ws"/"wss" Close also stops the HTTP server, closes every
// connection that is still handshaking or upgraded but not yet accepted,
// and returns only after all goroutines of the listener have ended. Conns
// already accepted stay open. Close is idempotent.
//
// # Errors
//
// Listen fails with an error wrapping ErrInvalidConfig for a bad Config, or
// the error of net.Listen. On a conn, errors.Is(err, ErrProxyHeader) means
// the PROXY header was missing, malformed or too slow (it then also wraps
// the I/O error, such as os.ErrDeadlineExceeded or io.EOF) and the conn is
// closed; ErrTextFrame means a WebSocket client sent a text frame and the
// conn is closed; io.EOF means the peer closed (for WebSocket: a close
// frame or the TCP connection ended); a deadline gives an error for which
// errors.Is(err, os.ErrDeadlineExceeded) holds.
//
// # Client certificates
//
// LoadTLS builds the tls.Config of a "tls" or "wss" listener from PEM files
// and a client-auth mode; PeerCertificates returns the client's verified
// (or, with "request" and no CA, unverified) certificate chain of a conn,
// for certificate-based authentication.
package transport
