package transport

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// wsMaxHeaderBytes bounds the HTTP upgrade request's headers. Browsers
	// send cookies of the broker's host, hence more than the bare minimum.
	wsMaxHeaderBytes = 32 << 10
	// wsMaxPending bounds upgrades in progress plus upgraded connections
	// waiting for Accept; beyond it requests are answered 503.
	wsMaxPending = 1024
	// wsCloseFrameTimeout bounds the sending of the close frame in Close.
	wsCloseFrameTimeout = 500 * time.Millisecond
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
	c := &wsConn{ws: ws, tlsState: r.TLS}
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

// wsConn presents a WebSocket connection as a byte stream.
//
// Read returns the payload of binary messages back to back, ignoring
// message boundaries (MQTT 5.0 §6.0: a packet may span messages and a
// message may hold several packets). Write sends one binary message per
// call. Read and Write may be called concurrently with each other and
// with every other method; concurrent Reads (or Writes) are serialised.
//
// After a Read error, including a timeout, every later Read returns the
// same error: the WebSocket framing state is unknown after an interrupted
// read, so the connection is unusable (close it). The same holds for Write.
type wsConn struct {
	ws       *websocket.Conn
	tlsState *tls.ConnectionState // nil for plain ws

	rmu  sync.Mutex
	r    io.Reader // current message, guarded by rmu
	rerr error     // sticky read error, guarded by rmu

	wmu sync.Mutex // serialises Writes and the close frame
	wdl struct {
		sync.Mutex
		t time.Time
	}

	closeOnce sync.Once
	closeErr  error
}

func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.rerr = c.mapErr("read", err)
				return 0, c.rerr
			}
			if typ != websocket.BinaryMessage {
				c.rerr = ErrTextFrame
				_ = c.closeWith(websocket.CloseUnsupportedData, "MQTT requires binary frames")
				return 0, c.rerr
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			err = nil
		}
		if err != nil {
			c.rerr = c.mapErr("read", err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wdl.Lock()
	dl := c.wdl.t
	c.wdl.Unlock()
	// gorilla applies its write deadline to the socket at every frame; it
	// is only read by writes, all of which hold wmu.
	_ = c.ws.SetWriteDeadline(dl)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, c.mapErr("write", err)
	}
	return len(p), nil
}

// mapErr turns gorilla's errors into what a net.Conn user expects: a close
// by the peer (or a vanished peer) is io.EOF, a deadline is
// os.ErrDeadlineExceeded, a write after Close is net.ErrClosed.
func (c *wsConn) mapErr(op string, err error) error {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseGoingAway,
			websocket.CloseNoStatusReceived, websocket.CloseAbnormalClosure:
			return io.EOF
		}
		return err
	case errors.Is(err, websocket.ErrCloseSent):
		return &net.OpError{Op: op, Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: net.ErrClosed}
	case errors.As(err, &ne) && ne.Timeout():
		return &net.OpError{Op: op, Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return err
}

// Close sends a close frame (normal closure) unless a Write is in progress,
// then closes the connection. Every call returns the first call's result.
func (c *wsConn) Close() error {
	return c.closeWith(websocket.CloseNormalClosure, "")
}

func (c *wsConn) closeWith(code int, text string) error {
	c.closeOnce.Do(func() {
		// A blocked Write holds wmu; then the close frame is skipped
		// rather than queued behind it, so Close never waits for a
		// stuck peer longer than wsCloseFrameTimeout.
		if c.wmu.TryLock() {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text),
				time.Now().Add(wsCloseFrameTimeout))
			c.wmu.Unlock()
		}
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to the following Writes and, by setting the
// socket's deadline directly, to a Write in progress (unless that Write
// is just about to start its next frame, which then uses the deadline it
// read when it began; Close always unblocks it).
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Lock()
	c.wdl.t = t
	c.wdl.Unlock()
	return c.ws.NetConn().SetWriteDeadline(t)
}
