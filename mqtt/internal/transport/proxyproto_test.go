package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// parseAll scans and parses a complete header at the start of b.
func parseAll(b []byte) (src, dst netip.AddrPort, known bool, hdrLen int, err error) {
	hdrLen, more, err := scanProxyHeader(b)
	if err != nil {
		return src, dst, false, 0, err
	}
	if hdrLen == 0 {
		return src, dst, false, 0, errors.New("incomplete: need " + string(rune('0'+min(more, 9))) + " more")
	}
	src, dst, known, err = parseProxyHeader(b[:hdrLen])
	return src, dst, known, hdrLen, err
}

func TestParseProxyHeaderValid(t *testing.T) {
	tlvs := []byte{0x01, 0x00, 0x02, 'h', '2', 0x02, 0x00, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'}
	unknown107 := "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
	cases := []struct {
		name      string
		hdr       []byte
		src, dst  string // "" when not known
		wantTrail string // bytes after the header that must not be consumed
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 51234 1883\r\n"), "192.0.2.1:51234", "198.51.100.2:1883", ""},
		{"v1 TCP4 extremes", []byte("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\nMQTT"), "255.255.255.255:65535", "0.0.0.0:0", "MQTT"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 51234 1883\r\n\x10"), "[2001:db8::1]:51234", "[2001:db8::2]:1883", "\x10"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), "", "", ""},
		{"v1 UNKNOWN 107 bytes", []byte(unknown107 + "x"), "", "", "x"},
		{"v2 TCP4", append(proxyV2(1, 0x11, inet4("10.1.2.3", "10.9.8.7", 4000, 1883)), "tail"...), "10.1.2.3:4000", "10.9.8.7:1883", "tail"},
		{"v2 TCP6", proxyV2(1, 0x21, inet6("2001:db8::a", "2001:db8::b", 1, 65535)), "[2001:db8::a]:1", "[2001:db8::b]:65535", ""},
		{"v2 TCP4 with TLVs", append(proxyV2(1, 0x11, append(inet4("10.1.2.3", "10.9.8.7", 4000, 1883), tlvs...)), 0x10), "10.1.2.3:4000", "10.9.8.7:1883", "\x10"},
		{"v2 LOCAL", proxyV2(0, 0x00, nil), "", "", ""},
		{"v2 LOCAL with addresses", proxyV2(0, 0x11, inet4("10.1.2.3", "10.9.8.7", 4000, 1883)), "", "", ""},
		{"v2 LOCAL with junk family", proxyV2(0, 0xff, nil), "", "", ""},
		{"v2 UDP4", proxyV2(1, 0x12, inet4("10.1.2.3", "10.9.8.7", 4000, 1883)), "", "", ""},
		{"v2 UDP6", proxyV2(1, 0x22, inet6("2001:db8::a", "2001:db8::b", 1, 2)), "", "", ""},
		{"v2 UNSPEC", proxyV2(1, 0x00, nil), "", "", ""},
		{"v2 UNIX stream", proxyV2(1, 0x31, make([]byte, 216)), "", "", ""},
	}
	for _, tc := range cases {
		src, dst, known, n, err := parseAll(tc.hdr)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := string(tc.hdr[n:]); got != tc.wantTrail {
			t.Errorf("%s: trailing bytes %q, want %q", tc.name, got, tc.wantTrail)
		}
		if known != (tc.src != "") {
			t.Errorf("%s: known = %v, want %v", tc.name, known, tc.src != "")
			continue
		}
		if known && (src.String() != tc.src || dst.String() != tc.dst) {
			t.Errorf("%s: src %s dst %s, want %s %s", tc.name, src, dst, tc.src, tc.dst)
		}
	}
}

func TestParseProxyHeaderInvalid(t *testing.T) {
	badV2Version := proxyV2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2))
	badV2Version[12] = 0x11
	oversizedV2 := proxyV2(1, 0x11, nil)
	oversizedV2[14], oversizedV2[15] = 0x10, 0x01 // 4097
	badSig := proxyV2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2))
	badSig[11] = 'X'
	cases := []struct {
		name string
		hdr  []byte
		want string
	}{
		{"MQTT CONNECT", []byte("\x10\x0c\x00\x04MQTT"), "does not start with a PROXY header"},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), "does not start with a PROXY header"},
		{"PROXZ", []byte("PROXZ TCP4"), `does not start with "PROXY "`},
		{"no space", []byte("PROXYTCP4"), `does not start with "PROXY "`},
		{"LF only", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "LF, not CRLF"},
		{"too long", []byte("PROXY UNKNOWN " + strings.Repeat("a", 100) + "\r\n"), "longer than 107"},
		{"five fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "has 5 fields"},
		{"double space", []byte("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), "fields, want 6"},
		{"trailing space", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "fields, want 6"},
		{"UDP4", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), `unsupported protocol "UDP4"`},
		{"empty protocol", []byte("PROXY \r\n"), "unsupported protocol"},
		{"TCP4 with IPv6", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), `"::1" is not a TCP4 address`},
		{"TCP6 with IPv4", []byte("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), `"1.2.3.4" is not a TCP6 address`},
		{"TCP6 with zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "is not a TCP6 address"},
		{"bad IPv4", []byte("PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n"), "is not a TCP4 address"},
		{"port too big", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), `"65536" is not a port`},
		{"port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), `"01" is not a port`},
		{"port sign", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), `"+1" is not a port`},
		{"v2 bad signature", badSig, "bad v2 signature"},
		{"v2 version 1", badV2Version, "version 1, want 2"},
		{"v2 command 2", proxyV2(2, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "unknown command 0x2"},
		{"v2 family 4", proxyV2(1, 0x41, nil), "invalid family/transport byte 0x41"},
		{"v2 transport 3", proxyV2(1, 0x13, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "invalid family/transport byte 0x13"},
		{"v2 short INET", proxyV2(1, 0x11, make([]byte, 8)), "INET address block is 8 bytes, want 12"},
		{"v2 short INET6", proxyV2(1, 0x21, make([]byte, 12)), "INET6 address block is 12 bytes, want 36"},
		{"v2 oversized", oversizedV2, "v2 header length 4097 exceeds 4096"},
	}
	for _, tc := range cases {
		_, _, _, _, err := parseAll(tc.hdr)
		if !errors.Is(err, ErrProxyHeader) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrProxyHeader containing %q", tc.name, err, tc.want)
		}
	}
}

// TestScanProxyHeaderIncremental feeds headers one byte at a time: every
// prefix must ask for more, never fail, and the whole must be found.
func TestScanProxyHeaderIncremental(t *testing.T) {
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 51234 1883\r\n"),
		proxyV2(1, 0x21, inet6("2001:db8::a", "2001:db8::b", 1, 2)),
	} {
		for i := 0; i < len(hdr); i++ {
			n, more, err := scanProxyHeader(hdr[:i])
			if err != nil || n != 0 || more < 1 || i+more > len(hdr) {
				t.Fatalf("prefix %q: n=%d more=%d err=%v", hdr[:i], n, more, err)
			}
		}
		if n, _, err := scanProxyHeader(hdr); err != nil || n != len(hdr) {
			t.Fatalf("%q: n=%d err=%v, want %d", hdr, n, err, len(hdr))
		}
	}
}

// proxyCase is a header and the addresses the server must report for it;
// empty addresses mean "the real ones".
type proxyCase struct {
	name          string
	hdr           []byte
	remote, local string
}

var proxyCases = []proxyCase{
	{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 51234 1883\r\n"), "192.0.2.1:51234", "198.51.100.2:1883"},
	{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 51234 1883\r\n"), "[2001:db8::1]:51234", "[2001:db8::2]:1883"},
	{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), "", ""},
	{"v2 TCP4", proxyV2(1, 0x11, inet4("10.1.2.3", "10.9.8.7", 4000, 8883)), "10.1.2.3:4000", "10.9.8.7:8883"},
	{"v2 TCP6", proxyV2(1, 0x21, inet6("2001:db8::a", "2001:db8::b", 4001, 8883)), "[2001:db8::a]:4001", "[2001:db8::b]:8883"},
	{"v2 LOCAL", proxyV2(0, 0x00, nil), "", ""},
	{"v2 UDP4", proxyV2(1, 0x12, inet4("10.1.2.3", "10.9.8.7", 4000, 8883)), "", ""},
}

func checkAddrs(t *testing.T, tc proxyCase, sc, client net.Conn) {
	t.Helper()
	wantRemote, wantLocal := tc.remote, tc.local
	if wantRemote == "" {
		wantRemote, wantLocal = client.LocalAddr().String(), client.RemoteAddr().String()
	}
	if got := sc.RemoteAddr().String(); got != wantRemote {
		t.Errorf("%s: RemoteAddr = %s, want %s", tc.name, got, wantRemote)
	}
	if got := sc.LocalAddr().String(); got != wantLocal {
		t.Errorf("%s: LocalAddr = %s, want %s", tc.name, got, wantLocal)
	}
}

func TestProxyOverTCP(t *testing.T) {
	s := startServer(t, Config{Kind: KindTCP, ProxyProtocol: true})
	for i, tc := range proxyCases {
		c := dial(t, s.addr())
		// Header and first packet in one segment: the server reads past
		// the header and must keep those bytes.
		write(t, c, append(bytes.Clone(tc.hdr), "\x10\x02MQTT"...))
		sc := s.accept(t)
		if i%2 == 0 {
			checkAddrs(t, tc, sc, c) // RemoteAddr triggers the header read
			expectBytes(t, sc, []byte("\x10\x02"))
		} else {
			expectBytes(t, sc, []byte("\x10\x02")) // Read triggers it
			checkAddrs(t, tc, sc, c)
		}
		expectBytes(t, sc, []byte("MQTT"))
		write(t, sc, []byte("ack"))
		expectBytes(t, c, []byte("ack"))
	}
}

// TestProxyHeaderByteByByte sends the header in single bytes with pauses.
func TestProxyHeaderByteByByte(t *testing.T) {
	s := startServer(t, Config{Kind: KindTCP, ProxyProtocol: true})
	for _, tc := range proxyCases[:5:5] {
		c := dial(t, s.addr())
		sc := s.accept(t)
		sent := collect(func() error {
			for _, b := range append(bytes.Clone(tc.hdr), 'x') {
				if _, err := c.Write([]byte{b}); err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
			}
			return nil
		})
		expectBytes(t, sc, []byte("x"))
		checkAddrs(t, tc, sc, c)
		if err := wait(t, sent); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProxyOverTLS(t *testing.T) {
	f := certs(t)
	s := startServer(t, Config{Kind: KindTLS, TLS: serverTLS(t, f, "require", true), ProxyProtocol: true})
	for _, tc := range proxyCases {
		raw := dial(t, s.addr())
		write(t, raw, tc.hdr)
		c := tls.Client(raw, clientTLS(t, f, f.ClientCert, f.ClientKey))
		clientHS := collect(c.Handshake)
		sc := s.accept(t)
		if err := handshake(sc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := wait(t, clientHS); err != nil {
			t.Fatalf("%s: client handshake: %v", tc.name, err)
		}
		checkAddrs(t, tc, sc, raw)
		if certs := PeerCertificates(sc); len(certs) != 1 || certs[0].Subject.CommonName != "client" {
			t.Fatalf("%s: PeerCertificates through PROXY = %v", tc.name, certs)
		}
		write(t, c, []byte("ping"))
		expectBytes(t, sc, []byte("ping"))
	}
}

// proxyDialer is a WebSocket dialer that sends hdr first on each TCP
// connection and remembers the last one.
func proxyDialer(hdr []byte, tlsCfg *tls.Config, subprotocols ...string) (*websocket.Dialer, *net.Conn) {
	var last net.Conn
	d := &websocket.Dialer{
		HandshakeTimeout: waitLong,
		TLSClientConfig:  tlsCfg,
		Subprotocols:     subprotocols,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if _, err := c.Write(hdr); err != nil {
				c.Close()
				return nil, err
			}
			last = c
			return c, nil
		},
	}
	return d, &last
}

func TestProxyOverWebSocket(t *testing.T) {
	f := certs(t)
	for _, kind := range []string{KindWS, KindWSS} {
		s := startServer(t, Config{Kind: kind, TLS: serverTLS(t, f, "none", false), ProxyProtocol: true})
		for _, tc := range proxyCases {
			d, raw := proxyDialer(tc.hdr, clientTLS(t, f, "", ""), "mqtt")
			ws, _, err := d.Dial(kind+"://"+s.addr()+"/mqtt", nil)
			if err != nil {
				t.Fatalf("%s %s: dial: %v", kind, tc.name, err)
			}
			t.Cleanup(func() { ws.Close() })
			sc := s.accept(t)
			checkAddrs(t, tc, sc, *raw)
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte("\xc0\x00")); err != nil {
				t.Fatal(err)
			}
			expectBytes(t, sc, []byte("\xc0\x00"))
		}
	}
}

func TestProxyBadHeaderFailsFast(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := startServer(t, Config{Kind: KindTCP, ProxyProtocol: true, HandshakeTimeout: timeout})
	oversizedV2 := proxyV2(1, 0x11, nil)
	oversizedV2[14], oversizedV2[15] = 0xff, 0xff
	cases := []struct {
		name string
		send []byte
		want string
	}{
		{"MQTT without header", []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"), "does not start with a PROXY header"},
		{"garbage", []byte("hello world\r\n"), "does not start with a PROXY header"},
		{"oversized v1", []byte("PROXY TCP4 " + strings.Repeat("1", 200)), "longer than 107 bytes"},
		{"oversized v2", oversizedV2, "v2 header length 65535 exceeds 4096"},
		{"bad v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"), `"99999" is not a port`},
	}
	for _, tc := range cases {
		c := dial(t, s.addr())
		write(t, c, tc.send)
		sc := s.accept(t)
		start := time.Now()
		_ = sc.SetReadDeadline(time.Now().Add(waitLong))
		_, err := sc.Read(make([]byte, 16))
		if !errors.Is(err, ErrProxyHeader) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Read error %v, want ErrProxyHeader containing %q", tc.name, err, tc.want)
		}
		if d := time.Since(start); d >= timeout {
			t.Errorf("%s: failed after %v, want before the %v timeout", tc.name, d, timeout)
		}
		if _, err2 := sc.Read(make([]byte, 1)); !errors.Is(err2, ErrProxyHeader) {
			t.Errorf("%s: second Read error %v, want the same failure", tc.name, err2)
		}
		if got := sc.RemoteAddr().String(); got != c.LocalAddr().String() {
			t.Errorf("%s: RemoteAddr after failure = %s, want the real %s", tc.name, got, c.LocalAddr())
		}
		expectClosed(t, c)
	}
}

func TestProxySlowHeaderTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := startServer(t, Config{Kind: KindTCP, ProxyProtocol: true, HandshakeTimeout: timeout})
	for _, partial := range []string{"", "PROXY TCP4 ", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x0a"} {
		c := dial(t, s.addr())
		if partial != "" {
			write(t, c, []byte(partial))
		}
		sc := s.accept(t)
		start := time.Now()
		// RemoteAddr waits for the header, gives up at the timeout and
		// falls back to the real address.
		var got string
		_ = wait(t, collect(func() error { got = sc.RemoteAddr().String(); return nil }))
		if got != c.LocalAddr().String() {
			t.Errorf("partial %q: RemoteAddr = %s, want the real %s", partial, got, c.LocalAddr())
		}
		d := time.Since(start)
		if d < timeout-50*time.Millisecond || d > timeout+time.Second {
			t.Errorf("partial %q: gave up after %v, want about %v", partial, d, timeout)
		}
		_, err := sc.Read(make([]byte, 1))
		if !errors.Is(err, ErrProxyHeader) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("partial %q: Read error %v, want ErrProxyHeader and os.ErrDeadlineExceeded", partial, err)
		}
		expectClosed(t, c)
	}
}

func TestProxyHandshakeContext(t *testing.T) {
	s := startServer(t, Config{Kind: KindTCP, ProxyProtocol: true, HandshakeTimeout: time.Minute})

	// A context deadline shorter than HandshakeTimeout wins.
	_ = dial(t, s.addr())
	sc := s.accept(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Handshake(ctx, sc)
	if !errors.Is(err, ErrProxyHeader) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Handshake under a 100ms context: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Handshake took %v", d)
	}

	// Cancellation interrupts the read.
	_ = dial(t, s.addr())
	sc = s.accept(t)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	err = Handshake(ctx, sc)
	if !errors.Is(err, ErrProxyHeader) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Handshake with a cancelled context: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Handshake took %v", d)
	}

	// The caller's read deadline bounds the header read too, and stays in
	// force after it.
	c := dial(t, s.addr())
	sc = s.accept(t)
	_ = sc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	write(t, c, []byte("PROXY TCP4 192.0.2.1 198.51.100.2 51234 1883\r\n"))
	start = time.Now()
	// The header arrives, data never does. (collect/wait: a lost deadline
	// must fail the test, not hang it.)
	err = wait(t, collect(func() error { _, err := sc.Read(make([]byte, 1)); return err }))
	if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrProxyHeader) {
		t.Fatalf("Read after a good header: %v, want a plain deadline error", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Read gave up after %v, want about 300ms", d)
	}
	if got := sc.RemoteAddr().String(); got != "192.0.2.1:51234" {
		t.Fatalf("RemoteAddr = %s", got)
	}
	// And a conn with a good header keeps working after a deadline.
	_ = sc.SetReadDeadline(time.Time{})
	write(t, c, []byte("late"))
	expectBytes(t, sc, []byte("late"))
}
