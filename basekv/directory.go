package basekv

import (
	"bytes"
	"sort"
	"sync"
	"sync/atomic"
)

// Directory is the landscape that nodes of one cluster share: which nodes
// exist, at which Raft address, and which ranges each store has where.
// Until basecluster's gossip landscape replaces it, it is in-process: the
// nodes of one process (a test, an embedded cluster) share one Directory,
// and a lone node gets a private one. Its methods are safe for concurrent
// use.
type Directory struct {
	gen atomic.Uint64 // bumped on every change, for route caches

	mu        sync.RWMutex
	nodes     map[string]*Node  // live nodes
	addrs     map[string]string // node id → Raft address, kept after a node closes
	bootstrap map[string]string // store → node that created its first range
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{nodes: make(map[string]*Node), addrs: make(map[string]string),
		bootstrap: make(map[string]string)}
}

func (d *Directory) addNode(n *Node) {
	d.mu.Lock()
	d.nodes[n.id] = n
	d.addrs[n.id] = n.opts.RaftAddr
	d.mu.Unlock()
	d.gen.Add(1)
}

func (d *Directory) removeNode(id string) {
	d.mu.Lock()
	delete(d.nodes, id)
	d.mu.Unlock()
	d.gen.Add(1)
}

func (d *Directory) raftAddr(id string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, ok := d.addrs[id]
	return a, ok
}

func (d *Directory) node(id string) *Node {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.nodes[id]
}

// storeHolders returns the live nodes that opened store name, by id.
func (d *Directory) storeHolders(name string) map[string]*Store {
	d.mu.RLock()
	nodes := make([]*Node, 0, len(d.nodes))
	for _, n := range d.nodes {
		nodes = append(nodes, n)
	}
	d.mu.RUnlock()
	out := make(map[string]*Store)
	for _, n := range nodes {
		if s := n.store(name); s != nil {
			out[n.id] = s
		}
	}
	return out
}

// claimBootstrap lets exactly one node create a store's first range.
func (d *Directory) claimBootstrap(store, nodeID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if owner, ok := d.bootstrap[store]; ok {
		return owner == nodeID
	}
	d.bootstrap[store] = nodeID
	return true
}

func (d *Directory) changed() { d.gen.Add(1) }

// route is one range as the router sees it: its newest descriptor and the
// stores holding a replica of it.
type route struct {
	desc    RangeDescriptor
	holders []*Store
}

// rangeMap is a store's ranges sorted by start key.
type rangeMap struct {
	gen    uint64
	routes []route
}

// buildRangeMap merges the descriptors every live node reports for store
// name, as node via sees them (from its Landscape when it has one, else
// from the nodes of this directory): per range the newest version wins,
// and a range overlapped by a newer one (a split not yet seen everywhere)
// is dropped. A holder is a node whose Store this process can call.
func (d *Directory) buildRangeMap(via *Node, name string) *rangeMap {
	gen := d.gen.Load()
	reports := make(map[string][]RangeDescriptor)
	if via != nil && via.opts.Landscape != nil {
		reports = via.landscapeDescriptors(name)
	} else {
		for id, s := range d.storeHolders(name) {
			reports[id] = s.localDescriptors()
		}
	}
	byID := make(map[uint64]*route)
	for node, descs := range reports {
		var s *Store
		if n := d.node(node); n != nil {
			s = n.store(name)
		}
		if s == nil {
			continue // no in-process handle: reachable once RPC lands
		}
		for _, desc := range descs {
			r, ok := byID[desc.ID]
			switch {
			case !ok || desc.Ver > r.desc.Ver:
				byID[desc.ID] = &route{desc: desc, holders: []*Store{s}}
			case desc.Ver == r.desc.Ver:
				r.holders = append(r.holders, s)
			}
		}
	}
	routes := make([]route, 0, len(byID))
	for _, r := range byID {
		sort.Slice(r.holders, func(i, j int) bool { return r.holders[i].node.id < r.holders[j].node.id })
		routes = append(routes, *r)
	}
	sort.Slice(routes, func(i, j int) bool {
		if c := bytes.Compare(routes[i].desc.Start, routes[j].desc.Start); c != 0 {
			return c < 0
		}
		return routes[i].desc.Ver > routes[j].desc.Ver
	})
	// Drop ranges overlapped by a newer one (the left half of a split is
	// reported by one node before another reports the right half).
	out := routes[:0]
	for _, r := range routes {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			if prev.desc.End == nil || bytes.Compare(r.desc.Start, prev.desc.End) < 0 {
				if r.desc.Ver > prev.desc.Ver {
					out[n-1] = r
				}
				continue
			}
		}
		out = append(out, r)
	}
	return &rangeMap{gen: gen, routes: out}
}

// find returns the route of key, or false.
func (m *rangeMap) find(key []byte) (route, bool) {
	i := sort.Search(len(m.routes), func(i int) bool {
		return bytes.Compare(m.routes[i].desc.Start, key) > 0
	}) - 1
	if i < 0 || !m.routes[i].desc.Contains(key) {
		return route{}, false
	}
	return m.routes[i], true
}
