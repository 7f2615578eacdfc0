package dist

import (
	"sync"
	"sync/atomic"
	"time"
)

// routeCache keeps recent match results of the Service, so a topic
// published again does not go through the store for every batch.
//
// Consistency: every route change this Service makes (AddRoute,
// RemoveRoute, unrouting gone receivers) bumps the generation before it
// returns, and an entry of an older generation is never used, so on one
// node a subscribe acknowledged to a client is seen by the next publish.
// Changes made through another node's Service reach this one within
// routeCacheTTL (with a cluster, routing is eventually consistent for that
// long).
type routeCache struct {
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[routeCacheKey]routeCacheEntry
}

type routeCacheKey struct{ tenant, topic string }

type routeCacheEntry struct {
	routes  []Route
	gen     uint64
	expires int64 // unix ns
}

const (
	routeCacheTTL  = time.Second
	routeCacheSize = 100_000
)

// get returns the cached routes of (tenant, topic), if current.
func (c *routeCache) get(tenant, topic string, now int64) ([]Route, bool) {
	c.mu.RLock()
	e, ok := c.m[routeCacheKey{tenant, topic}]
	c.mu.RUnlock()
	if !ok || e.gen != c.gen.Load() || now > e.expires {
		return nil, false
	}
	return e.routes, true
}

// put stores routes read at generation gen (read before the match).
func (c *routeCache) put(tenant, topic string, routes []Route, gen uint64, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= routeCacheSize {
		c.m = make(map[routeCacheKey]routeCacheEntry) // bounded: start over
	}
	c.m[routeCacheKey{tenant, topic}] = routeCacheEntry{routes: routes, gen: gen, expires: now + int64(routeCacheTTL)}
}

// invalidate makes every cached entry stale.
func (c *routeCache) invalidate() { c.gen.Add(1) }
