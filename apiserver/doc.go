// Package apiserver is a node's HTTP API, served with fasthttp.
//
// Every node serves the same API (it is stateless: whatever it answers comes
// from the services behind it). Today it has the operational endpoints; the
// tenant and cluster endpoints of the design (POST /pub, GET /cluster, ...)
// are added to the same router as they land.
//
// # Endpoints
//
//	GET /healthz   liveness: 200 {"status":"ok"} while the process serves HTTP.
//	GET /readyz    readiness: 200 {"status":"ready"} when Options.Ready
//	               returns nil, else 503 {"status":"not ready","reason":"..."}.
//	GET /metrics   Prometheus text exposition of Options.Gatherer.
//
// Every GET endpoint also answers HEAD (headers only).
//
// # Errors
//
// Every error is a JSON object {"error":"<short text>","reason":"<why>"}
// with Content-Type application/json: 400 for a request fasthttp cannot parse,
// 401 for a missing or wrong token (with WWW-Authenticate: Bearer), 404 for an
// unknown path, 405 for a known path with another method (with an Allow
// header), 408/413/431 for a request over the read timeout, body or header
// bound, 500 for a handler that failed or panicked.
//
// # Authentication
//
// When Options.Token is set, every endpoint except /healthz requires the
// header "Authorization: Bearer <token>"; the comparison takes constant time.
// Without the token a request to any path but /healthz (known or not) is
// answered 401, so an unauthenticated caller learns nothing about the API.
//
// # Bounds
//
// ReadTimeout, WriteTimeout and IdleTimeout bound each connection; the
// request header must fit in ReadBufferSize and the body in
// MaxRequestBodySize; at most Concurrency connections are served at once
// (the rest are answered 503 and closed).
//
// # Lifecycle
//
// New checks the options; Start opens the listener and serves in one
// goroutine owned by the Server; Close stops accepting, lets requests in
// flight finish for up to ShutdownTimeout (fasthttp's ShutdownWithContext),
// then cuts the connections still open and waits for their goroutines.
// Close is idempotent and may be called without Start. fasthttp's worker
// pool keeps one housekeeping goroutine for up to one second after Close
// (it sleeps between sweeps and cannot be woken); it holds no connection.
//
// The server sets no Date header: fasthttp would start a process-wide
// goroutine to keep it current, which nothing could ever stop.
//
// # Metrics
//
// The server registers on Options.Registerer:
//
//	bifromq_api_requests_total{path,code}           requests answered
//	bifromq_api_request_duration_seconds{path}      time spent in handlers
//
// path is the route's path, or "unmatched" for any path no route serves, so
// the label's values are bounded. Close unregisters them, so a new Server
// may register on the same Registerer.
//
// # Adding an endpoint
//
// Register a handler in (*Server).routes with s.router.handle(method, path,
// h); a GET route also serves HEAD. Paths are exact: parameters travel in
// headers or the query string, as the design's tenant endpoints do. A
// handler is a func(*fasthttp.RequestCtx) error: it writes its success
// response itself (writeJSON) and returns an *httpError (errorf) for a
// failure, which becomes the JSON error body; any other error is answered
// 500 with its text as the reason, and a panic is answered 500 and logged.
// Authentication, 404, 405 and metrics are the router's, not the handler's.
// An endpoint that needs a service (dist, inbox, session dict, ...) gets it
// through a new field of Options.
package apiserver
