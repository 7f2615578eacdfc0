package transport

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/bifromq-go/bifromq/internal/wsconn"
)

const (
	// wsMaxHeaderBytes bounds the HTTP upgrade request's headers. Browsers
	// send cookies of the broker's host, hence more than the bare minimum.
	wsMaxHeaderBytes = 32 << 10
	// wsMaxPending bounds upgrades in progress plus upgraded connections
	// waiting for Accept; beyond it requests are answered 503.
	wsMaxPending = 1024
	// wsBufferSize is the read and write buffer of each connection.
	wsBufferSize = 4096
)

// wsSubprotocols are the WebSocket subprotocols a client must offer one of:
// "mqtt" is the name MQTT 3.1.1 and 5.0 (§6.0) register, "mqttv3.1" the one
// MQTT 3.1 clients still send. When a client offers both, the order here
// decides: "mqtt" is chosen.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsListener serves HTTP on its listener, upgrades requests for its path
// and hands each upgraded connection to Accept.
//
// Goroutines: one runs http.Server.Serve; net/http runs one per HTTP
// connection, which runs ServeHTTP and, after a successful upgrade, waits
// in it until Accept takes the connection or Close refuses it. wg counts
// the per-connection goroutines (from StateNew until they are closed or
// hijacked, and every ServeHTTP call), so Close can wait for all of them.
type wsListener struct {
	addr     net.Addr
	path     string
	logger   *slog.Logger
	srv      *http.Server
	upgrader websocket.Upgrader

	conns     chan *wsConn  // unbuffered: an upgraded conn waits in its handler
	done      chan struct{} // closed by Close
	serveDone chan struct{} // closed when Serve has returned; serveErr is then set
	serveErr  error
	pending   atomic.Int32
	wg        sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool // no new ServeHTTP may join wg
	}
	closeOnce sync.Once
	closeErr  error
}

func newWSListener(ln net.Listener, cfg Config) *wsListener {
	l := &wsListener{
		addr:      ln.Addr(),
		path:      cfg.Path,
		logger:    cfg.Logger,
		conns:     make(chan *wsConn),
		done:      make(chan struct{}),
		serveDone: make(chan struct{}),
	}
	l.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   wsBufferSize,
		WriteBufferSize:  wsBufferSize,
		Subprotocols:     wsSubprotocols,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			l.refuse(w, r, status, reason.Error())
		},
		// Every origin is allowed. MQTT over WebSocket clients are often
		// browser pages served from another origin than the broker, and
		// the origin check protects cookie-authenticated sessions, which
		// MQTT has none of: the client authenticates in CONNECT, and that
		// (the auth provider) is where access is decided.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	to := cfg.HandshakeTimeout
	l.srv = &http.Server{
		Handler: l,
		// All four bound a connection that has not upgraded (yet): the
		// header read, the TLS handshake of wss (net/http uses the least
		// of them), a request body, an error response and keep-alive
		// idling. The upgrade clears the deadlines of the hijacked conn.
		ReadHeaderTimeout: to,
		ReadTimeout:       to,
		WriteTimeout:      to,
		IdleTimeout:       to,
		MaxHeaderBytes:    wsMaxHeaderBytes,
		// A non-nil empty map disables HTTP/2; WebSocket needs HTTP/1.1.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnState:    l.connState,
		ErrorLog:     slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(l.serveDone)
		if err := l.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			l.serveErr = err
			l.logger.Error("transport: websocket listener stopped", "addr", l.addr.String(), "err", err)
		}
	}()
	return l
}

func (l *wsListener) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		// Called by Serve before it returns, so before Close waits.
		l.wg.Add(1)
	case http.StateHijacked, http.StateClosed:
		l.wg.Done()
	}
}

// Accept returns the next upgraded connection, a *wsConn.
func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
	case <-l.serveDone:
		if l.serveErr != nil {
			return nil, l.serveErr
		}
	}
	return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
}

// Close stops the HTTP server, closes every connection not accepted yet
// and waits for all goroutines of the listener. Accepted connections are
// the caller's and stay open.
func (l *wsListener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.mu.closed = true
		l.mu.Unlock()
		close(l.done)
		// Close (not Shutdown) closes the listener and every connection
		// that has not been hijacked, and returns after Serve has.
		l.closeErr = l.srv.Close()
		<-l.serveDone
		l.wg.Wait()
	})
	return l.closeErr
}

func (l *wsListener) Addr() net.Addr { return l.addr }

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	closed := l.mu.closed
	if !closed {
		l.wg.Add(1)
	}
	l.mu.Unlock()
	if closed {
		l.refuse(w, r, http.StatusServiceUnavailable, "transport: listener is closing")
		return
	}
	defer l.wg.Done()
	n := l.pending.Add(1)
	defer l.pending.Add(-1)
	if n > wsMaxPending {
		l.refuse(w, r, http.StatusServiceUnavailable, "transport: too many WebSocket upgrades in progress")
		return
	}
	if websocket.IsWebSocketUpgrade(r) && !offersMQTT(websocket.Subprotocols(r)) {
		l.refuse(w, r, http.StatusBadRequest,
			`transport: the client must offer the WebSocket subprotocol "mqtt" (MQTT 5.0 §6.0) or "mqttv3.1"`)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered (through refuse) or closed the conn.
		return
	}
	c := &wsConn{Conn: wsconn.New(ws), tlsState: r.TLS}
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// refuse answers a request that is not upgraded, with reason as body.
func (l *wsListener) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	l.logger.Debug("transport: websocket upgrade refused", "remote", r.RemoteAddr, "path", r.URL.Path, "status", status, "reason", reason)
	w.Header().Set("Sec-Websocket-Version", "13")
	http.Error(w, reason, status)
}

func offersMQTT(offered []string) bool {
	for _, p := range offered {
		for _, s := range wsSubprotocols {
			if p == s {
				return true
			}
		}
	}
	return false
}

// wsConn is an upgraded WebSocket connection as a byte stream
// (internal/wsconn), with the TLS state of its HTTP connection.
type wsConn struct {
	*wsconn.Conn
	tlsState *tls.ConnectionState // nil for plain ws
}
