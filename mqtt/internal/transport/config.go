package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/internal/wsconn"
)

// The listener kinds Listen knows.
const (
	KindTCP = "tcp" // MQTT over plain TCP
	KindTLS = "tls" // MQTT over TLS
	KindWS  = "ws"  // MQTT over WebSocket
	KindWSS = "wss" // MQTT over WebSocket over TLS
)

// Defaults of Config.
const (
	DefaultPath             = "/mqtt"
	DefaultHandshakeTimeout = 10 * time.Second
)

// Errors of this package. Each error returned is one of these, wraps one of
// these, or comes from the network or the standard library.
var (
	// ErrInvalidConfig is wrapped by every error of Config.Validate (and so
	// by Listen's errors about the configuration).
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrProxyHeader is wrapped by every failure to read a PROXY protocol
	// header: a malformed or oversized header, or no header at all
	// (timeout, EOF), in which case the I/O error is wrapped too.
	ErrProxyHeader = errors.New("transport: bad or missing PROXY protocol header")
	// ErrTextFrame is returned by Read on a WebSocket connection whose
	// client sent a text frame; MQTT is carried in binary frames only
	// (MQTT 5.0 §6.0). The connection has been closed.
	ErrTextFrame = wsconn.ErrTextFrame
)

// Config describes one listener. The zero value of a field means "use the
// default" where a default is documented.
type Config struct {
	// Kind is the transport: "tcp", "tls", "ws" or "wss" (see KindTCP...).
	// Required.
	Kind string
	// Addr is the host:port to listen on; port 0 picks a free port (read it
	// back with the listener's Addr). Required.
	Addr string
	// Path is the only HTTP path a "ws" or "wss" listener upgrades; any
	// other path is answered 404. It must start with "/". Default "/mqtt".
	// Ignored by "tcp" and "tls".
	Path string
	// TLS is the server configuration of a "tls" or "wss" listener
	// (required there; see LoadTLS). It must carry a certificate
	// (Certificates, GetCertificate or GetConfigForClient). Listen uses a
	// clone, so later changes to it have no effect. Ignored by "tcp" and
	// "ws".
	TLS *tls.Config
	// ProxyProtocol requires every connection to start with a PROXY
	// protocol v1 or v2 header (as sent by HAProxy, AWS NLB, ...); the
	// addresses it carries become the connection's RemoteAddr and LocalAddr.
	// A connection without a valid header fails. Enable it only behind a
	// proxy that always sends the header: anyone who can reach the port can
	// claim any address.
	ProxyProtocol bool
	// HandshakeTimeout bounds the reading of the PROXY header and, for "ws"
	// and "wss", the HTTP upgrade (request headers, TLS handshake of "wss",
	// the 101 response). It does not bound the TLS handshake of a "tls"
	// listener, which runs under the caller's deadlines (see Handshake).
	// Default 10s.
	HandshakeTimeout time.Duration
	// Logger receives the listener's diagnostics (refused upgrades and bad
	// PROXY headers at Debug level). Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Path == "" && (c.Kind == KindWS || c.Kind == KindWSS) {
		c.Path = DefaultPath
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of c at once, in one error wrapping
// ErrInvalidConfig. Zero fields that have a default are valid.
func (c Config) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	switch c.Kind {
	case KindTCP, KindWS:
	case KindTLS, KindWSS:
		switch {
		case c.TLS == nil:
			add("TLS: required for a %s listener", c.Kind)
		case len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil:
			add("TLS: has no certificate (Certificates, GetCertificate or GetConfigForClient)")
		}
	case "":
		add("Kind: required (one of tcp, tls, ws, wss)")
	default:
		add("Kind: %q is not one of tcp, tls, ws, wss", c.Kind)
	}
	if c.Addr == "" {
		add("Addr: required")
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		add("Addr: %q is not host:port: %v", c.Addr, err)
	}
	if (c.Kind == KindWS || c.Kind == KindWSS) && c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		add("Path: %q must start with /", c.Path)
	}
	if c.HandshakeTimeout < 0 {
		add("HandshakeTimeout: %v is negative", c.HandshakeTimeout)
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(probs, "; "))
}
