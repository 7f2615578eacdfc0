package basecluster

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Profile selects failure-detection timing.
type Profile string

// Profiles: LAN is memberlist's LAN tuning (a dead node is declared in
// about 6 s); Test detects one in about 1 s on loopback.
const (
	ProfileLAN  Profile = "lan"
	ProfileTest Profile = "test"
)

// Options configures a Host. Zero fields take the documented defaults.
type Options struct {
	// DataDir holds node.id, the node's persistent id (a UUID shared with
	// basekv). Required unless NodeID is set.
	DataDir string
	// NodeID overrides the persisted id (tests).
	NodeID string
	// Env is the cluster name. Gossip of another env is dropped on the
	// wire (memberlist's label), so foreign clusters never merge. Default
	// "bifromq".
	Env string
	// BindAddr is the gossip host:port (TCP and UDP). Required; port 0
	// picks a free port.
	BindAddr string
	// AdvertiseAddr is the host:port others reach BindAddr at, when it
	// differs (NAT). Default: the bound address.
	AdvertiseAddr string
	// Seeds are gossip endpoints to join: host:port, or a DNS name (with
	// or without port) whose every address is tried.
	Seeds []string
	// Profile is the failure-detection timing. Default ProfileLAN.
	Profile Profile
	// RejoinInterval is how often seeds and recently lost members are
	// joined again, which merges the halves of a healed partition.
	// Default 5s (1s with ProfileTest).
	RejoinInterval time.Duration
	// LostMemberTTL is how long a lost member is remembered for re-join.
	// Default 24h.
	LostMemberTTL time.Duration
	// Transport replaces memberlist's network transport (tests inject
	// faults with it).
	Transport memberlist.Transport
	// Logger receives the host's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the host's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

// ErrInvalidOptions wraps every Options problem.
var ErrInvalidOptions = errors.New("basecluster: invalid options")

// ErrClosed is returned by a closed Host.
var ErrClosed = errors.New("basecluster: closed")

func (o *Options) ensureDefaults() {
	if o.Env == "" {
		o.Env = "bifromq"
	}
	if o.Profile == "" {
		o.Profile = ProfileLAN
	}
	if o.RejoinInterval == 0 {
		o.RejoinInterval = 5 * time.Second
		if o.Profile == ProfileTest {
			o.RejoinInterval = time.Second
		}
	}
	if o.LostMemberTTL == 0 {
		o.LostMemberTTL = 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) validate() error {
	var probs []string
	if o.DataDir == "" && o.NodeID == "" {
		probs = append(probs, "DataDir: required (or NodeID)")
	}
	if _, _, err := net.SplitHostPort(o.BindAddr); err != nil {
		probs = append(probs, fmt.Sprintf("BindAddr: %q: %v", o.BindAddr, err))
	}
	if o.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(o.AdvertiseAddr); err != nil {
			probs = append(probs, fmt.Sprintf("AdvertiseAddr: %q: %v", o.AdvertiseAddr, err))
		}
	}
	switch o.Profile {
	case ProfileLAN, ProfileTest:
	default:
		probs = append(probs, fmt.Sprintf("Profile: %q is not lan or test", o.Profile))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(probs, "; "))
	}
	return nil
}

// Member is a live member of the cluster.
type Member struct {
	ID   string
	Addr string // gossip host:port
}

// Host is this node's membership in the cluster: a memberlist instance,
// the replicated CRDTs (agents and the landscape ride on them), and the
// re-join loop. Its methods are safe for concurrent use.
type Host struct {
	opts    Options
	id      string
	log     *slog.Logger
	ml      *memberlist.Memberlist
	bcasts  *memberlist.TransmitLimitedQueue
	metrics *metrics
	crdts   *crdtSet
	lw      landscapeWatchers

	mu struct {
		sync.Mutex
		lost     map[string]lostMember // node id → where it was
		watchers map[*watcher]struct{}
		closed   bool
	}
	changed   chan struct{} // signals notifyLoop
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type lostMember struct {
	addr string
	at   time.Time
}

// Start creates the host, binds its gossip address and joins the seeds
// (failing to reach them is not an error: the re-join loop keeps trying).
func Start(opts Options) (*Host, error) {
	opts.ensureDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	id := opts.NodeID
	if id == "" {
		var err error
		if id, err = LoadNodeID(opts.DataDir); err != nil {
			return nil, err
		}
	}
	h := &Host{opts: opts, id: id, log: opts.Logger.With("component", "basecluster", "node", short(id)),
		metrics: newMetrics(opts.Registerer), stop: make(chan struct{}), changed: make(chan struct{}, 1)}
	h.mu.lost = make(map[string]lostMember)
	h.mu.watchers = make(map[*watcher]struct{})
	h.crdts = newCRDTSet(h)

	cfg := memberlist.DefaultLANConfig()
	if opts.Profile == ProfileTest {
		cfg = memberlist.DefaultLocalConfig()
		cfg.ProbeInterval = 200 * time.Millisecond
		cfg.ProbeTimeout = 100 * time.Millisecond
		cfg.SuspicionMult = 2
		cfg.SuspicionMaxTimeoutMult = 3
		cfg.GossipInterval = 50 * time.Millisecond
		cfg.PushPullInterval = time.Second
		cfg.TCPTimeout = 500 * time.Millisecond
		cfg.GossipToTheDeadTime = time.Second
	}
	cfg.Name = id
	cfg.Label = "bifromq/" + opts.Env
	host, portStr, _ := net.SplitHostPort(opts.BindAddr)
	port, _ := strconv.Atoi(portStr)
	cfg.BindAddr, cfg.BindPort = host, port
	cfg.AdvertisePort = port
	if opts.AdvertiseAddr != "" {
		ah, ap, _ := net.SplitHostPort(opts.AdvertiseAddr)
		cfg.AdvertiseAddr = ah
		cfg.AdvertisePort, _ = strconv.Atoi(ap)
	}
	if opts.Transport != nil {
		cfg.Transport = opts.Transport
	}
	cfg.Logger = log.New(slogWriter{h.log}, "", 0)
	cfg.Delegate = &delegate{h: h}
	cfg.Events = &events{h: h}
	// Receivers do not relay a delta, so its sender sends it often enough
	// for every member to be likely to get it; push-pull repairs the rest.
	h.bcasts = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return h.ml.NumMembers() }, RetransmitMult: 8}
	ml, err := memberlist.Create(cfg)
	if err != nil {
		return nil, fmt.Errorf("basecluster: starting gossip on %s: %w", opts.BindAddr, err)
	}
	h.ml = ml
	h.metrics.members.Set(float64(ml.NumMembers()))
	h.wg.Add(1)
	go h.notifyLoop()
	if len(opts.Seeds) > 0 {
		if n, err := h.Join(opts.Seeds...); err != nil {
			h.log.Warn("joining seeds", "seeds", opts.Seeds, "joined", n, "err", err)
		}
	}
	h.wg.Add(1)
	go h.rejoinLoop()
	return h, nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// ID is the node's id.
func (h *Host) ID() string { return h.id }

// Addr is the host's gossip address as others see it.
func (h *Host) Addr() string {
	n := h.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members returns the live members, this node included, sorted by id.
func (h *Host) Members() []Member {
	var out []Member
	for _, n := range h.ml.Members() {
		out = append(out, Member{ID: n.Name, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (h *Host) alive() map[string]bool {
	out := make(map[string]bool)
	for _, n := range h.ml.Members() {
		out[n.Name] = true
	}
	return out
}

// Join contacts endpoints (host:port, or DNS names, every address of which
// is tried) and returns how many answered.
func (h *Host) Join(endpoints ...string) (int, error) {
	addrs := resolveSeeds(endpoints, h.defaultPort())
	if len(addrs) == 0 {
		return 0, fmt.Errorf("basecluster: no address to join in %v", endpoints)
	}
	n, err := h.ml.Join(addrs)
	h.metrics.joins.Inc()
	return n, err
}

func (h *Host) defaultPort() string {
	_, p, _ := net.SplitHostPort(h.Addr())
	return p
}

// resolveSeeds expands DNS names into their addresses; an endpoint without
// a port gets port.
func resolveSeeds(endpoints []string, port string) []string {
	var out []string
	for _, e := range endpoints {
		host, p, err := net.SplitHostPort(e)
		if err != nil {
			host, p = e, port
		}
		if net.ParseIP(host) != nil {
			out = append(out, net.JoinHostPort(host, p))
			continue
		}
		ips, err := net.LookupHost(host)
		if err != nil {
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip, p))
		}
	}
	return out
}

// rejoinLoop joins the seeds and the recently lost members that are not
// alive, so the halves of a healed partition merge back with no operator.
func (h *Host) rejoinLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		alive := h.alive()
		var targets []string
		h.mu.Lock()
		for id, lm := range h.mu.lost {
			if alive[id] || time.Since(lm.at) > h.opts.LostMemberTTL {
				if !alive[id] {
					delete(h.mu.lost, id)
				}
				continue
			}
			targets = append(targets, lm.addr)
		}
		h.mu.Unlock()
		if len(alive) <= 1 || len(targets) > 0 {
			targets = append(targets, h.opts.Seeds...)
		}
		if len(targets) == 0 {
			continue
		}
		if n, err := h.Join(targets...); n > 0 {
			h.metrics.rejoins.Inc()
			h.log.Debug("re-joined", "targets", targets, "answered", n)
		} else if err != nil {
			h.log.Debug("re-join", "targets", targets, "err", err)
		}
	}
}

// Close leaves the cluster (telling the others) and stops the host. It is
// idempotent.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.mu.closed = true
		h.mu.Unlock()
		h.ml.Leave(time.Second)
		h.shutdown()
	})
	return nil
}

// Kill stops the host without telling the others, as a crash would
// (tests).
func (h *Host) Kill() {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.mu.closed = true
		h.mu.Unlock()
		h.shutdown()
	})
}

func (h *Host) shutdown() {
	close(h.stop)
	h.ml.Shutdown()
	h.wg.Wait()
	h.mu.Lock()
	ws := h.mu.watchers
	h.mu.watchers = map[*watcher]struct{}{}
	h.mu.Unlock()
	for w := range ws {
		w.close()
	}
}

// LoadNodeID reads dataDir/node.id, creating it with a new UUID. basekv
// reads the same file, so a node has one id in both layers.
func LoadNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node.id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) != 36 {
			return "", fmt.Errorf("basecluster: %s does not hold a UUID", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("basecluster: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("basecluster: %w", err)
	}
	id := newUUID()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("basecluster: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("basecluster: %w", err)
	}
	return id, nil
}

// slogWriter routes memberlist's standard logger into slog at debug level,
// but for its warnings and errors.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	msg := strings.TrimSpace(string(b))
	switch {
	case strings.Contains(msg, "[ERR]"):
		w.l.Warn(msg)
	case strings.Contains(msg, "[WARN]"):
		w.l.Debug(msg)
	default:
		w.l.Debug(msg)
	}
	return len(b), nil
}

var _ io.Writer = slogWriter{}
