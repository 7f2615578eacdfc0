package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
)

// Listen opens the listener that cfg describes (after filling defaults and
// validating it). Its Accept returns connections that carry raw MQTT bytes;
// see the package documentation for what each kind returns and for the
// guarantees of Accept and Close.
func Listen(cfg Config) (net.Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s on %s: %w", cfg.Kind, cfg.Addr, err)
	}
	var ln net.Listener = tcp
	if cfg.ProxyProtocol {
		ln = &proxyListener{Listener: ln, timeout: cfg.HandshakeTimeout, logger: cfg.Logger}
	}
	switch cfg.Kind {
	case KindTLS:
		ln = tls.NewListener(ln, cfg.TLS.Clone())
	case KindWS, KindWSS:
		if cfg.Kind == KindWSS {
			tc := cfg.TLS.Clone()
			// The upgrade is HTTP/1.1 only: never let ALPN pick h2.
			tc.NextProtos = []string{"http/1.1"}
			ln = tls.NewListener(ln, tc)
		}
		return newWSListener(ln, cfg), nil
	}
	return &streamListener{Listener: ln}, nil
}

// streamListener is the "tcp" and "tls" listener: the stack of
// net.Listener, PROXY and TLS wrappers, with an idempotent Close.
type streamListener struct {
	net.Listener
	closeOnce sync.Once
	closeErr  error
}

func (l *streamListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// Handshake completes whatever handshake c still needs before MQTT bytes
// flow: the PROXY header read and then, for a "tls" connection, the TLS
// handshake. Connections of "tcp" without PROXY protocol and of "ws"/"wss"
// (whose handshakes finish before Accept returns them) need none. Without
// Handshake the same work happens lazily on the first Read, so calling it
// is optional; it exists so that the server can run it under its connect
// deadline through ctx and can tell handshake failures apart.
//
// ctx bounds the work: on expiry or cancellation the handshake fails and
// the connection is closed. The PROXY header read is bounded by the
// listener's HandshakeTimeout in any case, the TLS handshake only by ctx
// and c's deadlines. Repeated calls return the first result. On failure
// the caller should Close c; errors.Is(err, ErrProxyHeader) tells a PROXY
// failure from a TLS one. For a conn of another origin Handshake does
// nothing and returns nil.
func Handshake(ctx context.Context, c net.Conn) error {
	switch x := c.(type) {
	case *proxyConn:
		return x.handshake(ctx)
	case *tls.Conn:
		if pc, ok := x.NetConn().(*proxyConn); ok {
			if err := pc.handshake(ctx); err != nil {
				return err
			}
		}
		if err := x.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("transport: TLS handshake with %s: %w", x.RemoteAddr(), err)
		}
	}
	return nil
}

// PeerCertificates returns the certificate chain the client presented in
// the TLS handshake of a "tls" or "wss" connection, leaf first, or nil when
// there is none: no client certificate, no TLS, or (for "tls") the
// handshake has not completed yet (call Handshake first). With client auth
// "require", or "request" with a CA file, the chain has been verified.
func PeerCertificates(c net.Conn) []*x509.Certificate {
	var certs []*x509.Certificate
	switch x := c.(type) {
	case *tls.Conn:
		if cs := x.ConnectionState(); cs.HandshakeComplete {
			certs = cs.PeerCertificates
		}
	case *wsConn:
		if x.tlsState != nil {
			certs = x.tlsState.PeerCertificates
		}
	}
	if len(certs) == 0 {
		return nil
	}
	return certs
}
