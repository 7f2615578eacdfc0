package standalone

import (
	"github.com/bifromq-go/bifromq/basekv"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/mqtt"
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
	// Store configures the replicated stores (routes now; sessions and
	// retained messages as they land).
	Store StoreConfig `yaml:"store"`
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
	// ReceiveMaximum is the number of inbound QoS 1/2 PUBLISHes a client may
	// have unacknowledged; in [1, 65535]. Default 200.
	ReceiveMaximum int `yaml:"receiveMaximum"`
	// TopicAliasMaximum is the highest inbound topic alias a v5 client may
	// use; 0 disables aliases; at most 65535. Default 10.
	TopicAliasMaximum int `yaml:"topicAliasMaximum"`
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
	// MaximumQoS is the highest QoS accepted and delivered: 1 or 2.
	// Default 2.
	MaximumQoS int `yaml:"maximumQoS"`
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
	// RetainMessageMatchLimit caps the retained messages sent for one
	// subscription; at least 1. Default 10.
	RetainMessageMatchLimit int `yaml:"retainMessageMatchLimit"`
	// MaxSessionExpiry caps the session expiry interval, in seconds; a v3
	// client with clean session 0 gets it. At least 1. Default 86400.
	MaxSessionExpiry int64 `yaml:"maxSessionExpiry"`
	// SessionInboxSize bounds each queue of a persistent session (QoS 0,
	// and QoS 1/2); at least 1. Default 1000.
	SessionInboxSize int `yaml:"sessionInboxSize"`
	// QoS0DropOldest makes a full QoS 0 inbox queue drop its oldest message
	// instead of the new one. Default false.
	QoS0DropOldest bool `yaml:"qos0DropOldest"`
	// MaxTopicFiltersPerInbox bounds a persistent session's subscriptions;
	// at least 1. Default 100.
	MaxTopicFiltersPerInbox int `yaml:"maxTopicFiltersPerInbox"`
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
			ConnectTimeout:          mqtt.DefaultConnectTimeout,
			MaxPacketSize:           mqtt.DefaultMaxPacketSize,
			ReceiveMaximum:          mqtt.DefaultReceiveMaximum,
			TopicAliasMaximum:       mqtt.DefaultTopicAliasMaximum,
			MaxClientIDLength:       mqtt.DefaultMaxClientIDLength,
			WriteTimeout:            mqtt.DefaultWriteTimeout,
			DrainTimeout:            mqtt.DefaultDrainTimeout,
			MaximumQoS:              mqtt.DefaultMaximumQoS,
			MaxInflight:             mqtt.DefaultMaxInflight,
			SessionQueue:            mqtt.DefaultSessionQueue,
			QoS0Queue:               mqtt.DefaultQoS0Queue,
			QueueBudget:             mqtt.DefaultQueueBudget,
			MaxSessionExpiry:        mqtt.DefaultMaxSessionExpiry,
			RetainMessageMatchLimit: mqtt.DefaultRetainMatchLimit,
			SessionInboxSize:        mqtt.DefaultSessionInboxSize,
			MaxTopicFiltersPerInbox: mqtt.DefaultMaxTopicFilters,
		},
		Store: StoreConfig{LogDB: string(basekv.LogDBSmall)},
		API:   APIConfig{Addr: "127.0.0.1:8091"},
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
	aliasMax := m.TopicAliasMaximum
	if aliasMax == 0 {
		aliasMax = -1 // in mqtt.Options 0 means the default and a negative value disables
	}
	o := mqtt.Options{
		ConnectTimeout:          m.ConnectTimeout,
		MaxConnections:          m.MaxConnections,
		ConnectRate:             m.ConnectRate,
		ConnectBurst:            m.ConnectBurst,
		MaxPacketSize:           m.MaxPacketSize,
		ReceiveMaximum:          uint16(m.ReceiveMaximum),
		TopicAliasMaximum:       aliasMax,
		MaxKeepAlive:            uint16(m.MaxKeepAlive),
		MaxClientIDLength:       m.MaxClientIDLength,
		WriteTimeout:            m.WriteTimeout,
		DrainTimeout:            m.DrainTimeout,
		MaximumQoS:              byte(m.MaximumQoS),
		MaxInflight:             uint16(m.MaxInflight),
		SessionQueue:            m.SessionQueue,
		QoS0Queue:               m.QoS0Queue,
		QueueBudget:             m.QueueBudget,
		MaxSessionExpiry:        uint32(m.MaxSessionExpiry),
		RetainMessageMatchLimit: m.RetainMessageMatchLimit,
		SessionInboxSize:        uint32(m.SessionInboxSize),
		QoS0DropOldest:          m.QoS0DropOldest,
		MaxTopicFiltersPerInbox: m.MaxTopicFiltersPerInbox,
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
