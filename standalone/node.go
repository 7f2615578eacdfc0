package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bifromq-go/bifromq/apiserver"
	"github.com/bifromq-go/bifromq/basecluster"
	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/inbox"
	"github.com/bifromq-go/bifromq/mqtt"
	"github.com/bifromq-go/bifromq/mqtt/settings"
	"github.com/bifromq-go/bifromq/retain"
)

// Option adjusts how Start runs a node (as opposed to Config, which is what
// the operator configures).
type Option func(*nodeOptions)

type nodeOptions struct {
	logger *slog.Logger
}

// WithLogger sends the node's logs to l instead of a logger built from
// Config.Log writing to stderr.
func WithLogger(l *slog.Logger) Option {
	return func(o *nodeOptions) { o.logger = l }
}

// Node is one running broker: its data directory lock, its metrics registry,
// its MQTT server and its HTTP API. Its methods are safe for concurrent use.
type Node struct {
	cfg      Config
	log      *slog.Logger
	lock     *dirLock
	mqtt     *mqtt.Server
	api      *apiserver.Server // nil when api.addr is off
	cluster  *basecluster.Host // gossip membership
	kv       *basekv.Node      // the replicated stores
	dist     *dist.Service     // routing
	inbox    *inbox.Service    // persistent sessions
	retain   *retain.Client    // retained messages
	settings *settings.Static  // tenant settings, changeable at runtime

	state atomic.Int32 // a nodeState

	closeOnce sync.Once
	closeErr  error
}

type nodeState int32

const (
	nodeStarting nodeState = iota
	nodeReady
	nodeStopping
)

// Start validates cfg, locks the data directory and starts the MQTT server,
// then the HTTP API. ctx bounds the start only: the node runs until Close.
// On failure everything started is stopped again and the lock released.
func Start(ctx context.Context, cfg Config, opts ...Option) (*Node, error) {
	var o nodeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.logger == nil {
		l, err := NewLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
		if err != nil {
			return nil, err
		}
		o.logger = l
	}
	n := &Node{cfg: cfg, log: o.logger}
	if err := n.start(ctx); err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	dir, err := filepath.Abs(n.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("standalone: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("standalone: creating data dir: %w", err)
	}
	if n.lock, err = lockDir(dir); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("standalone: start: %w", err)
	}

	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "bifromq",
		Name:        "build_info",
		Help:        "Always 1; the labels name the build.",
		ConstLabels: prometheus.Labels{"version": Version(), "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
	)

	// Gossip membership: the node joins its cluster through any seed, and
	// re-joins lost members after a partition.
	n.cluster, err = basecluster.Start(basecluster.Options{
		DataDir:       dir,
		Env:           n.cfg.Cluster.Env,
		BindAddr:      n.cfg.Cluster.Bind,
		AdvertiseAddr: n.cfg.Cluster.Advertise,
		Seeds:         n.cfg.Cluster.Seeds,
		Logger:        n.log,
		Registerer:    reg,
	})
	if err != nil {
		return fmt.Errorf("standalone: cluster membership: %w", err)
	}

	// The stores: one basekv node, its Raft transport on cluster.raftAddr.
	// Each node keeps its own replicas for now (its directory is local):
	// replication across nodes comes with the cluster stores.
	raftAddr, err := resolvePort(n.cfg.Cluster.RaftAddr)
	if err != nil {
		return fmt.Errorf("standalone: cluster.raftAddr: %w", err)
	}
	n.kv, err = basekv.Open(basekv.Options{
		DataDir:    dir,
		RaftAddr:   raftAddr,
		LogDB:      basekv.LogDBSize(n.cfg.Store.LogDB),
		Logger:     n.log,
		Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("standalone: opening the stores: %w", err)
	}
	worker, err := dist.OpenWorker(n.kv, basekv.ReplicaOptions{})
	if err != nil {
		return fmt.Errorf("standalone: opening the %s store: %w", dist.WorkerStore, err)
	}
	if n.dist, err = dist.NewService(worker, dist.ServiceOptions{Logger: n.log, Registerer: reg}); err != nil {
		return fmt.Errorf("standalone: dist service: %w", err)
	}
	inboxes, err := inbox.Open(n.kv, basekv.ReplicaOptions{})
	if err != nil {
		return fmt.Errorf("standalone: opening the %s store: %w", inbox.StoreName, err)
	}
	if n.retain, err = retain.OpenOptions(n.kv, retain.Options{Logger: n.log, Registerer: reg}); err != nil {
		return fmt.Errorf("standalone: opening the %s store: %w", retain.StoreName, err)
	}
	if n.inbox, err = inbox.NewService(inboxes, n.dist, inbox.ServiceOptions{Retain: n.retain, Logger: n.log, Registerer: reg}); err != nil {
		return fmt.Errorf("standalone: inbox service: %w", err)
	}
	n.dist.Register(inbox.DelivererName, n.inbox)

	mo := n.cfg.MQTTOptions()
	if mo.Auth, err = n.cfg.AuthProvider(); err != nil {
		return err
	}
	if n.cfg.Auth.Provider == "dev" {
		n.log.Warn("AUTHENTICATION IS OFF: every client is accepted as tenant DevOnly and may publish and " +
			"subscribe to anything. Set auth.provider (file, webhook or jwt) before exposing this broker.")
	}
	tenants, err := n.cfg.Tenants.TenantSettings()
	if err != nil {
		return err
	}
	if n.settings, err = settings.NewStatic(n.cfg.Tenants.Defaults, tenants); err != nil {
		return fmt.Errorf("standalone: tenant settings: %w", err)
	}
	mo.Settings = n.settings
	mo.Router = n.dist
	mo.Inbox = n.inbox
	mo.Retain = n.retain
	mo.NodeID = n.cluster.ID()
	mo.Logger = n.log
	mo.Registerer = reg
	if n.mqtt, err = mqtt.NewServer(mo); err != nil {
		return fmt.Errorf("standalone: mqtt server: %w", err)
	}
	if err := n.mqtt.Start(); err != nil {
		return fmt.Errorf("standalone: starting mqtt server: %w", err)
	}
	n.state.Store(int32(nodeReady))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("standalone: start: %w", err)
	}

	if !isOff(n.cfg.API.Addr) {
		api, err := apiserver.New(apiserver.Options{
			Addr:       n.cfg.API.Addr,
			Token:      n.cfg.API.Token,
			Gatherer:   reg,
			Registerer: reg,
			Ready:      n.ready,
			Logger:     n.log,
		})
		if err != nil {
			return fmt.Errorf("standalone: api server: %w", err)
		}
		n.api = api
		if err := api.Start(); err != nil {
			return fmt.Errorf("standalone: starting api server: %w", err)
		}
	}
	return nil
}

// ready is the API's readiness: ready from the MQTT server's start until
// Close begins.
func (n *Node) ready() error {
	switch nodeState(n.state.Load()) {
	case nodeReady:
		return nil
	case nodeStopping:
		return errors.New("the node is shutting down")
	default:
		return errors.New("the mqtt server is starting")
	}
}

// MQTTAddr returns the bound address of the MQTT listener of kind k, or nil
// when that listener is off.
func (n *Node) MQTTAddr(k mqtt.ListenerKind) net.Addr { return n.mqtt.Addr(k) }

// Settings are the node's tenant settings; Set and Delete change them for
// the tenant's next connections.
func (n *Node) Settings() *settings.Static { return n.settings }

// Cluster is the node's gossip membership.
func (n *Node) Cluster() *basecluster.Host { return n.cluster }

// APIAddr returns the bound address of the HTTP API, or nil when it is off.
func (n *Node) APIAddr() net.Addr {
	if n.api == nil {
		return nil
	}
	return n.api.Addr()
}

// Close stops the node, in this order:
//
//  1. /readyz turns 503 ("shutting down"), so load balancers stop sending
//     new clients while the API still answers;
//  2. the MQTT server closes: it stops accepting, tells v5 clients
//     DISCONNECT 0x8B (server shutting down) and waits up to
//     mqtt.drainTimeout for their connections to close;
//  3. the HTTP API closes;
//  4. the inbox service and dist stop (publishes still queued fail),
//     then the stores close;
//  5. the node leaves the cluster (gossip);
//  6. the data directory lock is released.
//
// It is idempotent; every call returns the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.stop() })
	return n.closeErr
}

// stop undoes what start did, whatever point start reached.
func (n *Node) stop() error {
	n.state.Store(int32(nodeStopping))
	var errs []error
	if n.mqtt != nil {
		if err := n.mqtt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: closing mqtt server: %w", err))
		}
	}
	if n.api != nil {
		if err := n.api.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: closing api server: %w", err))
		}
	}
	if n.inbox != nil {
		if err := n.inbox.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: closing inbox: %w", err))
		}
	}
	// After the inbox service: it stores delayed wills with RETAIN.
	if n.retain != nil {
		if err := n.retain.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: closing retain: %w", err))
		}
	}
	if n.dist != nil {
		if err := n.dist.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: closing dist: %w", err))
		}
	}
	if n.kv != nil {
		if err := n.kv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: closing the stores: %w", err))
		}
	}
	if n.cluster != nil {
		if err := n.cluster.Close(); err != nil {
			errs = append(errs, fmt.Errorf("standalone: leaving the cluster: %w", err))
		}
	}
	if n.lock != nil {
		if err := n.lock.release(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resolvePort returns addr with port 0 replaced by a port free now.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
