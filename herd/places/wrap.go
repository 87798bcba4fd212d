package places

import (
	"context"
	"sync"
	"time"

	"github.com/herd-project/herd/codec"
	"golang.org/x/sync/singleflight"
)

// shared coalesces identical requests, caches answers and counts; it is what New returns.
type shared struct {
	p       provider
	timeout time.Duration
	group   singleflight.Group
	metrics Metrics
	cache   *cache // nil: off
	now     func() time.Time
	joined  func() // test hook: called once a caller has joined (or started) the shared call
}

func wrap(p provider, cfg Config) *shared {
	s := &shared{p: p, timeout: cfg.Timeout, now: time.Now}
	if cfg.CacheTTL > 0 {
		size := cfg.CacheSize
		if size <= 0 {
			size = 10000
		}
		s.cache = &cache{ttl: cfg.CacheTTL, max: size, m: make(map[string]cacheEntry)}
	}
	return s
}

// Name returns the name of the wrapped provider. Any goroutine.
func (s *shared) Name() string { return s.p.Name() }

// Metrics returns the counters. Any goroutine.
func (s *shared) Metrics() *Metrics { return &s.metrics }

type result struct {
	body []byte
	err  error
}

// Nearby answers req, sharing the upstream call with identical requests in flight. A caller
// whose ctx ends first gets the UNKNOWN_ERROR body; the shared call goes on for the others.
func (s *shared) Nearby(ctx context.Context, req Request) ([]byte, error) {
	s.metrics.Calls.Add(1)
	req = normalize(req)
	k := s.p.key(req)
	if s.cache != nil {
		if body, ok := s.cache.get(k, s.now()); ok {
			s.metrics.CacheHits.Add(1)
			return body, nil
		}
	}
	leader := false // set only by this caller's function, if it is the one that runs
	ch := s.group.DoChan(k, func() (any, error) {
		leader = true
		// The call belongs to every caller that joins it: no single caller's ctx may end it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout+time.Second)
		defer cancel()
		s.metrics.Upstream.Add(1)
		start := time.Now()
		body, err := s.p.Nearby(cctx, req)
		d := uint64(time.Since(start))
		s.metrics.LatencyNs.Add(d)
		for {
			old := s.metrics.MaxNs.Load()
			if d <= old || s.metrics.MaxNs.CompareAndSwap(old, d) {
				break
			}
		}
		if err != nil {
			s.metrics.Errors.Add(1)
		} else if s.cache != nil {
			s.cache.put(k, body, s.now())
		}
		return result{body, err}, nil
	})
	if s.joined != nil {
		s.joined()
	}
	select {
	case r := <-ch:
		if !leader {
			s.metrics.Shared.Add(1)
		}
		res := r.Val.(result)
		return res.body, res.err
	case <-ctx.Done():
		err := ctx.Err()
		return codec.AppendErrorBody(nil, "UNKNOWN_ERROR", "places: "+err.Error()), err
	}
}

// cache maps a request key to a body until the entry's TTL passes.
type cache struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	m   map[string]cacheEntry
}

type cacheEntry struct {
	body    []byte
	expires time.Time
}

func (c *cache) get(k string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.m, k)
		return nil, false
	}
	return e.body, true
}

func (c *cache) put(k string, body []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Drop expired entries; if that frees nothing, drop arbitrary ones (map order).
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cacheEntry{body: body, expires: now.Add(c.ttl)}
}
