package transport

// PROXY protocol, versions 1 and 2, receiving side only, after the HAProxy
// specification (doc/proxy-protocol.txt). Every connection of a listener
// with ProxyProtocol set must start with one header:
//
//	v1: "PROXY" SP ("TCP4"|"TCP6") SP srcIP SP dstIP SP srcPort SP dstPort CRLF
//	    "PROXY" SP "UNKNOWN" [anything] CRLF             at most 107 bytes
//	v2: 12-byte signature | ver<<4|cmd | family<<4|transport | len (BE16) |
//	    len bytes: addresses (12 for INET, 36 for INET6, 216 for UNIX), TLVs
//
// The header is read lazily, by the first Read, RemoteAddr, LocalAddr or
// Handshake, never by Accept, and under a deadline of HandshakeTimeout so
// a client that sends nothing cannot hold a goroutine. Bytes read past the
// header are kept and returned by the following Reads.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// proxyV1MaxLen is the longest v1 header, CRLF included (spec §2.1).
	proxyV1MaxLen = 107
	// proxyV2MaxBody caps the length field of a v2 header. The field
	// allows 65535; real headers (addresses plus a few TLVs such as
	// AWS's VPC endpoint id or SSL info) stay far below 4 KiB.
	proxyV2MaxBody = 4096
	proxyV2HdrLen  = 16
)

// proxyV2Sig opens every v2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// aLongTimeAgo is a deadline in the past, used to interrupt a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// proxyListener wraps every accepted connection in a proxyConn. Accept
// does no I/O on the connection.
type proxyListener struct {
	net.Listener
	timeout time.Duration
	logger  *slog.Logger
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &proxyConn{Conn: c, timeout: l.timeout, logger: l.logger}, nil
}

// proxyConn is a connection that starts with a PROXY header. It is safe
// for concurrent use as a net.Conn is.
type proxyConn struct {
	net.Conn
	timeout time.Duration
	logger  *slog.Logger

	once sync.Once
	// Set inside once, read only after it.
	err    error
	remote net.Addr // nil: keep the real address (LOCAL, UNKNOWN, unsupported family)
	local  net.Addr

	// rest holds bytes read past the header that no Read has returned yet.
	restMu      sync.Mutex
	rest        []byte
	restPending atomic.Bool

	// mu guards the read deadline, which the header read shares with the
	// caller: while the header is read, the earliest of the caller's
	// deadline and the header deadline applies; afterwards the caller's.
	// SetReadDeadline on the socket is not blocking I/O, so it is called
	// with mu held.
	mu struct {
		sync.Mutex
		parsing  bool
		userRead time.Time
		hdrRead  time.Time
	}
}

// handshake reads the header once; every call returns the same result. ctx
// can shorten or interrupt the first read (it is ignored afterwards). On
// failure the connection is closed.
func (c *proxyConn) handshake(ctx context.Context) error {
	c.once.Do(func() {
		c.err = c.readHeader(ctx)
		if c.err != nil {
			c.logger.Debug("transport: PROXY header refused", "remote", c.Conn.RemoteAddr().String(), "err", c.err)
			_ = c.Conn.Close()
		}
	})
	return c.err
}

func (c *proxyConn) readHeader(ctx context.Context) (err error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.mu.Lock()
	c.mu.parsing = true
	c.mu.hdrRead = deadline
	err = c.Conn.SetReadDeadline(earliest(c.mu.userRead, deadline))
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProxyHeader, err)
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.mu.parsing {
			c.mu.hdrRead = aLongTimeAgo
			_ = c.Conn.SetReadDeadline(aLongTimeAgo)
		}
	})
	defer func() {
		stop()
		c.mu.Lock()
		c.mu.parsing = false
		if derr := c.Conn.SetReadDeadline(c.mu.userRead); derr != nil && err == nil {
			err = fmt.Errorf("%w: %w", ErrProxyHeader, derr)
		}
		c.mu.Unlock()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}()

	buf := make([]byte, 0, 256)
	for {
		hdrLen, more, perr := scanProxyHeader(buf)
		if perr != nil {
			return perr
		}
		if hdrLen > 0 {
			src, dst, known, perr := parseProxyHeader(buf[:hdrLen])
			if perr != nil {
				return perr
			}
			if known {
				c.remote = net.TCPAddrFromAddrPort(src)
				c.local = net.TCPAddrFromAddrPort(dst)
			}
			if len(buf) > hdrLen {
				c.rest = bytes.Clone(buf[hdrLen:])
				c.restPending.Store(true)
			}
			return nil
		}
		buf = slices.Grow(buf, more)
		n, rerr := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n == 0 && rerr != nil {
			return fmt.Errorf("%w: %w", ErrProxyHeader, rerr)
		}
	}
}

// scanProxyHeader looks at the first bytes of a connection. It returns the
// length of the complete header at the start of buf, or 0 and how many
// more bytes are needed at least, or an error as soon as buf cannot be the
// start of a header.
func scanProxyHeader(buf []byte) (hdrLen, more int, err error) {
	if len(buf) == 0 {
		return 0, 1, nil
	}
	switch buf[0] {
	case 'P':
		const prefix = "PROXY "
		if n := min(len(buf), len(prefix)); string(buf[:n]) != prefix[:n] {
			return 0, 0, fmt.Errorf("%w: does not start with %q", ErrProxyHeader, prefix)
		}
		window := buf[:min(len(buf), proxyV1MaxLen)]
		if i := bytes.IndexByte(window, '\n'); i >= 0 {
			if i == 0 || window[i-1] != '\r' {
				return 0, 0, fmt.Errorf("%w: v1 line ends with LF, not CRLF", ErrProxyHeader)
			}
			return i + 1, 0, nil
		}
		if len(buf) >= proxyV1MaxLen {
			return 0, 0, fmt.Errorf("%w: v1 header longer than %d bytes", ErrProxyHeader, proxyV1MaxLen)
		}
		return 0, 1, nil
	case proxyV2Sig[0]:
		if n := min(len(buf), len(proxyV2Sig)); !bytes.Equal(buf[:n], proxyV2Sig[:n]) {
			return 0, 0, fmt.Errorf("%w: bad v2 signature", ErrProxyHeader)
		}
		if len(buf) < proxyV2HdrLen {
			return 0, proxyV2HdrLen - len(buf), nil
		}
		bodyLen := int(binary.BigEndian.Uint16(buf[14:16]))
		if bodyLen > proxyV2MaxBody {
			return 0, 0, fmt.Errorf("%w: v2 header length %d exceeds %d", ErrProxyHeader, bodyLen, proxyV2MaxBody)
		}
		total := proxyV2HdrLen + bodyLen
		if len(buf) < total {
			return 0, total - len(buf), nil
		}
		return total, 0, nil
	default:
		return 0, 0, fmt.Errorf("%w: connection does not start with a PROXY header (first byte %#02x)", ErrProxyHeader, buf[0])
	}
}

// parseProxyHeader decodes one complete header as delimited by
// scanProxyHeader. known is false when the header carries no usable TCP
// addresses (v1 UNKNOWN, v2 LOCAL, v2 UDP, UNIX or unspecified family); the
// connection's real addresses then stay in force.
func parseProxyHeader(hdr []byte) (src, dst netip.AddrPort, known bool, err error) {
	if hdr[0] == 'P' {
		return parseProxyV1(hdr)
	}
	return parseProxyV2(hdr)
}

func parseProxyV1(hdr []byte) (src, dst netip.AddrPort, known bool, err error) {
	bad := func(format string, args ...any) (netip.AddrPort, netip.AddrPort, bool, error) {
		return netip.AddrPort{}, netip.AddrPort{}, false, fmt.Errorf("%w: v1: %s", ErrProxyHeader, fmt.Sprintf(format, args...))
	}
	line, ok := bytes.CutSuffix(hdr, []byte("\r\n"))
	if !ok || len(hdr) > proxyV1MaxLen {
		return bad("not a CRLF-terminated line of at most %d bytes", proxyV1MaxLen)
	}
	f := bytes.Split(line, []byte(" "))
	if string(f[0]) != "PROXY" || len(f) < 2 {
		return bad("does not start with \"PROXY \"")
	}
	proto := string(f[1])
	switch proto {
	case "UNKNOWN":
		// The spec: the receiver must ignore anything after UNKNOWN.
		return netip.AddrPort{}, netip.AddrPort{}, false, nil
	case "TCP4", "TCP6":
	default:
		return bad("unsupported protocol %q", proto)
	}
	if len(f) != 6 {
		return bad("%s line has %d fields, want 6", proto, len(f))
	}
	var ips [2]netip.Addr
	for i, s := range f[2:4] {
		ip, err := netip.ParseAddr(string(s))
		if err != nil || ip.Zone() != "" || (proto == "TCP4") != ip.Is4() {
			return bad("%q is not a %s address", s, proto)
		}
		ips[i] = ip
	}
	var ports [2]uint16
	for i, s := range f[4:6] {
		p, ok := parseProxyPort(s)
		if !ok {
			return bad("%q is not a port", s)
		}
		ports[i] = p
	}
	return netip.AddrPortFrom(ips[0], ports[0]), netip.AddrPortFrom(ips[1], ports[1]), true, nil
}

// parseProxyPort accepts a decimal number in [0, 65535] without sign or
// leading zeros.
func parseProxyPort(s []byte) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, b := range s {
		if b < '0' || b > '9' {
			return 0, false
		}
	}
	p, err := strconv.ParseUint(string(s), 10, 16)
	return uint16(p), err == nil
}

// v2 command, address family and transport protocol values.
const (
	proxyV2Local = 0x0
	proxyV2Proxy = 0x1

	proxyAFUnspec = 0x0
	proxyAFInet   = 0x1
	proxyAFInet6  = 0x2
	proxyAFUnix   = 0x3

	proxyTPUnspec = 0x0
	proxyTPStream = 0x1
	proxyTPDgram  = 0x2
)

func parseProxyV2(hdr []byte) (src, dst netip.AddrPort, known bool, err error) {
	bad := func(format string, args ...any) (netip.AddrPort, netip.AddrPort, bool, error) {
		return netip.AddrPort{}, netip.AddrPort{}, false, fmt.Errorf("%w: v2: %s", ErrProxyHeader, fmt.Sprintf(format, args...))
	}
	if len(hdr) < proxyV2HdrLen || !bytes.Equal(hdr[:len(proxyV2Sig)], proxyV2Sig) {
		return bad("short header or bad signature")
	}
	if n := int(binary.BigEndian.Uint16(hdr[14:16])); n != len(hdr)-proxyV2HdrLen {
		return bad("length field %d does not match %d bytes of body", n, len(hdr)-proxyV2HdrLen)
	}
	if v := hdr[12] >> 4; v != 2 {
		return bad("version %d, want 2", v)
	}
	switch cmd := hdr[12] & 0x0f; cmd {
	case proxyV2Local:
		// Health checks and the like from the proxy itself: the spec says
		// to use the real endpoints and ignore the rest, family included.
		return netip.AddrPort{}, netip.AddrPort{}, false, nil
	case proxyV2Proxy:
	default:
		return bad("unknown command %#x", cmd)
	}
	af, tp := hdr[13]>>4, hdr[13]&0x0f
	if af > proxyAFUnix || tp > proxyTPDgram {
		return bad("invalid family/transport byte %#02x", hdr[13])
	}
	body := hdr[proxyV2HdrLen:]
	// TLVs after the addresses are skipped: nothing here needs them.
	switch af {
	case proxyAFInet:
		if len(body) < 12 {
			return bad("INET address block is %d bytes, want 12", len(body))
		}
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case proxyAFInet6:
		if len(body) < 36 {
			return bad("INET6 address block is %d bytes, want 36", len(body))
		}
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	default: // UNSPEC or UNIX: no TCP address to report
		return netip.AddrPort{}, netip.AddrPort{}, false, nil
	}
	if tp != proxyTPStream {
		// UDP (or unspecified) is not what we accepted; treat as unknown.
		return netip.AddrPort{}, netip.AddrPort{}, false, nil
	}
	return src, dst, true, nil
}

// Read returns the bytes after the header; the first call reads the header.
func (c *proxyConn) Read(p []byte) (int, error) {
	if err := c.handshake(context.Background()); err != nil {
		return 0, err
	}
	if c.restPending.Load() {
		c.restMu.Lock()
		if len(c.rest) > 0 {
			n := copy(p, c.rest)
			c.rest = c.rest[n:]
			if len(c.rest) == 0 {
				c.rest = nil
				c.restPending.Store(false)
			}
			c.restMu.Unlock()
			return n, nil
		}
		c.restMu.Unlock()
	}
	return c.Conn.Read(p)
}

// RemoteAddr returns the client address from the header, or the real peer
// address when the header carries none or could not be read. It reads the
// header if that has not happened yet, so it may block up to the handshake
// timeout.
func (c *proxyConn) RemoteAddr() net.Addr {
	if c.handshake(context.Background()) == nil && c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the destination address from the header (the address
// the client connected to on the proxy), or the real local address. Like
// RemoteAddr it may read the header.
func (c *proxyConn) LocalAddr() net.Addr {
	if c.handshake(context.Background()) == nil && c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.userRead = t
	if c.mu.parsing {
		return c.Conn.SetReadDeadline(earliest(t, c.mu.hdrRead))
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *proxyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.Conn.SetWriteDeadline(t))
}

// earliest returns the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}
