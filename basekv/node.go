package basekv

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	dblogger "github.com/lni/dragonboat/v4/logger"
	"github.com/lni/dragonboat/v4/raftio"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/basecluster"
)

// LogDBSize selects dragonboat's LogDB memory budget.
type LogDBSize string

// LogDB presets: dragonboat's tiny (up to ~256 MB), small (~1 GB) and
// default (large, up to ~8 GB) configurations.
const (
	LogDBTiny    LogDBSize = "tiny"
	LogDBSmall   LogDBSize = "small"
	LogDBDefault LogDBSize = "default"
)

// Options configures a Node. Zero fields take the documented defaults.
type Options struct {
	// DataDir holds the node's state: node.id, raft/ (dragonboat's log and
	// snapshots) and one directory per store. Required.
	DataDir string
	// RaftAddr is the host:port the Raft transport listens on and peers
	// reach it at. Required.
	RaftAddr string
	// Directory resolves peers: node ids to Raft addresses, and the stores'
	// range descriptors. Nodes of one cluster share one. Nil gives the node
	// a private directory (a single-node cluster).
	Directory *Directory
	// RTT is the round trip between nodes, the Raft tick. Default 20ms.
	RTT time.Duration
	// ElectionTicks and HeartbeatTicks are in RTTs. Default 10 and 1.
	ElectionTicks, HeartbeatTicks uint64
	// SnapshotEntries is how many applied entries trigger a snapshot and
	// log compaction, and CompactionOverhead how many entries are kept
	// behind it. Default 10000 and 5000.
	SnapshotEntries, CompactionOverhead uint64
	// LogDB is the memory budget of the Raft log store. Default LogDBSmall.
	LogDB LogDBSize
	// ProposalTimeout bounds one attempt of a proposal or read; a call
	// retries within its context. Default 2s.
	ProposalTimeout time.Duration
	// MaxBatch caps the inputs of one group-committed proposal. Default 512.
	MaxBatch int
	// MinFreeBytes is the free space under DataDir below which the node
	// refuses writes (ErrDiskFull). Default 256 MiB.
	MinFreeBytes uint64
	// DiskCheckInterval is how often free space is checked. Default 1s.
	DiskCheckInterval time.Duration
	// Landscape, when set, is where the node publishes its Raft address
	// and its stores' ranges and reads the others' (basecluster.Host).
	// Without it the Directory serves both.
	Landscape Landscape
	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the node's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() *Options {
	if o.RTT == 0 {
		o.RTT = 20 * time.Millisecond
	}
	if o.ElectionTicks == 0 {
		o.ElectionTicks = 10
	}
	if o.HeartbeatTicks == 0 {
		o.HeartbeatTicks = 1
	}
	if o.SnapshotEntries == 0 {
		o.SnapshotEntries = 10000
	}
	if o.CompactionOverhead == 0 {
		o.CompactionOverhead = 5000
	}
	if o.LogDB == "" {
		o.LogDB = LogDBSmall
	}
	if o.ProposalTimeout == 0 {
		o.ProposalTimeout = 2 * time.Second
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 512
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 256 << 20
	}
	if o.DiskCheckInterval == 0 {
		o.DiskCheckInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var probs []string
	if o.DataDir == "" {
		probs = append(probs, "DataDir: required")
	}
	if o.RaftAddr == "" {
		probs = append(probs, "RaftAddr: required")
	}
	if o.RTT < time.Millisecond {
		probs = append(probs, fmt.Sprintf("RTT: %v is under 1ms", o.RTT))
	}
	if o.ElectionTicks <= 2*o.HeartbeatTicks {
		probs = append(probs, "ElectionTicks: must be more than twice HeartbeatTicks")
	}
	switch o.LogDB {
	case LogDBTiny, LogDBSmall, LogDBDefault:
	default:
		probs = append(probs, fmt.Sprintf("LogDB: %q is not tiny, small or default", o.LogDB))
	}
	if o.MaxBatch < 1 {
		probs = append(probs, "MaxBatch: must be at least 1")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(probs, "; "))
	}
	return nil
}

// Node is one member of a basekv cluster: one dragonboat NodeHost and the
// stores opened on it. Its methods are safe for concurrent use.
type Node struct {
	opts    Options
	id      string
	log     *slog.Logger
	dir     *Directory
	nh      *dragonboat.NodeHost
	metrics *metrics

	publishC chan struct{}
	diskFull atomic.Bool
	minFree  atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup

	mu struct {
		sync.Mutex
		stores map[string]*Store
		closed bool
	}
	closeOnce sync.Once
}

// Open opens (or creates) the node in opts.DataDir and joins its directory.
func Open(opts Options) (*Node, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("basekv: %w", err)
	}
	// One id per node for every layer: basecluster keeps it in node.id.
	id, err := basecluster.LoadNodeID(opts.DataDir)
	if err != nil {
		return nil, err
	}
	raftDir := filepath.Join(opts.DataDir, "raft")
	if err := checkHostname(raftDir); err != nil {
		return nil, err
	}
	dir := opts.Directory
	if dir == nil {
		dir = NewDirectory()
	}
	n := &Node{opts: opts, id: id, log: opts.Logger.With("component", "basekv", "node", id[:8]), dir: dir,
		metrics: newMetrics(opts.Registerer), stop: make(chan struct{}), publishC: make(chan struct{}, 1)}
	n.mu.stores = make(map[string]*Store)
	n.minFree.Store(opts.MinFreeBytes)
	n.checkDisk()
	dir.addNode(n)
	quietDragonboat()
	if opts.Landscape != nil {
		if err := opts.Landscape.Publish(topicRaftAddr, []byte(opts.RaftAddr)); err != nil {
			dir.removeNode(id)
			return nil, fmt.Errorf("basekv: publishing the Raft address: %w", err)
		}
	}
	nhc := config.NodeHostConfig{
		NodeHostDir:    raftDir,
		RTTMillisecond: uint64(opts.RTT / time.Millisecond),
		RaftAddress:    opts.RaftAddr,
		NodeHostID:     id,
		Expert: config.ExpertConfig{
			NodeRegistryFactory: registryFactory{dir: dir, land: opts.Landscape},
			LogDB:               logDBConfig(opts.LogDB),
		},
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		dir.removeNode(id)
		return nil, fmt.Errorf("basekv: starting the Raft node host: %w", err)
	}
	n.nh = nh
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newRangeCollector(n)); err != nil {
			n.log.Warn("registering range metrics", "err", err)
		}
	}
	n.wg.Add(1)
	go n.diskLoop()
	if opts.Landscape != nil {
		watch, stop := opts.Landscape.WatchLandscape()
		n.wg.Add(1)
		go n.landscapeLoop(watch, stop)
	}
	return n, nil
}

func logDBConfig(s LogDBSize) config.LogDBConfig {
	switch s {
	case LogDBTiny:
		return config.GetTinyMemLogDBConfig()
	case LogDBDefault:
		return config.GetDefaultLogDBConfig()
	}
	return config.GetSmallMemLogDBConfig()
}

var quietOnce sync.Once

// quietDragonboat lowers dragonboat's own loggers to warnings: its info
// logs describe every election and snapshot. Its raft package warns of
// proposals dropped while a range elects its first leader (basekv retries
// them) and its config package that the Raft transport has no mutual TLS,
// at every start: those two log errors only.
func quietDragonboat() {
	quietOnce.Do(func() {
		for _, name := range []string{"rsm", "transport", "dragonboat", "logdb", "raftpb", "settings", "grpc", "gossip"} {
			dblogger.GetLogger(name).SetLevel(dblogger.WARNING)
		}
		for _, name := range []string{"raft", "config"} {
			dblogger.GetLogger(name).SetLevel(dblogger.ERROR)
		}
	})
}

// ID is the node's id: a UUID created with its data directory.
func (n *Node) ID() string { return n.id }

// RaftAddr is the node's Raft address.
func (n *Node) RaftAddr() string { return n.opts.RaftAddr }

// checkHostname refuses a raft directory made under another host name:
// dragonboat puts the host name in its log path, so after a rename it would
// silently start an empty log beside the old one.
func checkHostname(raftDir string) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("basekv: %w", err)
	}
	entries, err := os.ReadDir(raftDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("basekv: %w", err)
	}
	var others []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != host {
			others = append(others, e.Name())
		}
	}
	if len(others) > 0 && !dirExists(filepath.Join(raftDir, host)) {
		return fmt.Errorf("%w: %s holds the Raft log of host %q but this host is %q; "+
			"rename %s to %s to move the node", ErrHostnameChanged, raftDir, others[0], host,
			filepath.Join(raftDir, others[0]), filepath.Join(raftDir, host))
	}
	return nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Close stops every store, the Raft node host and leaves the directory.
// It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.mu.closed = true
		stores := make([]*Store, 0, len(n.mu.stores))
		for _, s := range n.mu.stores {
			stores = append(stores, s)
		}
		n.mu.Unlock()
		n.dir.removeNode(n.id)
		close(n.stop)
		n.wg.Wait()
		for _, s := range stores {
			s.stopWorkers()
		}
		n.nh.Close()
		for _, s := range stores {
			s.closeDB()
		}
	})
	return nil
}

// registryFactory makes dragonboat resolve Raft targets, which are node
// ids, through the directory, so a node that comes back on another address
// is still found.
type registryFactory struct {
	dir  *Directory
	land Landscape
}

func (f registryFactory) Create(string, uint64, config.TargetValidator) (raftio.INodeRegistry, error) {
	return &nodeRegistry{dir: f.dir, land: f.land, targets: make(map[[2]uint64]string)}, nil
}

type nodeRegistry struct {
	dir  *Directory
	land Landscape
	// addrs caches the landscape's Raft addresses (Resolve runs for every
	// Raft message); it is rebuilt when the directory's generation moves,
	// which the landscape watcher bumps on every change.
	addrMu  sync.Mutex
	addrs   map[string]string
	addrGen uint64
	mu      sync.RWMutex
	targets map[[2]uint64]string // (shard, replica) → node id
}

func (r *nodeRegistry) Close() error { return nil }

func (r *nodeRegistry) Add(shardID, replicaID uint64, target string) {
	r.mu.Lock()
	r.targets[[2]uint64{shardID, replicaID}] = target
	r.mu.Unlock()
}

func (r *nodeRegistry) Remove(shardID, replicaID uint64) {
	r.mu.Lock()
	delete(r.targets, [2]uint64{shardID, replicaID})
	r.mu.Unlock()
}

func (r *nodeRegistry) RemoveShard(shardID uint64) {
	r.mu.Lock()
	for k := range r.targets {
		if k[0] == shardID {
			delete(r.targets, k)
		}
	}
	r.mu.Unlock()
}

func (r *nodeRegistry) Resolve(shardID, replicaID uint64) (string, string, error) {
	r.mu.RLock()
	target, ok := r.targets[[2]uint64{shardID, replicaID}]
	r.mu.RUnlock()
	if !ok {
		return "", "", fmt.Errorf("basekv: replica %d of range %d: %w", replicaID, shardID, dragonboat.ErrShardNotFound)
	}
	var addr string
	if r.land != nil {
		addr, ok = r.landscapeAddr(target)
	} else {
		addr, ok = r.dir.raftAddr(target)
	}
	if !ok {
		return "", "", fmt.Errorf("basekv: node %s: %w", target, ErrUnavailable)
	}
	return addr, addr, nil
}

func (r *nodeRegistry) landscapeAddr(target string) (string, bool) {
	gen := r.dir.gen.Load()
	r.addrMu.Lock()
	defer r.addrMu.Unlock()
	if r.addrs == nil || r.addrGen != gen {
		r.addrs = make(map[string]string)
		for id, b := range r.land.Landscape(topicRaftAddr) {
			r.addrs[id] = string(b)
		}
		r.addrGen = gen
	}
	a, ok := r.addrs[target]
	return a, ok
}
