package standalone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/mqtt/auth"
	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

// Off, as a listener address, disables that listener.
const Off = "off"

// Config is a node's configuration: the YAML file's schema (keys are the
// yaml tags below) and what the command-line flags override. Every field has
// a default (see DefaultConfig), so a node needs no file at all.
//
// The default addresses bind 127.0.0.1: a node started without configuration
// serves only this host. To serve the network, listen on a routable address or
// on all interfaces ("0.0.0.0:1883", or ":1883").
type Config struct {
	// DataDir holds all of the node's state, and the LOCK file that keeps a
	// second node off it. Created (mode 0750) when missing. Default "./data".
	DataDir string `yaml:"dataDir"`
	// Log configures the process's logs (written to stderr).
	Log LogConfig `yaml:"log"`
	// MQTT configures the MQTT listeners and the protocol's bounds.
	MQTT MQTTConfig `yaml:"mqtt"`
	// API configures the HTTP API (metrics, health, and later the tenant and
	// cluster endpoints).
	API APIConfig `yaml:"api"`
	// Cluster configures membership and replication: gossip uses Env,
	// Bind, Advertise and Seeds; the stores' Raft transport RaftAddr.
	Cluster ClusterConfig `yaml:"cluster"`
	// Store configures the replicated stores (routes, sessions, retained
	// messages).
	Store StoreConfig `yaml:"store"`
	// Auth chooses how clients are authenticated and authorized.
	Auth AuthConfig `yaml:"auth"`
	// Tenants holds the tenant settings: defaults and per-tenant
	// overrides.
	Tenants TenantsConfig `yaml:"tenants"`
}

// AuthConfig configures authentication and authorization.
type AuthConfig struct {
	// Provider is dev (every client is tenant DevOnly and may do
	// everything: for development only, and the broker says so at
	// start), file, webhook or jwt. Default dev.
	Provider string `yaml:"provider"`
	// UsersFile is the users file of the file provider (see
	// mqtt/auth.UsersFile).
	UsersFile string `yaml:"usersFile"`
	// Webhook configures the webhook provider.
	Webhook WebhookConfig `yaml:"webhook"`
	// JWT configures the jwt provider.
	JWT JWTConfig `yaml:"jwt"`
	// DenySubscribeCode is the v5 SUBACK code of a denied subscription:
	// notAuthorized (0x87) or unspecified (0x80, which does not reveal
	// the denial). Default notAuthorized.
	DenySubscribeCode string `yaml:"denySubscribeCode"`
	// V3PublishDenied is what a denied v3 PUBLISH gets: drop (it is
	// acknowledged and dropped) or disconnect. Default drop.
	V3PublishDenied string `yaml:"v3PublishDenied"`
}

// WebhookConfig configures the webhook provider.
type WebhookConfig struct {
	// URL receives a POST of the credentials as JSON.
	URL string `yaml:"url"`
	// Timeout bounds one call. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// CacheTTL keeps successful answers this long; 0 disables the cache.
	// Default 0.
	CacheTTL time.Duration `yaml:"cacheTTL"`
}

// JWTConfig configures the jwt provider: exactly one of secretFile
// (HS256) and publicKeyFile (RS256).
type JWTConfig struct {
	// SecretFile holds the HS256 key (its bytes, trailing newline
	// trimmed).
	SecretFile string `yaml:"secretFile"`
	// PublicKeyFile is a PEM RSA public key for RS256.
	PublicKeyFile string `yaml:"publicKeyFile"`
	// TenantClaim and UserClaim name the claims. Defaults tenant, sub.
	TenantClaim string `yaml:"tenantClaim"`
	UserClaim   string `yaml:"userClaim"`
	// Method is the v5 enhanced-authentication method carrying the token.
	// Default JWT.
	Method string `yaml:"method"`
}

// TenantsConfig holds the tenant settings (mqtt/settings.Settings).
type TenantsConfig struct {
	// Defaults apply to every tenant. Defaults: BifroMQ's.
	Defaults settings.Settings `yaml:"defaults"`
	// Overrides maps a tenant to the settings it changes; what a tenant
	// leaves out comes from Defaults.
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

// TenantSettings returns each overridden tenant's complete settings:
// Defaults with the tenant's keys applied.
func (t *TenantsConfig) TenantSettings() (map[string]settings.Settings, error) {
	out := make(map[string]settings.Settings, len(t.Overrides))
	var errs []error
	for tenant, n := range t.Overrides {
		b, err := yaml.Marshal(&n)
		if err == nil {
			s := t.Defaults
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			if err = dec.Decode(&s); err == nil || errors.Is(err, io.EOF) {
				out[tenant], err = s, nil
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tenants.overrides.%s: %v", tenant, err))
		}
	}
	return out, errors.Join(errs...)
}

// StoreConfig configures the node's basekv stores.
type StoreConfig struct {
	// LogDB is the memory budget of the Raft log: tiny (~256 MB at most),
	// small (~1 GB) or default (~8 GB). Default small.
	LogDB string `yaml:"logDB"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is the least severe level logged: debug, info, warn or error.
	// Default info.
	Level string `yaml:"level"`
	// Format is text (key=value lines) or json (one object per line).
	// Default text.
	Format string `yaml:"format"`
}

// ListenerConfig is the part every MQTT listener has.
type ListenerConfig struct {
	// Addr is host:port to listen on, or "off" to disable the listener.
	// Port 0 picks a free port.
	Addr string `yaml:"addr"`
	// ProxyProtocol requires a PROXY protocol (v1 or v2) header on every
	// connection, whose client address replaces the peer's. Enable it only
	// behind a load balancer that sends the header. Default false.
	ProxyProtocol bool `yaml:"proxyProtocol"`
}

// TLSConfig names the PEM files of a TLS or WSS listener.
type TLSConfig struct {
	// CertFile is the server's certificate chain. Required when the
	// listener is on.
	CertFile string `yaml:"certFile"`
	// KeyFile is CertFile's private key. Required when the listener is on.
	KeyFile string `yaml:"keyFile"`
	// ClientCAFile holds the CAs that verify client certificates. Required
	// when ClientAuth is require.
	ClientCAFile string `yaml:"clientCAFile"`
	// ClientAuth says whether clients are asked for a certificate: none,
	// request (verified when given) or require. Default none.
	ClientAuth string `yaml:"clientAuth"`
}

// TCPListenerConfig is MQTT over plain TCP.
type TCPListenerConfig struct {
	ListenerConfig `yaml:",inline"`
}

// TLSListenerConfig is MQTT over TLS.
type TLSListenerConfig struct {
	ListenerConfig `yaml:",inline"`
	TLSConfig      `yaml:",inline"`
}

// WSListenerConfig is MQTT over WebSocket.
type WSListenerConfig struct {
	ListenerConfig `yaml:",inline"`
	// Path is the HTTP path of the WebSocket endpoint. Default "/mqtt".
	Path string `yaml:"path"`
}

// WSSListenerConfig is MQTT over WebSocket over TLS.
type WSSListenerConfig struct {
	ListenerConfig `yaml:",inline"`
	// Path is the HTTP path of the WebSocket endpoint. Default "/mqtt".
	Path      string `yaml:"path"`
	TLSConfig `yaml:",inline"`
}

// MQTTConfig configures the MQTT frontend. See mqtt.Options for what each
// bound does.
type MQTTConfig struct {
	// TCP is MQTT over TCP. Default addr 127.0.0.1:1883.
	TCP TCPListenerConfig `yaml:"tcp"`
	// TLS is MQTT over TLS. Default off (it needs a certificate); the
	// customary port is 8883.
	TLS TLSListenerConfig `yaml:"tls"`
	// WS is MQTT over WebSocket. Default addr 127.0.0.1:8080, path /mqtt.
	WS WSListenerConfig `yaml:"ws"`
	// WSS is MQTT over secure WebSocket. Default off (it needs a
	// certificate); the customary port is 8443.
	WSS WSSListenerConfig `yaml:"wss"`

	// ConnectTimeout bounds the time from accept (TLS, WebSocket and PROXY
	// handshakes included) to a complete CONNECT. Default 10s.
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	// MaxConnections caps open connections; 0 means no cap. Default 0.
	MaxConnections int `yaml:"maxConnections"`
	// ConnectRate caps accepted connections per second per listener; 0
	// means no cap. Default 0.
	ConnectRate float64 `yaml:"connectRate"`
	// ConnectBurst is the token-bucket burst of ConnectRate; 0 means
	// max(1, connectRate). Default 0.
	ConnectBurst int `yaml:"connectBurst"`
	// MaxPacketSize is the largest packet accepted, in bytes, header
	// included; in [64, 268435460]. Default 1048576.
	MaxPacketSize int `yaml:"maxPacketSize"`
	// MaxKeepAlive caps the keep-alive interval, in seconds; 0 means no cap;
	// at most 65535. Default 0.
	MaxKeepAlive int `yaml:"maxKeepAlive"`
	// MaxClientIDLength caps the client identifier, in bytes; in
	// [1, 65535]. Default 65535.
	MaxClientIDLength int `yaml:"maxClientIDLength"`
	// WriteTimeout bounds one write to a client. Default 10s.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// DrainTimeout bounds graceful shutdown: how long clients told to
	// disconnect get before their connections are cut. Default 5s.
	DrainTimeout time.Duration `yaml:"drainTimeout"`
	// MaxInflight is a v3 client's outbound window of unacknowledged QoS
	// 1/2 messages (a v5 client's is its Receive Maximum); in [1, 65535].
	// Default 32.
	MaxInflight int `yaml:"maxInflight"`
	// SessionQueue is how many QoS 1/2 messages may wait for a session's
	// outbound window before new ones are dropped; at least 1. Default 1000.
	SessionQueue int `yaml:"sessionQueue"`
	// QoS0Queue is how many QoS 0 messages may wait to be written to a
	// session before new ones are dropped; at least 1. Default 1000.
	QoS0Queue int `yaml:"qos0Queue"`
	// QueueBudget bounds the bytes of all messages waiting in all sessions'
	// queues; over it new ones are dropped; at least 1. Default 268435456.
	QueueBudget int64 `yaml:"queueBudget"`
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Addr is host:port of the HTTP API, or "off". Default 127.0.0.1:8091.
	Addr string `yaml:"addr"`
	// Token, when set, is required as "Authorization: Bearer <token>" by
	// every endpoint except /healthz. Default empty (no authentication).
	Token string `yaml:"token"`
}

// ClusterConfig configures clustering: gossip membership now, Raft once the
// broker's stores run on basekv.
type ClusterConfig struct {
	// Env names the cluster; nodes of another env are never joined.
	// Default "bifromq".
	Env string `yaml:"env"`
	// Bind is host:port for gossip (TCP and UDP). Default 127.0.0.1:7946.
	Bind string `yaml:"bind"`
	// Advertise is the host:port other nodes reach Bind at, when it differs
	// (NAT, containers). Default empty: Bind.
	Advertise string `yaml:"advertise"`
	// RaftAddr is host:port of the Raft transport; port 0 picks a free
	// port at each start. Default 127.0.0.1:7947.
	RaftAddr string `yaml:"raftAddr"`
	// Seeds are host:port gossip addresses of nodes to join; empty starts a
	// new cluster. Default empty.
	Seeds []string `yaml:"seeds"`
}

// DefaultConfig returns the configuration of a node started with no file and
// no flags.
func DefaultConfig() Config {
	return Config{
		DataDir: "./data",
		Log:     LogConfig{Level: "info", Format: "text"},
		MQTT: MQTTConfig{
			TCP: TCPListenerConfig{ListenerConfig{Addr: "127.0.0.1:1883"}},
			TLS: TLSListenerConfig{
				ListenerConfig: ListenerConfig{Addr: Off},
				TLSConfig:      TLSConfig{ClientAuth: string(mqtt.ClientAuthNone)},
			},
			WS: WSListenerConfig{ListenerConfig: ListenerConfig{Addr: "127.0.0.1:8080"}, Path: mqtt.DefaultWSPath},
			WSS: WSSListenerConfig{
				ListenerConfig: ListenerConfig{Addr: Off},
				Path:           mqtt.DefaultWSPath,
				TLSConfig:      TLSConfig{ClientAuth: string(mqtt.ClientAuthNone)},
			},
			ConnectTimeout:    mqtt.DefaultConnectTimeout,
			MaxPacketSize:     mqtt.DefaultMaxPacketSize,
			MaxClientIDLength: mqtt.DefaultMaxClientIDLength,
			WriteTimeout:      mqtt.DefaultWriteTimeout,
			DrainTimeout:      mqtt.DefaultDrainTimeout,
			MaxInflight:       mqtt.DefaultMaxInflight,
			SessionQueue:      mqtt.DefaultSessionQueue,
			QoS0Queue:         mqtt.DefaultQoS0Queue,
			QueueBudget:       mqtt.DefaultQueueBudget,
		},
		Store:   StoreConfig{LogDB: string(basekv.LogDBSmall)},
		Auth:    AuthConfig{Provider: "dev", DenySubscribeCode: "notAuthorized", V3PublishDenied: "drop"},
		Tenants: TenantsConfig{Defaults: settings.Defaults()},
		API:     APIConfig{Addr: "127.0.0.1:8091"},
		Cluster: ClusterConfig{
			Env:      "bifromq",
			Bind:     "127.0.0.1:7946",
			RaftAddr: "127.0.0.1:7947",
		},
	}
}

// isOff reports whether a listener address disables its listener.
func isOff(addr string) bool { return strings.EqualFold(addr, Off) }

// MQTTOptions returns the mqtt.Options of c: one listener per MQTT address
// that is not off, and the bounds. Logger and Registerer are left for the
// caller. Call it on a valid Config.
func (c *Config) MQTTOptions() mqtt.Options {
	m := &c.MQTT
	o := mqtt.Options{
		ConnectTimeout:    m.ConnectTimeout,
		MaxConnections:    m.MaxConnections,
		ConnectRate:       m.ConnectRate,
		ConnectBurst:      m.ConnectBurst,
		MaxPacketSize:     m.MaxPacketSize,
		MaxKeepAlive:      uint16(m.MaxKeepAlive),
		MaxClientIDLength: m.MaxClientIDLength,
		WriteTimeout:      m.WriteTimeout,
		DrainTimeout:      m.DrainTimeout,
		MaxInflight:       uint16(m.MaxInflight),
		SessionQueue:      m.SessionQueue,
		QoS0Queue:         m.QoS0Queue,
		QueueBudget:       m.QueueBudget,
		DenyV3Publish:     mqtt.V3Deny(c.Auth.V3PublishDenied),
	}
	if c.Auth.DenySubscribeCode == "unspecified" {
		o.DenySubscribeCode = packet.UnspecifiedError
	}
	tlsFiles := func(t TLSConfig) mqtt.TLSFiles {
		return mqtt.TLSFiles{
			CertFile:     t.CertFile,
			KeyFile:      t.KeyFile,
			ClientCAFile: t.ClientCAFile,
			ClientAuth:   mqtt.ClientAuth(t.ClientAuth),
		}
	}
	add := func(l mqtt.Listener, lc ListenerConfig) {
		if isOff(lc.Addr) {
			return
		}
		l.Addr, l.ProxyProtocol = lc.Addr, lc.ProxyProtocol
		o.Listeners = append(o.Listeners, l)
	}
	add(mqtt.Listener{Kind: mqtt.TCP}, m.TCP.ListenerConfig)
	add(mqtt.Listener{Kind: mqtt.TLS, TLS: tlsFiles(m.TLS.TLSConfig)}, m.TLS.ListenerConfig)
	add(mqtt.Listener{Kind: mqtt.WS, Path: m.WS.Path}, m.WS.ListenerConfig)
	add(mqtt.Listener{Kind: mqtt.WSS, Path: m.WSS.Path, TLS: tlsFiles(m.WSS.TLSConfig)}, m.WSS.ListenerConfig)
	return o
}

// AuthProvider builds the configured auth provider. Call it on a valid
// Config; it reads the files the provider names.
func (c *Config) AuthProvider() (auth.Provider, error) {
	a := &c.Auth
	switch a.Provider {
	case "file":
		f, err := auth.LoadFile(a.UsersFile)
		if err != nil {
			return nil, &ConfigError{Problems: []string{"auth.usersFile: " + err.Error()}}
		}
		return f, nil
	case "webhook":
		w, err := auth.NewWebhook(auth.WebhookOptions{URL: a.Webhook.URL, Timeout: a.Webhook.Timeout, CacheTTL: a.Webhook.CacheTTL})
		if err != nil {
			return nil, &ConfigError{Problems: []string{"auth.webhook: " + err.Error()}}
		}
		return w, nil
	case "jwt":
		o := auth.JWTOptions{PublicKeyFile: a.JWT.PublicKeyFile, TenantClaim: a.JWT.TenantClaim,
			UserClaim: a.JWT.UserClaim, Method: a.JWT.Method}
		if a.JWT.SecretFile != "" {
			b, err := os.ReadFile(a.JWT.SecretFile)
			if err != nil {
				return nil, &ConfigError{Problems: []string{"auth.jwt.secretFile: " + err.Error()}}
			}
			o.Secret = bytes.TrimRight(b, "\r\n")
		}
		j, err := auth.NewJWT(o)
		if err != nil {
			return nil, &ConfigError{Problems: []string{"auth.jwt: " + err.Error()}}
		}
		return j, nil
	}
	return auth.DevOnly{}, nil
}
