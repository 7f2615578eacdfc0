package mqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/mqtt/auth"
	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

// ListenerKind names a transport.
type ListenerKind string

// The transports a Server can listen on.
const (
	TCP ListenerKind = "tcp" // MQTT over plain TCP
	TLS ListenerKind = "tls" // MQTT over TLS
	WS  ListenerKind = "ws"  // MQTT over WebSocket
	WSS ListenerKind = "wss" // MQTT over WebSocket over TLS
)

// ClientAuth says whether a TLS listener asks for client certificates.
type ClientAuth string

// Client-certificate modes of a TLS or WSS listener.
const (
	ClientAuthNone    ClientAuth = "none"    // no client certificate is asked for (default)
	ClientAuthRequest ClientAuth = "request" // asked for; verified against ClientCAFile when given
	ClientAuthRequire ClientAuth = "require" // required and verified against ClientCAFile
)

// TLSFiles names the PEM files of a TLS or WSS listener.
type TLSFiles struct {
	CertFile     string     // server certificate chain (required)
	KeyFile      string     // private key of CertFile (required)
	ClientCAFile string     // CAs that verify client certificates; required with ClientAuthRequire
	ClientAuth   ClientAuth // default ClientAuthNone
}

// Listener is one listening endpoint.
type Listener struct {
	// Kind is the transport. Required.
	Kind ListenerKind
	// Addr is host:port to listen on. Port 0 picks a free port (see Server.Addr).
	Addr string
	// Path is the HTTP path of a WS or WSS listener. Default "/mqtt".
	Path string
	// TLS holds the certificate files of a TLS or WSS listener.
	TLS TLSFiles
	// ProxyProtocol requires a PROXY protocol v1 or v2 header on every
	// connection; the client address it carries replaces the peer address.
	// Enable it only behind a load balancer that sends the header.
	ProxyProtocol bool
}

// V3Deny is how a denied v3 PUBLISH is answered.
type V3Deny string

// The answers to a denied v3 PUBLISH.
const (
	V3DenyDrop       V3Deny = "drop"
	V3DenyDisconnect V3Deny = "disconnect"
)

// Options configures a Server. The zero value of every field but Listeners
// means "use the default" documented on the field.
type Options struct {
	// Listeners to open. At least one.
	Listeners []Listener

	// ConnectTimeout bounds the time from accept (including the TLS, WebSocket
	// and PROXY handshakes) to a complete CONNECT packet. Default 10s.
	ConnectTimeout time.Duration
	// MaxConnections caps concurrently open connections; 0 means no cap.
	// A connection over the cap is answered CONNACK "quota exceeded" (v5)
	// or "server unavailable" (v3) and closed.
	MaxConnections int
	// ConnectRate caps accepted connections per second on each listener;
	// 0 means no cap. Over the rate the listener stops accepting until a
	// token is free, so the kernel's backlog absorbs the burst.
	ConnectRate float64
	// ConnectBurst is the token-bucket burst for ConnectRate. Default
	// max(1, ConnectRate).
	ConnectBurst int
	// MaxPacketSize is the largest packet, header included, the server
	// accepts; it is announced to v5 clients. Default 1 MiB; at most
	// 268435460 (the protocol's limit).
	MaxPacketSize int
	// MaxKeepAlive caps the keep-alive interval in seconds; 0 means no cap.
	// A v5 client asking for more (or for 0) is told the cap as Server Keep
	// Alive; a v3 client asking for more is refused ("identifier rejected"),
	// because v3 cannot be told.
	MaxKeepAlive uint16
	// MaxClientIDLength caps the client identifier in bytes. Default 65535.
	MaxClientIDLength int
	// WriteTimeout bounds a single write to a client. Default 10s.
	WriteTimeout time.Duration
	// DrainTimeout bounds graceful shutdown: after listeners close, clients
	// get a DISCONNECT and the server waits this long for connections to
	// close before cutting them. Default 5s.
	DrainTimeout time.Duration

	// Router is the dist service that routes published messages and holds
	// the subscriptions' routes. Required.
	Router Router
	// Inbox keeps persistent sessions (clean start 0, or a session expiry
	// over 0). Nil means every session is transient: v5 clients are told
	// a session expiry of 0, and v3 clean-session=0 clients get a session
	// that ends with the connection.
	Inbox SessionStore
	// Retain keeps retained messages. Nil means retain is unavailable: v5
	// clients are told so, and a v5 PUBLISH with RETAIN is a protocol
	// error (0x9A); a v3 one is routed without being kept.
	Retain RetainStore
	// Auth authenticates clients and checks their permissions. Nil means
	// auth.DevOnly: every client is tenant DevOnly and may do everything
	// (for development only; the caller should say so loudly).
	Auth auth.Provider
	// Settings answers each tenant's settings (limits, feature switches).
	// Nil means settings.Defaults for every tenant.
	Settings settings.Provider
	// Events receives client events (connect, disconnect, kicked, drops,
	// throttling, denials); every event is also counted in
	// bifromq_mqtt_events_total. Optional.
	Events EventCollector
	// DenySubscribeCode is the SUBACK reason code of a subscription the
	// ACL denies for a v5 client: 0x87 (not authorized, the default) or
	// 0x80 (unspecified error, which does not reveal that the filter
	// exists). v3 clients get 0x80.
	DenySubscribeCode packet.ReasonCode
	// DenyV3Publish says what happens to a v3 PUBLISH the ACL denies
	// (v3 has no negative acknowledgement): V3DenyDrop (default:
	// acknowledged and dropped) or V3DenyDisconnect.
	DenyV3Publish V3Deny
	// NodeID names this server's deliverer in the routes it adds (one
	// route per tenant and filter for all of its transient sessions).
	// It must be unique in the cluster and stable only for the process's
	// life. Default: random.
	NodeID string
	// MaxInflight is the outbound window of a v3 client: QoS 1 and 2
	// messages sent and not yet acknowledged. A v5 client's window is its
	// own Receive Maximum. Default 32.
	MaxInflight uint16
	// SessionQueue is how many QoS 1 and 2 messages may wait for a
	// session's outbound window; over it, new ones are dropped and
	// counted. Default 1000.
	SessionQueue int
	// QoS0Queue is how many QoS 0 messages may wait to be written to a
	// session; over it, new ones are dropped and counted. Default 1000.
	QoS0Queue int
	// QueueBudget bounds the bytes of all messages waiting in all
	// sessions' queues of this server, whatever the session count; over
	// it, new messages are dropped and counted. Default 256 MiB.
	QueueBudget int64
	// RouteTimeout bounds adding or removing a subscription's route.
	// Default 10s.
	RouteTimeout time.Duration

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's metrics. Nil means metrics are kept
	// but not registered anywhere.
	Registerer prometheus.Registerer
}

// Defaults of Options.
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultMaxPacketSize     = 1 << 20
	DefaultMaxClientIDLength = 65535
	DefaultWriteTimeout      = 10 * time.Second
	DefaultDrainTimeout      = 5 * time.Second
	DefaultWSPath            = "/mqtt"
	DefaultMaxInflight       = 32
	DefaultSessionQueue      = 1000
	DefaultQoS0Queue         = 1000
	DefaultQueueBudget       = 256 << 20
	DefaultRouteTimeout      = 10 * time.Second

	maxProtocolPacketSize = 268435455 + 5
)

// ErrInvalidOptions is wrapped by every error Validate returns.
var ErrInvalidOptions = errors.New("mqtt: invalid options")

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.ConnectRate > 0 && o.ConnectBurst == 0 {
		o.ConnectBurst = max(1, int(o.ConnectRate))
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.MaxClientIDLength == 0 {
		o.MaxClientIDLength = DefaultMaxClientIDLength
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.NodeID == "" {
		o.NodeID = randomID()
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.SessionQueue == 0 {
		o.SessionQueue = DefaultSessionQueue
	}
	if o.QoS0Queue == 0 {
		o.QoS0Queue = DefaultQoS0Queue
	}
	if o.QueueBudget == 0 {
		o.QueueBudget = DefaultQueueBudget
	}
	if o.RouteTimeout == 0 {
		o.RouteTimeout = DefaultRouteTimeout
	}
	if o.Auth == nil {
		o.Auth = auth.DevOnly{}
	}
	if o.Settings == nil {
		// The defaults are valid, so NewStatic cannot fail here.
		o.Settings, _ = settings.NewStatic(settings.Defaults(), nil)
	}
	if o.DenySubscribeCode == 0 {
		o.DenySubscribeCode = packet.NotAuthorized
	}
	if o.DenyV3Publish == "" {
		o.DenyV3Publish = V3DenyDrop
	}

	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	for i := range o.Listeners {
		l := &o.Listeners[i]
		if (l.Kind == WS || l.Kind == WSS) && l.Path == "" {
			l.Path = DefaultWSPath
		}
		if l.TLS.ClientAuth == "" {
			l.TLS.ClientAuth = ClientAuthNone
		}
	}
	return o
}

// Validate reports every problem of o at once, each naming its field. Call
// it after EnsureDefaults.
func (o *Options) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if len(o.Listeners) == 0 {
		add("Listeners: at least one listener is required")
	}
	for i, l := range o.Listeners {
		f := fmt.Sprintf("Listeners[%d]", i)
		switch l.Kind {
		case TCP, WS:
		case TLS, WSS:
			if l.TLS.CertFile == "" {
				add("%s.TLS.CertFile: required for a %s listener", f, l.Kind)
			}
			if l.TLS.KeyFile == "" {
				add("%s.TLS.KeyFile: required for a %s listener", f, l.Kind)
			}
			switch l.TLS.ClientAuth {
			case ClientAuthNone, ClientAuthRequest:
			case ClientAuthRequire:
				if l.TLS.ClientCAFile == "" {
					add("%s.TLS.ClientCAFile: required when ClientAuth is %q", f, ClientAuthRequire)
				}
			default:
				add("%s.TLS.ClientAuth: %q is not one of none, request, require", f, l.TLS.ClientAuth)
			}
		default:
			add("%s.Kind: %q is not one of tcp, tls, ws, wss", f, l.Kind)
		}
		if l.Addr == "" {
			add("%s.Addr: required", f)
		}
		if (l.Kind == WS || l.Kind == WSS) && !strings.HasPrefix(l.Path, "/") {
			add("%s.Path: %q must start with /", f, l.Path)
		}
	}
	if o.ConnectTimeout < 0 {
		add("ConnectTimeout: %v is negative", o.ConnectTimeout)
	}
	if o.MaxConnections < 0 {
		add("MaxConnections: %d is negative", o.MaxConnections)
	}
	if o.ConnectRate < 0 {
		add("ConnectRate: %v is negative", o.ConnectRate)
	}
	if o.ConnectBurst < 0 {
		add("ConnectBurst: %d is negative", o.ConnectBurst)
	}
	if o.MaxPacketSize < 64 || o.MaxPacketSize > maxProtocolPacketSize {
		add("MaxPacketSize: %d is outside [64, %d]", o.MaxPacketSize, maxProtocolPacketSize)
	}
	if o.MaxClientIDLength < 1 || o.MaxClientIDLength > 65535 {
		add("MaxClientIDLength: %d is outside [1, 65535]", o.MaxClientIDLength)
	}
	if o.WriteTimeout < 0 {
		add("WriteTimeout: %v is negative", o.WriteTimeout)
	}
	if o.DrainTimeout < 0 {
		add("DrainTimeout: %v is negative", o.DrainTimeout)
	}
	if o.Router == nil {
		add("Router: required")
	}
	if strings.IndexByte(o.NodeID, 0) >= 0 {
		add("NodeID: contains a 0 byte")
	}
	if o.SessionQueue < 0 {
		add("SessionQueue: %d is negative", o.SessionQueue)
	}
	if o.QoS0Queue < 0 {
		add("QoS0Queue: %d is negative", o.QoS0Queue)
	}
	if o.QueueBudget < 0 {
		add("QueueBudget: %d is negative", o.QueueBudget)
	}
	if o.RouteTimeout < 0 {
		add("RouteTimeout: %v is negative", o.RouteTimeout)
	}
	if o.DenySubscribeCode != packet.NotAuthorized && o.DenySubscribeCode != packet.UnspecifiedError {
		add("DenySubscribeCode: %#x is not 0x87 or 0x80", byte(o.DenySubscribeCode))
	}
	if o.DenyV3Publish != V3DenyDrop && o.DenyV3Publish != V3DenyDisconnect {
		add("DenyV3Publish: %q is not drop or disconnect", o.DenyV3Publish)
	}

	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(probs, "; "))
}
