// Package wsconn presents a gorilla WebSocket connection carrying MQTT
// (binary messages, MQTT 5.0 §6.0) as a net.Conn; the broker's WS/WSS
// listeners and the bench tool's clients use it.
package wsconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ErrTextFrame is returned by Read when the peer sent a text message
// (MQTT requires binary ones); the connection is then closed.
var ErrTextFrame = errors.New("websocket: text frame received; MQTT requires binary frames")

// closeFrameTimeout bounds the sending of the close frame in Close.
const closeFrameTimeout = 500 * time.Millisecond

// New wraps ws.
func New(ws *websocket.Conn) *Conn { return &Conn{ws: ws} }

// Conn presents a WebSocket connection as a byte stream (a net.Conn).
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
type Conn struct {
	ws *websocket.Conn

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

func (c *Conn) Read(p []byte) (int, error) {
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

func (c *Conn) Write(p []byte) (int, error) {
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
func (c *Conn) mapErr(op string, err error) error {
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
func (c *Conn) Close() error {
	return c.closeWith(websocket.CloseNormalClosure, "")
}

func (c *Conn) closeWith(code int, text string) error {
	c.closeOnce.Do(func() {
		// A blocked Write holds wmu; then the close frame is skipped
		// rather than queued behind it, so Close never waits for a
		// stuck peer longer than closeFrameTimeout.
		if c.wmu.TryLock() {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text),
				time.Now().Add(closeFrameTimeout))
			c.wmu.Unlock()
		}
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

func (c *Conn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to the following Writes and, by setting the
// socket's deadline directly, to a Write in progress (unless that Write
// is just about to start its next frame, which then uses the deadline it
// read when it began; Close always unblocks it).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.Lock()
	c.wdl.t = t
	c.wdl.Unlock()
	return c.ws.NetConn().SetWriteDeadline(t)
}
