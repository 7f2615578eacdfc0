package basekv

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/bifromq-go/bifromq/basekv/coproc"
)

// ReplicaOptions is a store's replica-count setting, applied by the leader
// of each range when the store starts and whenever nodes open or close the
// store.
type ReplicaOptions struct {
	// Voters is the number of voting replicas per range, capped by the
	// nodes that opened the store. Default 1.
	Voters int
	// Learners is the number of non-voting replicas per range; -1 puts one
	// on every node that opened the store and holds no voter.
	Learners int
	// Manual turns the setting off: membership changes only through
	// AddReplica and RemoveReplica.
	Manual bool
	// ReplaceAfter is how long a replica's node may be gone (closed the
	// store, or unreachable) before its replica is replaced on another
	// node and removed. Default 1 minute.
	ReplaceAfter time.Duration
}

// Store is one named keyspace opened on a node: its pebble DB, the local
// replicas of its ranges, and the client that routes calls to any range
// in the cluster. Its methods are safe for concurrent use.
type Store struct {
	node    *Node
	name    string
	factory coproc.Factory
	ropts   ReplicaOptions
	db      *pebble.DB
	dir     string
	popts   *pebble.Options
	metrics *metrics

	mu struct {
		sync.RWMutex
		ranges   map[uint64]*rangeSM // local replicas
		batchers map[uint64]*batcher
		routes   *rangeMap
	}
	// The store's goroutines (batchers, the replica-count loop, follow-ups
	// of splits and merges) start through spawn, which refuses once
	// stopWorkers began, so stopWorkers' Wait never races an Add.
	stop      chan struct{}
	wg        sync.WaitGroup
	workersMu sync.Mutex
	closing   bool

	goneSince map[string]time.Time // owned by the replica-count loop
}

// spawn runs f on a goroutine owned by the store; false once the store
// is stopping.
func (s *Store) spawn(f func()) bool {
	s.workersMu.Lock()
	defer s.workersMu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// work runs f as work of s on the caller's goroutine (another store's
// worker acting on s: the replica it adds here or drops): not once s is
// closing, and s's close waits for it, so s's database stays open while f
// runs. It reports false, without running f, when s is closing.
func (s *Store) work(f func()) bool {
	s.workersMu.Lock()
	if s.closing {
		s.workersMu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.workersMu.Unlock()
	defer s.wg.Done()
	f()
	return true
}

// Store opens (or creates) store name on the node with coprocessor factory
// f. A store whose ranges exist nowhere yet is bootstrapped with one range
// covering the keyspace, once cluster-wide.
func (n *Node) Store(name string, f coproc.Factory, ro ReplicaOptions) (*Store, error) {
	if ro.Voters == 0 {
		ro.Voters = 1
	}
	if ro.ReplaceAfter == 0 {
		ro.ReplaceAfter = time.Minute
	}
	if ro.Voters < 1 || ro.Learners < -1 || ro.ReplaceAfter < 0 {
		return nil, fmt.Errorf("%w: replica options %+v", ErrInvalidOptions, ro)
	}
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := n.mu.stores[name]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("basekv: store %q is already open", name)
	}
	n.mu.Unlock()
	dir := filepath.Join(n.opts.DataDir, "stores", name)
	popts := &pebble.Options{Logger: pebbleLogger{n.log}}
	popts.EnsureDefaults() // also for MakeWriterOptions (snapshot restore)
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("basekv: opening store %q: %w", name, err)
	}
	s := &Store{node: n, name: name, factory: f, ropts: ro, db: db, dir: dir, popts: popts, metrics: n.metrics,
		stop: make(chan struct{})}
	s.mu.ranges = make(map[uint64]*rangeSM)
	s.mu.batchers = make(map[uint64]*batcher)
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, err
	}
	n.mu.Lock()
	n.mu.stores[name] = s
	n.mu.Unlock()
	if err := s.startLocalRanges(); err != nil {
		s.stopWorkers()
		s.closeDB()
		n.mu.Lock()
		delete(n.mu.stores, name)
		n.mu.Unlock()
		return nil, err
	}
	n.dir.changed()
	s.spawn(s.reconcileLoop)
	return s, nil
}

func (n *Node) store(name string) *Store {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.stores[name]
}

// Name is the store's name.
func (s *Store) Name() string { return s.name }

func (s *Store) checkFormat() error {
	v, c, err := s.db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return s.db.Set(formatKey, binary.AppendUvarint(nil, formatVersion), pebble.Sync)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	got, _ := binary.Uvarint(v)
	if got != formatVersion {
		return fmt.Errorf("%w: store %q has format %d, this build reads %d", ErrFormat, s.name, got, formatVersion)
	}
	return nil
}

// localInfo is what a node keeps about its own replica of a range, under
// key 'i': its replica id, whether it joined an existing group, and the
// initial members it was created with (empty when it joined).
type localInfo struct {
	replicaID uint64
	join      bool
	learner   bool
	members   map[uint64]string
}

func (li *localInfo) marshal() []byte {
	b := binary.AppendUvarint(nil, li.replicaID)
	var flags byte
	if li.join {
		flags |= 1
	}
	if li.learner {
		flags |= 2
	}
	b = append(b, flags)
	ids := make([]uint64, 0, len(li.members))
	for id := range li.members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, id)
		b = appendBytes(b, []byte(li.members[id]))
	}
	return b
}

func unmarshalLocalInfo(b []byte) (*localInfo, error) {
	r := newDecoder(b)
	li := &localInfo{replicaID: r.Uvarint()}
	flags := r.Byte()
	li.join, li.learner = flags&1 != 0, flags&2 != 0
	n := r.Uvarint()
	li.members = make(map[uint64]string, n)
	for i := uint64(0); i < n && r.Err == nil; i++ {
		li.members[r.Uvarint()] = string(r.Bytes())
	}
	return li, r.Err
}

func localInfoKey(id uint64) []byte { return rangeKey(id, 'i') }

// loadRange reads a range's descriptor (nil when none yet) and applied
// index.
func (s *Store) loadRange(id uint64) (*RangeDescriptor, uint64, error) {
	var applied uint64
	v, c, err := s.db.Get(appliedKey(id))
	if err == nil {
		applied = binary.BigEndian.Uint64(v)
		c.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return nil, 0, err
	}
	v, c, err = s.db.Get(descriptorKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, applied, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	d, err := unmarshalDescriptor(v)
	return d, applied, err
}

// startLocalRanges restarts the replicas this node holds, or bootstraps
// the store's first range when the store exists nowhere yet.
func (s *Store) startLocalRanges() error {
	infos := map[uint64]*localInfo{}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: rangeMetaBounds[0], UpperBound: rangeMetaBounds[1]})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 11 || k[10] != 'i' {
			continue
		}
		li, err := unmarshalLocalInfo(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		infos[binary.BigEndian.Uint64(k[2:10])] = li
	}
	if err := it.Close(); err != nil {
		return err
	}
	for id, li := range infos {
		if err := s.startReplica(id, li); err != nil {
			return err
		}
	}
	if len(infos) > 0 || len(s.node.dir.buildRangeMap(s.node, s.name).routes) > 0 {
		return nil
	}
	if !s.node.dir.claimBootstrap(s.name, s.node.id) {
		return nil // another node creates the first range; the replica count brings it here
	}
	id := newID()
	desc := RangeDescriptor{ID: id, Ver: 1, State: RangeNormal}
	li := &localInfo{replicaID: newID(), members: map[uint64]string{}}
	li.members[li.replicaID] = s.node.id
	b := s.db.NewBatch()
	b.Set(descriptorKey(id), desc.marshal(), nil)
	b.Set(appliedKey(id), make([]byte, 8), nil)
	b.Set(localInfoKey(id), li.marshal(), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.node.log.Info("bootstrapped store", "store", s.name, "range", id)
	return s.startReplica(id, li)
}

func newID() uint64 {
	for {
		if v := rand.Uint64() >> 1; v != 0 {
			return v
		}
	}
}

func (s *Store) raftConfig(shardID, replicaID uint64, learner bool) config.Config {
	o := &s.node.opts
	return config.Config{
		ShardID:            shardID,
		ReplicaID:          replicaID,
		CheckQuorum:        true,
		PreVote:            true,
		ElectionRTT:        o.ElectionTicks,
		HeartbeatRTT:       o.HeartbeatTicks,
		SnapshotEntries:    o.SnapshotEntries,
		CompactionOverhead: o.CompactionOverhead,
		Quiesce:            false,
		IsNonVoting:        learner,
	}
}

// startReplica starts this node's replica of range id on the NodeHost.
func (s *Store) startReplica(id uint64, li *localInfo) error {
	rsm := newRangeSM(s, id, li.replicaID)
	s.mu.Lock()
	s.mu.ranges[id] = rsm
	s.mu.Unlock()
	var members map[uint64]dragonboat.Target
	if !li.join && len(li.members) > 0 {
		members = make(map[uint64]dragonboat.Target, len(li.members))
		for rid, node := range li.members {
			members[rid] = node
		}
	}
	create := func(uint64, uint64) sm.IOnDiskStateMachine { return rsm }
	err := s.node.nh.StartOnDiskReplica(members, li.join, create, s.raftConfig(id, li.replicaID, li.learner))
	if err != nil && !errors.Is(err, dragonboat.ErrShardAlreadyExist) {
		s.mu.Lock()
		delete(s.mu.ranges, id)
		s.mu.Unlock()
		return fmt.Errorf("basekv: store %q: starting range %d: %w", s.name, id, err)
	}
	s.node.dir.changed()
	return nil
}

// rangeChanged is called by a range's state machine when its descriptor
// changes.
func (s *Store) rangeChanged(*RangeDescriptor) {
	s.node.dir.changed()
	s.node.schedulePublish()
}

func (s *Store) isLeader(shardID, replicaID uint64) bool {
	lid, _, ok, err := s.node.nh.GetLeaderID(shardID)
	return err == nil && ok && lid == replicaID
}

// localDescriptors returns the descriptors of the local replicas.
func (s *Store) localDescriptors() []RangeDescriptor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]RangeDescriptor, 0, len(s.mu.ranges))
	for _, r := range s.mu.ranges {
		r.mu.RLock()
		if r.desc != nil && r.desc.State == RangeNormal {
			out = append(out, *r.desc)
		}
		r.mu.RUnlock()
	}
	return out
}

func (s *Store) localRange(id uint64) *rangeSM {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.ranges[id]
}

// onSplit runs on every replica after a split applied: the right half
// starts as a new range on this node with the members the split carried,
// or, on a node that is not one of them, its keys are dropped.
func (s *Store) onSplit(parent uint64, right *RangeDescriptor, members map[uint64]string) {
	var mine uint64
	for rid, node := range members {
		if node == s.node.id {
			mine = rid
		}
	}
	s.spawn(func() {
		if mine == 0 {
			return
		}
		li := &localInfo{replicaID: mine, members: members}
		if err := s.startReplica(right.ID, li); err != nil && !errors.Is(err, dragonboat.ErrClosed) {
			s.node.log.Error("starting the right half of a split", "store", s.name, "parent", parent,
				"range", right.ID, "err", err)
		}
	})
}

// stopWorkers stops the store's goroutines; the replicas stop with the
// NodeHost.
func (s *Store) stopWorkers() {
	s.workersMu.Lock()
	if !s.closing {
		s.closing = true
		close(s.stop)
	}
	s.workersMu.Unlock()
	s.wg.Wait()
}

func (s *Store) closeDB() {
	if err := s.db.Close(); err != nil {
		s.node.log.Warn("closing store", "store", s.name, "err", err)
	}
}

func (s *Store) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// pebbleLogger routes pebble's logs to slog.
type pebbleLogger struct {
	log interface{ Warn(string, ...any) }
}

func (l pebbleLogger) Infof(string, ...interface{}) {}
func (l pebbleLogger) Errorf(format string, args ...interface{}) {
	l.log.Warn("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// attemptCtx bounds one attempt by the proposal timeout.
func (s *Store) attemptCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.node.opts.ProposalTimeout)
}

// onMerge runs on every replica of a left range after it absorbed range
// right: this node's replica of right stops. Its keys are the left
// range's now.
func (s *Store) onMerge(right uint64) {
	s.mu.Lock()
	rsm := s.mu.ranges[right]
	delete(s.mu.ranges, right)
	delete(s.mu.batchers, right)
	s.mu.Unlock()
	s.node.dir.changed()
	if rsm == nil {
		return
	}
	s.spawn(func() {
		if err := s.node.nh.StopReplica(right, rsm.replica); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) &&
			!errors.Is(err, dragonboat.ErrClosed) {
			s.node.log.Warn("stopping a merged range", "store", s.name, "range", right, "err", err)
			return
		}
		// The merged range's Raft log is of no further use.
		for i := 0; i < 50 && !s.stopped(); i++ {
			err := s.node.nh.RemoveData(right, rsm.replica)
			if err == nil || !errors.Is(err, dragonboat.ErrShardNotStopped) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// ingestStream writes the (marker, key, value) records of a snapshot
// stream, up to its end marker, into an sstable and ingests it.
func (s *Store) ingestStream(br *bufio.Reader, shardID uint64, stop <-chan struct{}) error {
	// Beside the DB's directory (same file system, so pebble links it).
	path := filepath.Join(filepath.Dir(s.dir), fmt.Sprintf(".%s.restore-%d-%d.sst", s.name, shardID, time.Now().UnixNano()))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f),
		s.popts.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat()))
	n := 0
	for ; ; n++ {
		if n%1024 == 0 {
			select {
			case <-stop:
				w.Close()
				return sm.ErrSnapshotStopped
			default:
			}
		}
		marker, err := br.ReadByte()
		if err != nil {
			w.Close()
			return err
		}
		if marker == 0 {
			break
		}
		k, err := readBytes(br)
		if err == nil {
			var v []byte
			if v, err = readBytes(br); err == nil {
				err = w.Set(dataKey(k), v)
			}
		}
		if err != nil {
			w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return s.db.Ingest(context.Background(), []string{path})
}
