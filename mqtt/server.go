package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/mqtt/internal/transport"
)

// maxRejecting bounds the connections over MaxConnections that are kept
// open long enough to read their CONNECT and answer it with a reason code;
// beyond it, connections over the cap are closed at once.
const maxRejecting = 64

// ErrServerClosed is returned by Start on a Server that was closed.
var ErrServerClosed = errors.New("mqtt: server closed")

// Server is an MQTT frontend: it owns its listeners and every connection
// they accept, and each connection's goroutine. All methods are safe for
// concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	open      atomic.Int64 // connections counted against MaxConnections
	rejecting atomic.Int64 // connections over the cap awaiting their CONNACK

	mu struct {
		sync.Mutex
		started   bool
		closed    bool
		listeners []*listener
		conns     map[*conn]struct{}
		sessions  map[string]*conn // connected sessions by tenant and client id
	}
	local        *localIndex
	events       *eventMetrics
	instance     string        // this server's run: NodeID and a random suffix
	queued       atomic.Int64  // bytes of messages waiting in sessions' queues
	stopping     chan struct{} // closed when Close begins
	wg           sync.WaitGroup
	closeOnce    sync.Once
	inPubs       sync.Pool     // *inPub, recycled per QoS 1/2 publish
	connSeq      atomic.Uint64 // numbers the connections
	flushListCap int           // outboxes a reader writes itself (see outbox.startLocked)
}

type listener struct {
	cfg     Listener
	ln      net.Listener
	limiter *rate
}

// NewServer checks opts (after filling defaults) and returns a Server that
// is not yet listening.
func NewServer(opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger.With("component", "mqtt"),
		metrics:  newMetrics(opts.Registerer),
		stopping: make(chan struct{}),
	}
	s.inPubs.New = newInPub
	s.flushListCap = flushListCap(runtime.GOMAXPROCS(0))
	s.mu.conns = make(map[*conn]struct{})
	s.mu.sessions = make(map[string]*conn)
	s.local = newLocalIndex(s)
	s.events = newEventMetrics(opts.Registerer, opts.Events)
	s.instance = opts.NodeID + "/" + randomID()[:8]
	opts.Router.Register(s.local.name, s.local)
	return s, nil
}

// Start opens every listener and begins accepting. It fails, with every
// listener closed again, if any listener cannot be opened.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrServerClosed
	}
	if s.mu.started {
		return errors.New("mqtt: server already started")
	}
	if st := s.opts.Inbox; st != nil {
		// Sessions a crashed run of this node left attached are detached
		// now, so their expiry and delayed wills run.
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.RouteTimeout)
		n, err := st.SweepOrphans(ctx, s.opts.NodeID, s.instance)
		cancel()
		if err != nil {
			return fmt.Errorf("mqtt: detaching the sessions of an earlier run: %w", err)
		}
		if n > 0 {
			s.log.Info("detached the sessions an earlier run left attached", "sessions", n)
		}
	}
	var opened []*listener
	for _, l := range s.opts.Listeners {
		ln, err := s.listen(l)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return err
		}
		var lim *rate
		if s.opts.ConnectRate > 0 {
			lim = newRate(s.opts.ConnectRate, s.opts.ConnectBurst)
		}
		opened = append(opened, &listener{cfg: l, ln: ln, limiter: lim})
	}
	s.mu.started = true
	s.mu.listeners = opened
	for _, l := range opened {
		s.log.Info("listening", "kind", l.cfg.Kind, "addr", l.ln.Addr().String())
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	return nil
}

func (s *Server) listen(l Listener) (net.Listener, error) {
	var tlsCfg *tls.Config
	if l.Kind == TLS || l.Kind == WSS {
		var err error
		tlsCfg, err = transport.LoadTLS(l.TLS.CertFile, l.TLS.KeyFile, l.TLS.ClientCAFile, string(l.TLS.ClientAuth))
		if err != nil {
			return nil, fmt.Errorf("mqtt: %s listener %s: %w", l.Kind, l.Addr, err)
		}
	}
	ln, err := transport.Listen(transport.Config{
		Kind:             string(l.Kind),
		Addr:             l.Addr,
		Path:             l.Path,
		TLS:              tlsCfg,
		ProxyProtocol:    l.ProxyProtocol,
		HandshakeTimeout: s.opts.ConnectTimeout,
		Logger:           s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("mqtt: %s listener %s: %w", l.Kind, l.Addr, err)
	}
	return ln, nil
}

// Addr returns the bound address of the first listener of kind k, or nil
// when there is none or the server has not started.
func (s *Server) Addr(k ListenerKind) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.mu.listeners {
		if l.cfg.Kind == k {
			return l.ln.Addr()
		}
	}
	return nil
}

// Connections returns the number of open client connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.conns)
}

func (s *Server) acceptLoop(l *listener) {
	defer s.wg.Done()
	kind := string(l.cfg.Kind)
	accepted := s.metrics.accepted.WithLabelValues(kind)
	var backoff time.Duration
	for {
		if l.limiter != nil && !l.limiter.wait(1, s.stopping) {
			return
		}
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isStopping() {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "kind", kind, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.stopping:
				return
			}
			continue
		}
		backoff = 0
		accepted.Inc()
		over := false
		if s.opts.MaxConnections > 0 && s.open.Add(1) > int64(s.opts.MaxConnections) {
			s.open.Add(-1)
			if s.rejecting.Add(1) > maxRejecting {
				s.rejecting.Add(-1)
				s.metrics.rejected.WithLabelValues(rejectMaxConnections).Inc()
				nc.Close()
				continue
			}
			over = true
		}
		c := newConn(s, nc, l.cfg.Kind, over)
		if !s.track(c) {
			c.release()
			nc.Close()
			return
		}
		go c.serve()
	}
}

// track registers a new connection; it fails once Close has begun.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false
	}
	s.mu.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func sessionKey(c *conn) string { return c.tenant + "\x00" + c.clientID }

// register makes c the connection of its session; an older connection
// with the same tenant and client id is kicked (taken over) and returned.
func (s *Server) register(c *conn) *conn {
	k := sessionKey(c)
	s.mu.Lock()
	old := s.mu.sessions[k]
	s.mu.sessions[k] = c
	c.registered = true
	if old != nil {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if old != nil {
		s.metrics.takeovers.Inc()
		go func() {
			defer s.wg.Done()
			old.kick()
		}()
	}
	return old
}

// unregister removes c from the registry unless a newer connection has
// taken its place.
func (s *Server) unregister(c *conn) {
	k := sessionKey(c)
	s.mu.Lock()
	if s.mu.sessions[k] == c {
		delete(s.mu.sessions, k)
	}
	s.mu.Unlock()
}

func (s *Server) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// Close stops accepting, sends every v5 client DISCONNECT 0x8B (server
// shutting down), closes every connection and waits for their goroutines,
// at most DrainTimeout before cutting the connections that remain. It is
// idempotent; every call returns after the shutdown is complete.
func (s *Server) Close() error {
	s.closeOnce.Do(s.shutdown)
	return nil
}

func (s *Server) shutdown() {
	close(s.stopping)
	s.mu.Lock()
	s.mu.closed = true
	listeners := s.mu.listeners
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, l := range listeners {
		if err := l.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("closing listener", "kind", l.cfg.Kind, "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	for _, c := range conns {
		c.shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		left := len(s.mu.conns)
		for c := range s.mu.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.log.Warn("drain timeout: cutting connections", "connections", left)
		<-done
	}
	s.opts.Router.Unregister(s.local.name)
	s.log.Info("stopped")
}
