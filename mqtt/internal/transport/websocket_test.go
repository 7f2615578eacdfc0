package transport

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/testsuite/testcert"
)

// wsDial dials the listener's URL with the given subprotocols.
func wsDial(t *testing.T, url string, tlsCfg *tls.Config, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitLong, TLSClientConfig: tlsCfg, Subprotocols: subprotocols}
	ws, resp, err := d.Dial(url, nil)
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

func wsKinds(t *testing.T) []struct {
	kind   string
	scheme string
	server *tls.Config
	client *tls.Config
	files  testcert.Files
} {
	f := certs(t)
	return []struct {
		kind   string
		scheme string
		server *tls.Config
		client *tls.Config
		files  testcert.Files
	}{
		{KindWS, "ws", nil, nil, f},
		{KindWSS, "wss", serverTLS(t, f, "none", false), clientTLS(t, f, "", ""), f},
	}
}

func TestWebSocketSubprotocols(t *testing.T) {
	for _, k := range wsKinds(t) {
		s := startServer(t, Config{Kind: k.kind, TLS: k.server}) // Path defaults to /mqtt
		url := k.scheme + "://" + s.addr() + "/mqtt"
		for _, tc := range []struct {
			offer []string
			want  string
		}{
			{[]string{"mqtt"}, "mqtt"},
			{[]string{"mqttv3.1"}, "mqttv3.1"},
			{[]string{"mqttv3.1", "mqtt"}, "mqtt"},
			{[]string{"wamp", "mqttv3.1"}, "mqttv3.1"},
		} {
			ws, resp, err := wsDial(t, url, k.client, tc.offer...)
			if err != nil {
				t.Fatalf("%s offer %v: %v", k.kind, tc.offer, err)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.want || ws.Subprotocol() != tc.want {
				t.Fatalf("%s offer %v: chose %q, want %q", k.kind, tc.offer, got, tc.want)
			}
			sc := s.accept(t)
			if got, want := sc.RemoteAddr().String(), ws.LocalAddr().String(); got != want {
				t.Fatalf("%s: RemoteAddr = %s, want %s", k.kind, got, want)
			}
			if got, want := sc.LocalAddr().String(), s.addr(); got != want {
				t.Fatalf("%s: LocalAddr = %s, want %s", k.kind, got, want)
			}
			if err := handshake(sc); err != nil {
				t.Fatalf("%s: Handshake of an upgraded conn: %v", k.kind, err)
			}
		}
	}
}

func TestWebSocketRefusals(t *testing.T) {
	for _, k := range wsKinds(t) {
		s := startServer(t, Config{Kind: k.kind, TLS: k.server, Path: "/ws"})
		base := k.scheme + "://" + s.addr()
		for _, tc := range []struct {
			path     string
			offer    []string
			status   int
			wantBody string
		}{
			{"/ws", nil, http.StatusBadRequest, `must offer the WebSocket subprotocol "mqtt"`},
			{"/ws", []string{"wamp", "mqttv5"}, http.StatusBadRequest, `must offer the WebSocket subprotocol "mqtt"`},
			{"/mqtt", []string{"mqtt"}, http.StatusNotFound, "404 page not found"},
			{"/ws/", []string{"mqtt"}, http.StatusNotFound, "404 page not found"},
		} {
			_, resp, err := wsDial(t, base+tc.path, k.client, tc.offer...)
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
				t.Fatalf("%s %s %v: err %v, want a refused handshake", k.kind, tc.path, tc.offer, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("%s %s %v: %d %q, want %d with %q", k.kind, tc.path, tc.offer, resp.StatusCode, body, tc.status, tc.wantBody)
			}
		}
		// A plain GET on the path is not an upgrade.
		var c net.Conn = dial(t, s.addr())
		if k.client != nil {
			c = tls.Client(c, k.client)
		}
		write(t, c, []byte("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(waitLong))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not using the websocket protocol") {
			t.Fatalf("%s plain GET: %d %q", k.kind, resp.StatusCode, body)
		}
		// Nothing was accepted.
		select {
		case c := <-s.conns:
			t.Fatalf("%s: a refused request was accepted from %s", k.kind, c.RemoteAddr())
		default:
		}
	}
}

func TestWebSocketStream(t *testing.T) {
	connect := []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
	pingreq := []byte("\xc0\x00")
	subscribe := []byte("\x82\x08\x00\x01\x00\x03a/b\x01")
	for _, k := range wsKinds(t) {
		s := startServer(t, Config{Kind: k.kind, TLS: k.server})
		ws, _, err := wsDial(t, k.scheme+"://"+s.addr()+"/mqtt", k.client, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		sc := s.accept(t)
		send := func(b []byte) {
			t.Helper()
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				t.Fatal(err)
			}
		}
		// One packet split over three messages.
		send(connect[:1])
		send(connect[1:5])
		send(connect[5:])
		expectBytes(t, sc, connect)
		// Several packets in one message, read packet by packet.
		send(append(append([]byte{}, pingreq...), subscribe...))
		expectBytes(t, sc, pingreq)
		expectBytes(t, sc, subscribe)
		// Empty messages are skipped.
		send(nil)
		send(pingreq)
		expectBytes(t, sc, pingreq)
		// A message larger than the buffers arrives whole.
		big := make([]byte, 100_000)
		for i := range big {
			big[i] = byte(i)
		}
		send(big)
		expectBytes(t, sc, big)
		// Each Write is one binary message.
		for _, b := range [][]byte{[]byte("\x20\x02\x00\x00"), []byte("\xd0\x00"), big} {
			write(t, sc, b)
		}
		if n, err := sc.Write(nil); n != 0 || err != nil {
			t.Fatalf("Write(nil) = %d, %v", n, err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(waitLong))
		for _, want := range [][]byte{[]byte("\x20\x02\x00\x00"), []byte("\xd0\x00"), big} {
			typ, got, err := ws.ReadMessage()
			if err != nil || typ != websocket.BinaryMessage || string(got) != string(want) {
				t.Fatalf("%s: message type %d len %d err %v, want binary of %d bytes", k.kind, typ, len(got), err, len(want))
			}
		}
		// A normal close from the client is io.EOF.
		if err := ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
			t.Fatal(err)
		}
		_ = sc.SetReadDeadline(time.Now().Add(waitLong))
		if n, err := sc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("%s: Read after close = %d, %v; want io.EOF", k.kind, n, err)
		}
	}
}

func TestWebSocketTextFrameCloses(t *testing.T) {
	s := startServer(t, Config{Kind: KindWS})
	ws, _, err := wsDial(t, "ws://"+s.addr()+"/mqtt", nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.accept(t)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("\x10\x00")); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(waitLong))
	if _, err := sc.Read(make([]byte, 2)); !errors.Is(err, ErrTextFrame) {
		t.Fatalf("Read = %v, want ErrTextFrame", err)
	}
	if _, err := sc.Read(make([]byte, 2)); !errors.Is(err, ErrTextFrame) {
		t.Fatalf("second Read = %v, want ErrTextFrame again", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitLong))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseUnsupportedData) {
		t.Fatalf("client read %v, want close 1003", err)
	}
}

func TestWebSocketDeadlines(t *testing.T) {
	s := startServer(t, Config{Kind: KindWS})
	ws, _, err := wsDial(t, "ws://"+s.addr()+"/mqtt", nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.accept(t)
	start := time.Now()
	if err := sc.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err = sc.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d < 80*time.Millisecond || d > 2*time.Second {
		t.Fatalf("read deadline fired after %v, want about 100ms", d)
	}

	// A write deadline in the past fails the Write; the conn is unusable
	// afterwards, and Close still works.
	if err := sc.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := sc.Write([]byte("x")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline = %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	if err := sc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := sc.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitLong))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("client still reads after the server closed")
	}
}

// TestWebSocketWriteDeadlineUnblocks fills the socket buffers of a client
// that does not read, then unblocks the stuck Write with SetWriteDeadline
// from another goroutine.
func TestWebSocketWriteDeadlineUnblocks(t *testing.T) {
	s := startServer(t, Config{Kind: KindWS})
	_, _, err := wsDial(t, "ws://"+s.addr()+"/mqtt", nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.accept(t)
	chunk := make([]byte, 1<<20)
	stuck := collect(func() error {
		for {
			if _, err := sc.Write(chunk); err != nil {
				return err
			}
		}
	})
	time.Sleep(300 * time.Millisecond) // let the buffers fill
	if err := sc.SetWriteDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, stuck); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stuck Write returned %v, want os.ErrDeadlineExceeded", err)
	}
	start := time.Now()
	_ = sc.Close() // must not wait for the stuck peer
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestWSSClientCertificate(t *testing.T) {
	f := certs(t)
	s := startServer(t, Config{Kind: KindWSS, TLS: serverTLS(t, f, "require", true)})
	url := "wss://" + s.addr() + "/mqtt"
	ws, _, err := wsDial(t, url, clientTLS(t, f, f.ClientCert, f.ClientKey), "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.accept(t)
	certs := PeerCertificates(sc)
	if len(certs) != 1 || certs[0].Subject.CommonName != testcert.ClientCommonName {
		t.Fatalf("PeerCertificates = %v", certs)
	}
	_ = ws
	// Without a certificate the TLS handshake fails and nothing is accepted.
	if _, _, err := wsDial(t, url, clientTLS(t, f, "", ""), "mqtt"); err == nil {
		t.Fatal("wss dial without a client certificate succeeded under require")
	}
	// And ws has no TLS at all.
	s2 := startServer(t, Config{Kind: KindWS})
	if _, _, err := wsDial(t, "ws://"+s2.addr()+"/mqtt", nil, "mqtt"); err != nil {
		t.Fatal(err)
	}
	if got := PeerCertificates(s2.accept(t)); got != nil {
		t.Fatalf("PeerCertificates of ws = %v, want nil", got)
	}
}

// TestWebSocketCloseListener checks what Close does to each stage a
// connection can be in: accepted (stays open), upgraded but not accepted
// (closed), connected but silent (closed); and that no goroutine is left.
func TestWebSocketCloseListener(t *testing.T) {
	f := certs(t)
	for _, k := range []struct {
		kind, scheme string
		server       *tls.Config
		client       *tls.Config
	}{
		{KindWS, "ws", nil, nil},
		{KindWSS, "wss", serverTLS(t, f, "none", false), clientTLS(t, f, "", "")},
	} {
		t.Run(k.kind, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			ln, err := Listen(Config{Kind: k.kind, Addr: "127.0.0.1:0", TLS: k.server, Logger: quietLogger(),
				ProxyProtocol: true, HandshakeTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			url := k.scheme + "://" + ln.Addr().String() + "/mqtt"
			hdr := []byte("PROXY TCP4 192.0.2.1 198.51.100.2 51234 1883\r\n")

			d, _ := proxyDialer(hdr, k.client, "mqtt")
			accepted, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer accepted.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()

			waiting, _, err := d.Dial(url, nil) // upgraded, never accepted
			if err != nil {
				t.Fatal(err)
			}
			defer waiting.Close()

			silent := dial(t, ln.Addr().String()) // no PROXY header, no HTTP
			time.Sleep(50 * time.Millisecond)     // let the server pick it up

			start := time.Now()
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("Close took %v", d)
			}
			_ = waiting.SetReadDeadline(time.Now().Add(waitLong))
			if _, _, err := waiting.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("unaccepted conn: client read %v, want a normal close", err)
			}
			expectClosed(t, silent)
			// The accepted conn is the caller's and still works.
			if err := accepted.WriteMessage(websocket.BinaryMessage, []byte("\xc0\x00")); err != nil {
				t.Fatal(err)
			}
			expectBytes(t, sc, []byte("\xc0\x00"))
			if got := sc.RemoteAddr().String(); got != "192.0.2.1:51234" {
				t.Fatalf("RemoteAddr = %s", got)
			}
			// New connections are refused.
			if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Fatal("dial after Close succeeded")
			}
			sc.Close()
			accepted.Close()
			waiting.Close()
			silent.Close()
			goleak.VerifyNone(t, ignore)
		})
	}
}

func TestWebSocketHandshakeBounds(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, k := range wsKinds(t) {
		s := startServer(t, Config{Kind: k.kind, TLS: k.server, HandshakeTimeout: timeout})
		// Oversized request headers are refused.
		var c net.Conn = dial(t, s.addr())
		if k.client != nil {
			c = tls.Client(c, k.client)
		}
		big := strings.Repeat("a", wsMaxHeaderBytes+8192)
		write(t, c, []byte("GET /mqtt HTTP/1.1\r\nHost: x\r\nCookie: "+big+"\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(waitLong))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", k.kind, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%s: oversized headers answered %d, want 431", k.kind, resp.StatusCode)
		}
		// A client that stops half-way through the request (or, for wss,
		// never starts TLS) is dropped after the timeout.
		raw := dial(t, s.addr())
		if k.client == nil {
			write(t, raw, []byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n"))
		}
		start := time.Now()
		expectClosed(t, raw)
		if d := time.Since(start); d < timeout-50*time.Millisecond || d > timeout+2*time.Second {
			t.Fatalf("%s: slow client dropped after %v, want about %v", k.kind, d, timeout)
		}
	}
}
