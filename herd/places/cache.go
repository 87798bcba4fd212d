package places

import (
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// DefaultCacheSize is the most answers a Cache made with size 0 keeps: bodies are a few KiB
// (up to tens of KiB for 20 results), so at most some 100 MiB.
const DefaultCacheSize = 10000

// Cache keeps answers for a time to live, evicting the least recently used past its size: an
// LRU with expiring entries (hashicorp/golang-lru's expirable). Every method may be called from
// any goroutine; each takes the cache's lock for O(1) work. A nil *Cache is an empty cache that
// keeps nothing.
//
// Cost beyond the entries: one goroutine per Cache, for the life of the process, which drops
// expired entries in the background (the library offers no way to stop it), so make one per
// process, not one per request or per test. Only answers without error belong in it: a
// failure is asked again.
type Cache struct {
	lru *expirable.LRU[string, []byte]
}

// NewCache returns a cache of at most size answers (0: DefaultCacheSize), each kept for ttl,
// or nil (no cache) when ttl <= 0. Any goroutine.
func NewCache(size int, ttl time.Duration) *Cache {
	if ttl <= 0 {
		return nil
	}
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{lru: expirable.NewLRU[string, []byte](size, nil, ttl)}
}

// Get returns the body kept for key, if it has not expired. The body is shared: the caller
// must not modify it. Any goroutine.
func (c *Cache) Get(key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	return c.lru.Get(key)
}

// Add keeps body for key for the cache's TTL. The cache keeps body itself: the caller must not
// modify it afterwards. Any goroutine.
func (c *Cache) Add(key string, body []byte) {
	if c != nil {
		c.lru.Add(key, body)
	}
}

// Len returns the number of answers kept (expired ones included until they are dropped).
// Any goroutine.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return c.lru.Len()
}
