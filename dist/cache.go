package dist

import (
	"encoding/binary"
	"strings"
	"sync"

	"github.com/bifromq-go/bifromq/basekv/coproc"
)

// matchCache is the per-tenant match cache of one dist.worker range
// replica: a trie of each tenant's filters, kept in memory and updated
// incrementally by every add and remove.
//
// Consistency: a tenant's trie is built and changed only on the apply path
// (Mutate, serialized in log order), from a reader of the apply batch, so
// it always equals the applied routes; queries read it under a read lock.
// A tenant with no trie yet is matched by the walk over the range's keys.
// Reset (split, merge, snapshot restore) drops every trie: tenants are
// rebuilt by their next mutation.
type matchCache struct {
	mu      sync.RWMutex
	tenants map[string]*trieNode
}

type trieNode struct {
	children map[string]*trieNode
	routes   []Route        // the routes of the filter ending here
	index    map[string]int // position in routes by route key
}

func newTrieNode() *trieNode { return &trieNode{} }

func (n *trieNode) add(levels []string, key string, r Route) {
	for _, l := range levels {
		if n.children == nil {
			n.children = make(map[string]*trieNode)
		}
		c := n.children[l]
		if c == nil {
			c = newTrieNode()
			n.children[l] = c
		}
		n = c
	}
	if i, ok := n.index[key]; ok {
		n.routes[i] = r
		return
	}
	if n.index == nil {
		n.index = make(map[string]int)
	}
	n.index[key] = len(n.routes)
	n.routes = append(n.routes, r)
}

// remove deletes a route and prunes empty nodes; it reports whether n
// became empty.
func (n *trieNode) remove(levels []string, key string) bool {
	if len(levels) == 0 {
		if i, ok := n.index[key]; ok {
			last := len(n.routes) - 1
			if i != last {
				n.routes[i] = n.routes[last]
				n.index[string(RouteKey(n.routes[i]))] = i
			}
			n.routes[last] = Route{}
			n.routes = n.routes[:last]
			delete(n.index, key)
		}
	} else if c := n.children[levels[0]]; c != nil {
		if c.remove(levels[1:], key) {
			delete(n.children, levels[0])
		}
	}
	return len(n.routes) == 0 && len(n.children) == 0
}

// match appends the routes of every filter under n matching levels[d:].
func (n *trieNode) match(levels []string, d int, dollar bool, out *[]Route) {
	wild := !(d == 0 && dollar)
	if wild {
		if c := n.children["#"]; c != nil {
			*out = append(*out, c.routes...)
		}
	}
	if d == len(levels) {
		*out = append(*out, n.routes...)
		return
	}
	if c := n.children[levels[d]]; c != nil {
		c.match(levels, d+1, dollar, out)
	}
	if wild && levels[d] != "+" {
		if c := n.children["+"]; c != nil {
			c.match(levels, d+1, dollar, out)
		}
	}
}

// lookup matches from the trie; false when the tenant has none.
func (c *matchCache) lookup(tenant, topic string) ([]Route, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.tenants[tenant]
	if t == nil {
		return nil, false
	}
	var out []Route
	t.match(strings.Split(topic, "/"), 0, strings.HasPrefix(topic, "$"), &out)
	return out, true
}

// ensure builds tenant's trie from r (the apply batch) when it has none.
// Apply path only.
func (c *matchCache) ensure(tenant string, r coproc.Reader) error {
	c.mu.RLock()
	loaded := c.tenants[tenant] != nil
	c.mu.RUnlock()
	if loaded {
		return nil
	}
	t := newTrieNode()
	prefix := appendSeg(nil, tenant)
	err := r.Iterate(prefix, prefixEnd(prefix), func(k, v []byte) bool {
		if rt, err := DecodeRouteKey(k); err == nil {
			rt.Incarnation, _ = binary.Uvarint(v)
			t.add(strings.Split(rt.Filter, "/"), string(k), rt)
		}
		return true
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.tenants == nil {
		c.tenants = make(map[string]*trieNode)
	}
	c.tenants[tenant] = t
	c.mu.Unlock()
	return nil
}

// apply records an applied add (or remove) of route r with key k; an
// added r carries its incarnation. Apply path only, after ensure.
func (c *matchCache) apply(add bool, k []byte, r Route) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[r.Tenant]
	if t == nil {
		return
	}
	if add {
		t.add(strings.Split(r.Filter, "/"), string(k), r)
	} else {
		t.remove(strings.Split(r.Filter, "/"), string(k))
	}
}

func (c *matchCache) reset() {
	c.mu.Lock()
	c.tenants = nil
	c.mu.Unlock()
}
