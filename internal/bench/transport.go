package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bifromq-go/bifromq/internal/rawconn"
	"github.com/bifromq-go/bifromq/internal/wsconn"
)

// dialer opens the byte stream of one client: TCP, TLS, WebSocket or WSS.
// It is safe for concurrent use.
type dialer struct {
	addr  string      // host:port the TCP connection goes to
	tls   *tls.Config // nil for plain TCP or WebSocket
	wsURL string      // ws:// or wss:// URL; empty for TCP and TLS

	// WebSocket buffer sizes. A flush of the client's bufio.Writer is one
	// binary message, in frames of up to wsWrite bytes.
	wsRead, wsWrite int
}

// newDialer returns the dialer of o, connecting to addr (host:port, where
// host may be an address resolveTarget chose).
func newDialer(o *options, addr string) (*dialer, error) {
	d := &dialer{addr: addr, wsRead: 4 << 10, wsWrite: 4 << 10}
	switch o.scenario {
	case scenarioPub:
		d.wsWrite = writeBufferSize(o)
	case scenarioSub:
		d.wsRead = 64 << 10
	}
	if o.tls {
		cfg := &tls.Config{ServerName: o.host, InsecureSkipVerify: o.insecure, MinVersion: tls.VersionTLS12}
		if o.cafile != "" {
			pem, err := os.ReadFile(o.cafile)
			if err != nil {
				return nil, fmt.Errorf("-cafile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-cafile %s: no PEM certificate", o.cafile)
			}
			cfg.RootCAs = pool
		}
		d.tls = cfg
	}
	if o.ws {
		u := url.URL{Scheme: "ws", Host: net.JoinHostPort(o.host, strconv.Itoa(o.port)), Path: o.path}
		if o.tls {
			u.Scheme = "wss"
		}
		d.wsURL = u.String()
	}
	return d, nil
}

// dial opens a connection; ctx bounds the dial and the TLS and WebSocket
// handshakes.
func (d *dialer) dial(ctx context.Context) (net.Conn, error) {
	var nd net.Dialer
	if d.wsURL != "" {
		wd := websocket.Dialer{
			NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return nd.DialContext(ctx, network, d.addr)
			},
			TLSClientConfig: d.tls,
			Subprotocols:    []string{"mqtt"},
			ReadBufferSize:  d.wsRead,
			WriteBufferSize: d.wsWrite,
		}
		ws, resp, err := wd.DialContext(ctx, d.wsURL, nil)
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("websocket %s: %w (HTTP %s)", d.wsURL, err, resp.Status)
			}
			return nil, fmt.Errorf("websocket %s: %w", d.wsURL, err)
		}
		if ws.Subprotocol() != "mqtt" {
			ws.Close()
			return nil, fmt.Errorf("websocket %s: server chose subprotocol %q, not mqtt", d.wsURL, ws.Subprotocol())
		}
		return wsconn.New(ws), nil
	}
	if d.tls != nil {
		td := tls.Dialer{NetDialer: &nd, Config: d.tls}
		return td.DialContext(ctx, "tcp", d.addr)
	}
	c, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true) // writes are batched by the client's bufio.Writer
		if rc, err := rawconn.New(tc); err == nil {
			return rc, nil // raw system calls: less of the tool's own overhead in the figures
		}
	}
	return c, nil
}

// resolveTarget returns the host:port to dial. Without -allow-remote it
// refuses (errNotLoopback) a host any of whose addresses is not loopback,
// and dials the address it checked (IPv4 first), so a second resolution
// cannot lead elsewhere.
func resolveTarget(ctx context.Context, o *options) (string, error) {
	port := strconv.Itoa(o.port)
	if o.allowRemote {
		return net.JoinHostPort(o.host, port), nil
	}
	var ips []net.IP
	if ip := net.ParseIP(o.host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, o.host)
		if err != nil {
			return "", fmt.Errorf("%w: cannot resolve -h %s to check it: %v", errNotLoopback, o.host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("%w: -h %s has no address", errNotLoopback, o.host)
	}
	best := ips[0]
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return "", fmt.Errorf("%w: -h %s is %s; bench only loads this host unless -allow-remote is given",
				errNotLoopback, o.host, ip)
		}
		if ip.To4() != nil && best.To4() == nil {
			best = ip
		}
	}
	return net.JoinHostPort(best.String(), port), nil
}
