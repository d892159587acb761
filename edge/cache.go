package edge

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/amphi-live/amphi/internal/llhls"
)

// cache is a byte-bounded LRU of immutable media objects (init sections,
// parts, segments), keyed by "NAME/FILE". It does no fetching: stream.go
// collapses misses onto one upstream request.
type cache struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[string, *entry]
	bytes int64
	limit int64
}

// entry is a cached object. live marks a part fetched at the live edge
// (announced or preload-hinted), whose delivery delay the metrics measure.
type entry struct {
	obj  *llhls.Object
	live bool
}

func newCache(limit int64) *cache {
	c := &cache{limit: limit}
	// The entry count is bounded by bytes, not by count: the simplelru
	// size is only a ceiling that byte accounting never reaches.
	l, _ := simplelru.NewLRU[string, *entry](1<<30, func(_ string, e *entry) {
		c.bytes -= int64(len(e.obj.Data))
	})
	c.lru = l
	return c
}

// get returns the object under key, nil when absent, and whether it is a
// live part.
func (c *cache) get(key string) (o *llhls.Object, live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Get(key); ok {
		return e.obj, e.live
	}
	return nil, false
}

// markLive marks the object under key, if any, as a live part.
func (c *cache) markLive(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Peek(key); ok {
		e.live = true
	}
}

// add stores o and evicts the least recently used objects beyond the limit.
// An object larger than the whole cache is not stored.
func (c *cache) add(key string, o *llhls.Object, live bool) {
	size := int64(len(o.Data))
	if size > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(key); ok {
		c.bytes -= int64(len(old.obj.Data))
		live = live || old.live
	}
	c.lru.Add(key, &entry{obj: o, live: live})
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
