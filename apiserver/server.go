package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Errors of Start.
var (
	ErrStarted = errors.New("apiserver: already started")
	ErrClosed  = errors.New("apiserver: closed")
)

// idleWorkerTimeout is how long fasthttp keeps an idle worker goroutine, and
// so also how long its pool's housekeeping goroutine outlives Close.
const idleWorkerTimeout = time.Second

// connDrainTimeout bounds the wait, after Close cut the connections that
// outlived ShutdownTimeout, for their handlers to return.
const connDrainTimeout = time.Second

// Server is the HTTP API of one node. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	router   *router
	metrics  *metrics
	srv      *fasthttp.Server
	conns    connTracker
	tokenSum *[sha256.Size]byte // sha256 of Options.Token; nil when no token is required

	mu struct {
		sync.Mutex
		state serverState
		ln    net.Listener
	}
	served chan struct{} // closed when the Serve goroutine returns

	closeOnce sync.Once
	closeErr  error
}

type serverState int

const (
	stateNew serverState = iota
	stateStarted
	stateClosed
)

// New checks opts (after filling defaults), registers the server's metrics
// and returns a Server that is not yet listening.
func New(opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger.With("component", "apiserver"),
		router:  newRouter(),
		metrics: newMetrics(),
		served:  make(chan struct{}),
	}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte(opts.Token))
		s.tokenSum = &sum
	}
	s.routes()
	s.srv = &fasthttp.Server{
		Handler:               s.serve,
		ErrorHandler:          s.onBadRequest,
		ConnState:             s.conns.track,
		Name:                  "bifromq",
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		IdleTimeout:           opts.IdleTimeout,
		ReadBufferSize:        opts.ReadBufferSize,
		MaxRequestBodySize:    opts.MaxRequestBodySize,
		Concurrency:           opts.Concurrency,
		MaxIdleWorkerDuration: idleWorkerTimeout,
		NoDefaultDate:         true, // see doc.go
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{s.log},
	}
	if err := s.metrics.register(opts.Registerer); err != nil {
		return nil, fmt.Errorf("apiserver: registering metrics: %w", err)
	}
	return s, nil
}

// routes registers every endpoint. New endpoints are added here.
func (s *Server) routes() {
	s.router.handle(fasthttp.MethodGet, "/healthz", s.healthz).public = true
	s.router.handle(fasthttp.MethodGet, "/readyz", s.readyz)
	s.router.handle(fasthttp.MethodGet, "/metrics", s.metricsHandler())
}

// Start opens the listener and begins serving. It returns once the server
// accepts connections. It fails if the address cannot be bound, if the
// server was started before (ErrStarted) or if it was closed (ErrClosed).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.mu.state {
	case stateStarted:
		return ErrStarted
	case stateClosed:
		return ErrClosed
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("apiserver: listen on %s: %w", s.opts.Addr, err)
	}
	sl := &startListener{Listener: ln, accepting: make(chan struct{})}
	s.mu.ln = ln
	s.mu.state = stateStarted
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(sl); err != nil {
			s.log.Error("serve failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	// Serve registers the listener with the fasthttp server before its first
	// Accept; once it has, ShutdownWithContext is sure to see it.
	select {
	case <-sl.accepting:
	case <-s.served:
	}
	s.log.Debug("listening", "addr", ln.Addr().String(), "auth", s.tokenSum != nil)
	return nil
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.ln == nil {
		return nil
	}
	return s.mu.ln.Addr()
}

// Close stops accepting, waits up to ShutdownTimeout for requests in flight,
// cuts the connections still open, waits for the serving goroutines and
// unregisters the server's metrics. It is idempotent; every call returns the
// first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	s.mu.Lock()
	started := s.mu.state == stateStarted
	s.mu.state = stateClosed
	ln := s.mu.ln
	s.mu.Unlock()
	defer s.metrics.unregister(s.opts.Registerer)
	if !started {
		return nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	err := s.srv.ShutdownWithContext(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		n := s.conns.closeAll()
		s.log.Warn("cut connections that outlived the shutdown timeout",
			"conns", n, "timeout", s.opts.ShutdownTimeout)
		err = nil
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("apiserver: shutdown: %w", err)
	} else {
		err = nil
	}
	_ = ln.Close() // already closed by ShutdownWithContext; a no-op but certain
	<-s.served
	if !s.conns.waitEmpty(connDrainTimeout) {
		s.log.Warn("handlers still running after close", "wait", connDrainTimeout)
	}
	s.log.Debug("closed", "addr", ln.Addr().String())
	return err
}

// serve is the fasthttp handler: authentication, routing, errors, metrics.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	label := unmatchedPath
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "path", string(ctx.Path()), "panic", r,
				"stack", string(debug.Stack()))
			writeError(ctx, errorf(fasthttp.StatusInternalServerError, "the handler panicked: %v", r))
		}
		s.metrics.observe(label, ctx.Response.StatusCode(), time.Since(start))
	}()

	e := s.router.lookup(string(ctx.Path()))
	if e != nil {
		label = e.path
	}
	if s.tokenSum != nil && (e == nil || !e.public) && !s.authorized(ctx) {
		writeError(ctx, &httpError{
			status: fasthttp.StatusUnauthorized,
			reason: `missing or wrong token: send "Authorization: Bearer <token>"`,
			header: [][2]string{{fasthttp.HeaderWWWAuthenticate, `Bearer realm="bifromq"`}},
		})
		return
	}
	if e == nil {
		writeError(ctx, errorf(fasthttp.StatusNotFound, "no endpoint at %s", ctx.Path()))
		return
	}
	h := e.methods[string(ctx.Method())]
	if h == nil {
		writeError(ctx, &httpError{
			status: fasthttp.StatusMethodNotAllowed,
			reason: fmt.Sprintf("%s does not serve %s; allowed: %s", e.path, ctx.Method(), e.allow),
			header: [][2]string{{fasthttp.HeaderAllow, e.allow}},
		})
		return
	}
	if err := h(ctx); err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = errorf(fasthttp.StatusInternalServerError, "%v", err)
		}
		writeError(ctx, he)
	}
}

// authorized reports whether the request carries the bearer token. The
// comparison takes the same time whatever the token sent.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	v := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const scheme = "bearer "
	if len(v) < len(scheme) || !bytes.EqualFold(v[:len(scheme)], []byte(scheme)) {
		return false
	}
	sum := sha256.Sum256(bytes.TrimSpace(v[len(scheme):]))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// onBadRequest answers a request fasthttp could not read.
func (s *Server) onBadRequest(ctx *fasthttp.RequestCtx, err error) {
	var (
		small *fasthttp.ErrSmallBuffer
		nerr  net.Error
		he    *httpError
	)
	switch {
	case errors.As(err, &small):
		he = errorf(fasthttp.StatusRequestHeaderFieldsTooLarge,
			"the request header exceeds %d bytes", s.opts.ReadBufferSize)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		he = errorf(fasthttp.StatusRequestEntityTooLarge,
			"the request body exceeds %d bytes", s.opts.MaxRequestBodySize)
	case errors.As(err, &nerr) && nerr.Timeout():
		he = errorf(fasthttp.StatusRequestTimeout, "the request was not read within %v", s.opts.ReadTimeout)
	default:
		he = errorf(fasthttp.StatusBadRequest, "malformed request: %v", err)
	}
	writeError(ctx, he)
	s.metrics.observe(unmatchedPath, he.status, 0)
}

// healthz is liveness: the process serves HTTP.
func (s *Server) healthz(ctx *fasthttp.RequestCtx) error {
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz is readiness as Options.Ready reports it.
func (s *Server) readyz(ctx *fasthttp.RequestCtx) error {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{
				"status": "not ready",
				"reason": err.Error(),
			})
			return nil
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// metricsHandler serves Options.Gatherer in the Prometheus formats.
func (s *Server) metricsHandler() handlerFunc {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog:            promLogger{s.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	}))
	return func(ctx *fasthttp.RequestCtx) error {
		h(ctx)
		return nil
	}
}

// startListener reports its first Accept call.
type startListener struct {
	net.Listener
	once      sync.Once
	accepting chan struct{}
}

func (l *startListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.accepting) })
	return l.Listener.Accept()
}

// connTracker knows the connections fasthttp serves, so Close can cut those
// that outlive the shutdown timeout.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track is fasthttp's ConnState hook.
func (t *connTracker) track(c net.Conn, st fasthttp.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st {
	case fasthttp.StateNew:
		if t.conns == nil {
			t.conns = make(map[net.Conn]struct{})
		}
		t.conns[c] = struct{}{}
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		delete(t.conns, c)
	}
}

// closeAll closes every tracked connection and returns how many there were.
func (t *connTracker) closeAll() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		_ = c.Close() // the serving goroutine sees the error and untracks c
	}
	return len(t.conns)
}

// waitEmpty waits up to d for every tracked connection to be untracked.
func (t *connTracker) waitEmpty(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		t.mu.Lock()
		n := len(t.conns)
		t.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fasthttpLogger sends fasthttp's logs to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}

// promLogger sends promhttp's logs to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics: " + fmt.Sprint(v...))
}
