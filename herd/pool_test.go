package herd

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// TestPendingWHATSATsTakeNoGoroutine: 10,000 WHATSATs waiting on a Places API that holds its
// answers cost no goroutine each: the process's goroutines grow by at most what the worker
// pool allows (a worker and the fake API's connection goroutine per call in flight), not by
// the number of requests. Once the API answers, every WHATSAT gets its reply, in order.
func TestPendingWHATSATsTakeNoGoroutine(t *testing.T) {
	const pending, workers = 10000, 8
	f, url := fake.StartTest(t, fake.Options{Results: -1, NoRecord: true})
	cfg := testConfig(t, url, ServerConfig{Name: "Hill"})
	cfg.Places.Workers = workers
	cfg.Places.MaxConns = workers
	cfg.Places.Timeout = 5 * time.Minute // nothing times out while the fake holds the calls
	cfg.Limits.MaxPending = pending
	cfg.Limits.MaxUnsent = 64 << 20
	f.Hold()
	t.Cleanup(f.Release)
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	c.Line()

	// Distinct questions (radius 1 m to 10 km), so that the loop shares none of them.
	var b strings.Builder
	for i := 1; i <= pending; i++ {
		fmt.Fprintf(&b, "WHATSAT kiwi.cs.ucla.edu %d.%03d 1\n", i/1000, i%1000)
	}
	heap0, stack0 := memInUse()
	before := runtime.NumGoroutine()
	c.Send(b.String())
	testutil.WaitFor(t, "every WHATSAT to be read", func() bool { return s.Metrics().WHATSATs.Load() == pending })
	testutil.WaitFor(t, "the workers' calls to reach Places", func() bool { return f.Count() == workers })
	during := runtime.NumGoroutine()
	heap1, stack1 := memInUse()
	t.Logf("%d WHATSATs pending, %d workers: goroutines %d -> %d; heap in use +%d B/pending, stacks +%d B/pending",
		pending, workers, before, during, (heap1-heap0)/pending, (stack1-stack0)/pending)
	// A worker and the fake's connection goroutine for each call in flight, and a few the
	// fasthttp client and server start (cleaners, the server's date updater).
	if limit := before + 2*workers + 8; during > limit {
		t.Errorf("%d goroutines while %d WHATSATs wait (%d before): want at most %d with %d workers",
			during, pending, before, limit, workers)
	}
	if n := f.Count(); n != workers {
		t.Errorf("%d Places calls in flight, want %d (the worker count)", n, workers)
	}

	f.Release()
	for i := range pending {
		if got := c.Reply(); !strings.HasPrefix(got, kiwiAT+"\n{") || !strings.Contains(got, `"ZERO_RESULTS"`) {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	if n := f.Count(); n != pending {
		t.Errorf("%d Places calls for %d distinct WHATSATs", n, pending)
	}
}

// memInUse returns the bytes of heap and of goroutine stacks in use, after a collection.
func memInUse() (heap, stack int64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse), int64(m.StackInuse)
}

// With places.cache_ttl, a WHATSAT asked again within the TTL is answered from the cache: no
// second Places call, the same reply.
func TestWHATSATCache(t *testing.T) {
	f, url := fake.StartTest(t, fake.Options{})
	cfg := testConfig(t, url, ServerConfig{Name: "Hill"})
	cfg.Places.CacheTTL = time.Hour
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.Line()
	first := c.Reply()
	c.Send("WHATSAT kiwi.cs.ucla.edu 10 3\n")
	second := c.Reply()
	if first != whatsatWant(t, 10000, 20, 5) || second != whatsatWant(t, 10000, 20, 3) {
		t.Errorf("replies:\n%q\n%q", first, second)
	}
	m := s.Metrics()
	if f.Count() != 1 || m.PlacesCalls.Load() != 1 || m.PlacesCacheHits.Load() != 1 {
		t.Errorf("%d Places requests, %d calls, %d cache hits; want 1, 1, 1", f.Count(), m.PlacesCalls.Load(), m.PlacesCacheHits.Load())
	}
}

// heldProvider answers once release is closed, whatever its ctx says: a call that overruns.
type heldProvider struct {
	started chan struct{}
	release chan struct{}
}

func (heldProvider) Name() string { return "held" }

func (p heldProvider) Nearby(ctx context.Context, req places.Request) ([]byte, error) {
	p.started <- struct{}{}
	<-p.release
	return stubProvider{}.Nearby(ctx, req)
}

// A WHATSAT whose call waits for a worker longer than places.timeout is answered with a
// timeout at its deadline, without the call being made, while the worker is still busy; the
// call that holds the worker past its deadline is answered with a timeout at its own.
func TestWHATSATTimesOutInQueue(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Places.Workers = 1
	cfg.Places.Timeout = 200 * time.Millisecond
	p := heldProvider{started: make(chan struct{}, 2), release: make(chan struct{})}
	s := startServer(t, cfg, "Hill", hillClock, WithProvider(p))
	t.Cleanup(func() { close(p.release) }) // before the shutdown, which waits for the call
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.Line()
	<-p.started
	c2 := testutil.Dial(t, s.Addr().String())
	c2.Send("WHATSAT kiwi.cs.ucla.edu 20 5\n")
	want := kiwiAT + "\n" + string(codec.AppendErrorBody(nil, "UNKNOWN_ERROR", "places: timeout after 200ms")) + "\n"
	if got := c2.Reply(); got != want {
		t.Errorf("queued WHATSAT:\n%q\nwant\n%q", got, want)
	}
	if got := c.Reply(); got != want {
		t.Errorf("WHATSAT whose call overran:\n%q\nwant\n%q", got, want)
	}
	if len(p.started) != 0 {
		t.Error("the call past its deadline was made")
	}
	if n := s.Metrics().PlacesErrorsBy[0].Load(); n != 2 {
		t.Errorf("Places timeouts = %d, want 2", n)
	}
}
