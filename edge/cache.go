package edge

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/amphi-live/amphi/internal/llhls"
)

// cache is a byte-bounded LRU of immutable media objects (init sections,
// parts, segments), keyed by "NAME/FILE". It does no fetching: fetch.go
// collapses misses onto one upstream request.
type cache struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[string, *llhls.Object]
	bytes int64
	limit int64
}

func newCache(limit int64) *cache {
	c := &cache{limit: limit}
	// The entry count is bounded by bytes, not by count: the simplelru
	// size is only a ceiling that byte accounting never reaches.
	l, _ := simplelru.NewLRU[string, *llhls.Object](1<<30, func(_ string, o *llhls.Object) {
		c.bytes -= int64(len(o.Data))
	})
	c.lru = l
	return c
}

func (c *cache) get(key string) *llhls.Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, _ := c.lru.Get(key)
	return o
}

// add stores o and evicts the least recently used objects beyond the limit.
// An object larger than the whole cache is not stored.
func (c *cache) add(key string, o *llhls.Object) {
	size := int64(len(o.Data))
	if size > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(key); ok {
		c.bytes -= int64(len(old.Data))
	}
	c.lru.Add(key, o)
	c.bytes += size
	for c.bytes > c.limit {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
	}
}

// size returns the bytes and the number of objects held.
func (c *cache) size() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.lru.Len()
}
