// Package bench is the load tool of BifroMQ-Go: `bifromq bench conn|pub|sub
// [flags]`, in the spirit of emqtt-bench. Its only public face is Main, which
// cmd/bifromq registers as the "bench" command.
//
// # Scenarios
//
//   - conn opens -c connections (CONNECT/CONNACK), keeps them alive with
//     PINGREQ and holds them until -d or the context ends. Latency is the
//     connect latency (dial to CONNACK).
//   - pub runs -c publishers, each on its own topic (-t with %i), at -r
//     messages/s (0: unpaced) until -n messages each or -d. QoS 1 and 2 use a
//     window of -inflight unacknowledged messages (capped by the server's v5
//     Receive Maximum) and the full flows (PUBACK; PUBREC, PUBREL, PUBCOMP).
//     Latency is publish-to-acknowledgement (PUBACK or PUBCOMP); QoS 0 has
//     none.
//   - sub runs -c subscribers, each on its own filter, acknowledging QoS 1 and
//     2 deliveries. Latency is receive time minus the send time a bench
//     publisher put in the payload, so publishers and subscribers must share a
//     clock (one host). It stops at -expect messages in total, after -idle
//     without messages (once one arrived), at -d, or when the context ends.
//
// # Payload
//
// A bench payload is at least 16 bytes: the send time in Unix nanoseconds
// (8 bytes, big-endian), the publisher's sequence number (8 bytes,
// big-endian), then zero padding to -s bytes.
//
// # Output
//
// Unless -quiet, a progress line per second goes to stderr. At the end one
// machine-readable line goes to stdout:
//
//	summary scenario=sub clients=20 connected=20 sent=0 received=200000 errors=0 duration_s=4.012 rate=49850.2 p50_ms=1.234 p99_ms=5.678 p90_ms=2.345 p999_ms=7.890 max_ms=9.012
//
// connected counts the clients whose CONNECT succeeded. duration_s runs from the first message to the last
// (pub: sent; sub: received; conn: from the first connect attempt to the last
// CONNACK); rate is sent (pub), received (sub) or connected (conn) divided by
// it, 0 when the duration is 0. Percentiles come from a log-bucket histogram
// with about 1.6% relative error and microsecond resolution.
//
// A subscriber's latency runs from the send time in the payload to when the
// tool has read the message; with -rxtime, to when the message reached the
// tool's socket (the kernel's receive time, SO_TIMESTAMPNS; Linux, plain
// TCP), which leaves the tool's own scheduling out of the figure.
//
// # Exit codes
//
// 0 when every client that got to connect did so and kept its connection; 1
// when any client failed to connect, was refused (CONNACK, SUBACK, or a
// PUBACK/PUBREC failure code), lost its connection, or none connected; 2 for
// a bad command line, including a -h that is not loopback-only without
// -allow-remote.
//
// # Goroutines
//
// A run owns every goroutine it starts: a starter, one goroutine per client
// (the publisher loop for pub), one reader per connection, a pinger, a
// monitor and the progress printer. The stop sequence is: refuse new work
// (stop channel), cancel pending connects, bound blocked writes with a
// deadline, wait for the client goroutines, send DISCONNECT and close every
// connection, wait for the readers and the background goroutines. Only then
// is the summary computed.
package bench
