package apiserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Server. The zero value of every field means "use the
// default" documented on the field.
type Options struct {
	// Addr is the host:port to listen on. Port 0 picks a free port (see
	// Server.Addr). Default DefaultAddr, which serves only this host; use
	// "0.0.0.0:8091" (or ":8091") to serve the network.
	Addr string
	// Token, when set, is required as "Authorization: Bearer <Token>" by every
	// endpoint except /healthz. Empty means no authentication.
	Token string

	// Gatherer is what GET /metrics exposes. Nil means: when Registerer is
	// nil too, a private registry holding only this server's own metrics;
	// otherwise an empty exposition.
	Gatherer prometheus.Gatherer
	// Registerer receives this server's own metrics. Nil means they are
	// kept but not registered anywhere (see Gatherer for the exception).
	Registerer prometheus.Registerer
	// Ready reports readiness for GET /readyz: nil means ready, an error is
	// the reason it is not. It is called on request goroutines, possibly
	// concurrently, and must return quickly. Nil means always ready.
	Ready func() error

	// ReadTimeout bounds reading one request, header and body. Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 10s.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Default 60s.
	IdleTimeout time.Duration
	// ReadBufferSize bounds the request header in bytes. Default 8 KiB.
	ReadBufferSize int
	// MaxRequestBodySize bounds a request body in bytes. Default 1 MiB.
	MaxRequestBodySize int
	// Concurrency caps the connections served at once. Default 256.
	Concurrency int
	// ShutdownTimeout bounds how long Close lets requests in flight finish
	// before it cuts their connections. Default 5s.
	ShutdownTimeout time.Duration

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultAddr               = "127.0.0.1:8091"
	DefaultReadTimeout        = 10 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultIdleTimeout        = 60 * time.Second
	DefaultReadBufferSize     = 8 << 10
	DefaultMaxRequestBodySize = 1 << 20
	DefaultConcurrency        = 256
	DefaultShutdownTimeout    = 5 * time.Second
)

// ErrInvalidOptions is wrapped by every error Validate returns.
var ErrInvalidOptions = errors.New("apiserver: invalid options")

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Gatherer == nil && o.Registerer == nil {
		reg := prometheus.NewRegistry()
		o.Gatherer, o.Registerer = reg, reg
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.Gatherers{}
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ReadBufferSize == 0 {
		o.ReadBufferSize = DefaultReadBufferSize
	}
	if o.MaxRequestBodySize == 0 {
		o.MaxRequestBodySize = DefaultMaxRequestBodySize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports every problem of o at once, each naming its field. Call
// it after EnsureDefaults.
func (o *Options) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if err := checkAddr(o.Addr); err != nil {
		add("Addr: %v", err)
	}
	if strings.ContainsFunc(o.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		add("Token: must not contain spaces or control characters")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ReadTimeout", o.ReadTimeout},
		{"WriteTimeout", o.WriteTimeout},
		{"IdleTimeout", o.IdleTimeout},
		{"ShutdownTimeout", o.ShutdownTimeout},
	} {
		if d.v < 0 {
			add("%s: %v is negative", d.name, d.v)
		}
	}
	if o.ReadBufferSize < 1024 {
		add("ReadBufferSize: %d is below 1024", o.ReadBufferSize)
	}
	if o.MaxRequestBodySize < 0 {
		add("MaxRequestBodySize: %d is negative", o.MaxRequestBodySize)
	}
	if o.Concurrency < 0 {
		add("Concurrency: %d is negative", o.Concurrency)
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(probs, "; "))
}

// checkAddr reports whether a is a host:port with a numeric port.
func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port must be a number in [0, 65535]", a)
	}
	return nil
}
