package herd

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/internal/testutil"
)

// pendingFlood connects clients clients to s, each with a record of its own, and returns the
// WHATSAT lines each will send: perClient (at most 50,000) distinct requests (radii 1 m
// apart), so that none is shared with another.
func pendingFlood(t *testing.T, s *Server, clients, perClient int) ([]*testutil.Conn, []string) {
	t.Helper()
	conns := make([]*testutil.Conn, clients)
	batches := make([]string, clients)
	for i := range conns {
		c := testutil.Dial(t, s.Addr().String())
		id := fmt.Sprintf("flood%d", i)
		c.Send(fmt.Sprintf("IAMAT %s +%d.5-%d.5 1700000000\n", id, i%80, i%170))
		c.Line()
		var b strings.Builder
		for j := range perClient {
			fmt.Fprintf(&b, "WHATSAT %s %d.%03d 5\n", id, (j+1)/1000, (j+1)%1000)
		}
		conns[i], batches[i] = c, b.String()
	}
	return conns, batches
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// pendingCost is the documented bound on the heap a WHATSAT holds while it waits for Places
// (README, "Bounds"): its reply slot with the AT line, its share of the Places call, the
// executor's job and its deadline timer. Measured: 664 bytes (1,746 before the slot stopped
// reserving 1 KiB for the body).
const pendingCost = 1024

// TestPendingWHATSATMemory is the regression test for pending WHATSATs bounded only per
// client (200 clients x 250 unread WHATSATs held 428 MB): 50 clients send 200 WHATSATs each to
// a Places that does not answer, with limits.max_waiting at exactly that many. The live heap
// grows by at most pendingCost per WHATSAT, and one more WHATSAT, from another client, is
// answered at once with an UNKNOWN_ERROR saying the server is busy, without a Places call.
func TestPendingWHATSATMemory(t *testing.T) {
	const clients, perClient = 50, 200
	const n = clients * perClient
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Places.Timeout = time.Minute
	cfg.Places.Workers = 4
	cfg.Limits.MaxWaiting = n
	gate := make(chan struct{})
	defer close(gate)
	s := startServer(t, cfg, "Hill", WithProvider(gateProvider{gate}))
	conns, batches := pendingFlood(t, s, clients, perClient)
	before := heapInUse()
	for i, c := range conns {
		c.Send(batches[i])
	}
	testutil.WaitFor(t, "every WHATSAT waiting", func() bool { return s.Metrics().PlacesCalls.Load() == n })
	after := heapInUse()
	per := float64(int64(after)-int64(before)) / n
	t.Logf("%d WHATSATs waiting: heap %d -> %d bytes, %.0f bytes each", n, before, after, per)
	if per > pendingCost {
		t.Errorf("a waiting WHATSAT holds %.0f bytes, over the documented %d", per, pendingCost)
	}
	if w := s.Metrics().Waiting.Load(); w != n {
		t.Errorf("%d WHATSATs waiting, want %d", w, n)
	}

	late := testutil.Dial(t, s.Addr().String())
	late.Send("WHATSAT flood0 10 5\n")
	got := late.Reply()
	if !strings.HasPrefix(got, "AT Hill ") || !strings.Contains(got, `"status" : "UNKNOWN_ERROR"`) || !strings.Contains(got, "server busy") {
		t.Fatalf("WHATSAT past max_waiting: %q, want an UNKNOWN_ERROR saying the server is busy", got)
	}
	m := s.Metrics()
	if m.PlacesCalls.Load() != n || m.Waiting.Load() != n {
		t.Errorf("after the busy answer: %d calls, %d waiting; want %d and %d", m.PlacesCalls.Load(), m.Waiting.Load(), n, n)
	}
	if b := m.PlacesErrorsBy[placesErrBusy].Load(); b != 1 {
		t.Errorf("%d busy answers counted, want 1", b)
	}
}

// slowProvider answers each request after delay (or when its ctx ends), and counts the calls
// made for each latitude.
type slowProvider struct {
	delay time.Duration
	mu    sync.Mutex
	calls map[string]int
}

func (*slowProvider) Name() string { return "slow" }

func (p *slowProvider) Nearby(ctx context.Context, req places.Request) ([]byte, error) {
	p.mu.Lock()
	p.calls[req.Lat]++
	p.mu.Unlock()
	select {
	case <-time.After(p.delay):
	case <-ctx.Done(): // as the Google providers answer a call past its deadline
		return codec.AppendErrorBody(nil, "UNKNOWN_ERROR", "places: timeout"), places.ErrTimeout
	}
	return stubProvider{}.Nearby(ctx, req)
}

// TestWHATSATFairAndOnTime is the regression test for a flood of one client's WHATSATs that
// delayed everyone's: another client's WHATSAT took 29.3 s against a 2 s places.timeout, since
// the timeout started only once a worker was free and the queue was one FIFO. One client
// queues 15,000 WHATSATs on 4 workers at 20 ms a call; another client's WHATSAT, sent after,
// is served in its turn, ahead of the flood, with a real answer. Every WHATSAT of the flood
// is answered (the ones that waited too long with an UNKNOWN_ERROR timeout), the last within
// places.timeout of its arrival, plus a margin for the loop's lag.
func TestWHATSATFairAndOnTime(t *testing.T) {
	const flood = 15000
	const timeout = 2 * time.Second
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Places.Timeout = timeout
	cfg.Places.Workers = 4
	cfg.Limits.MaxPending = flood
	cfg.Limits.MaxWaiting = flood + 1
	prov := &slowProvider{delay: 20 * time.Millisecond, calls: make(map[string]int)}
	// Debug mode's checks (a stack trace per loop-only call) would make the loop, not the
	// queue, the bottleneck of 15,000 WHATSATs under the race detector.
	s := startServer(t, cfg, "Hill", WithProvider(prov), WithDebug(false))
	conns, batches := pendingFlood(t, s, 1, flood)
	a := conns[0]
	b := testutil.Dial(t, s.Addr().String())
	b.Send("IAMAT other +45.5-45.5 1700000000\n")
	b.Line()

	type tally struct {
		answered, timedOut int
		last               time.Time // when the last reply was read
		err                error
	}
	done := make(chan tally, 1)
	go func() { // reads the flood's replies as they come, and sorts them once all are in
		var tl tally
		var all []byte
		buf := make([]byte, 256<<10)
		end := []byte("}\n\n")
		replies, scanned := 0, 0
		a.TCP.SetReadDeadline(time.Now().Add(60 * time.Second))
		for replies < flood {
			n, err := a.TCP.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				tl.err = fmt.Errorf("reading the flood's replies after %d: %w", replies, err)
				done <- tl
				return
			}
			replies += bytes.Count(all[max(scanned-len(end)+1, 0):], end)
			scanned = len(all)
		}
		tl.last = time.Now()
		for _, r := range strings.SplitAfter(string(all), "}\n\n")[:flood] {
			switch {
			case strings.Contains(r, `"status" : "ZERO_RESULTS"`):
				tl.answered++
			case strings.Contains(r, `"status" : "UNKNOWN_ERROR"`) && strings.Contains(r, `"places: timeout`):
				tl.timedOut++
			default:
				tl.err = fmt.Errorf("flood reply %q", r)
			}
		}
		done <- tl
	}()
	a.Send(batches[0])
	sent := time.Now()
	testutil.WaitFor(t, "the flood read", func() bool { return s.Metrics().WHATSATs.Load() == flood })
	read := time.Now() // the last WHATSAT of the flood arrived a moment before
	t.Logf("flood read in %v", read.Sub(sent))

	asked := time.Now()
	b.Send("WHATSAT other 10 5\n")
	got := b.Reply()
	took := time.Since(asked)
	t.Logf("the other client's WHATSAT, behind %d: answered in %v", flood, took)
	if !strings.Contains(got, `"status" : "ZERO_RESULTS"`) {
		t.Errorf("the other client's WHATSAT got %q, want the real answer: it waited behind the flood", got)
	}
	if took > timeout {
		t.Errorf("the other client's WHATSAT took %v, past places.timeout %v", took, timeout)
	}

	tl := <-done
	if tl.err != nil {
		t.Fatal(tl.err)
	}
	t.Logf("flood: %d answered, %d timed out; last reply %v after the last WHATSAT was read", tl.answered, tl.timedOut, tl.last.Sub(read))
	if tl.timedOut == 0 || tl.answered == 0 {
		t.Errorf("flood: %d answered, %d timed out; want both", tl.answered, tl.timedOut)
	}
	// The margin is the loop's lag: 15,000 expiries under the race detector make it a fraction
	// of a second on an idle machine and seconds on a loaded one. What the test tells apart is
	// a queue whose deadline runs from the arrival from one that starts it at a free worker:
	// that FIFO answers the last of the flood 15,000 x 20 ms / 4 workers = 75 s later.
	if d := tl.last.Sub(read); d > timeout+10*time.Second {
		t.Errorf("the flood's last reply came %v after its last WHATSAT was read, past places.timeout %v and a 10 s margin", d, timeout)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if n := prov.calls["45.5"] + prov.calls["+45.5"]; n != 1 {
		t.Errorf("the other client's request was made %d times, want 1", n)
	}
}
