package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// order runs schedule on the loop, waits for the callback that it hands done to, lets the
// loop finish that pass, and returns what the callbacks recorded, in order.
func order(t *testing.T, l *Loop, schedule func(record func(string), done func())) string {
	t.Helper()
	var got []string
	finished := make(chan struct{})
	onLoop(t, l, func() {
		schedule(func(s string) { got = append(got, s) }, func() { close(finished) })
	})
	testutil.Recv(t, finished, "the callbacks")
	onLoop(t, l, func() {})
	return fmt.Sprint(got)
}

func TestCallSoonFIFOAndNextPass(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	got := order(t, l, func(record func(string), done func()) {
		for i := range 5 {
			l.CallSoon(func() {
				record(fmt.Sprint("a", i))
				if i == 0 {
					// Queued during a pass: must run after everything already queued.
					l.CallSoon(func() { record("nested") })
				}
			})
		}
		h := l.CallSoon(func() { record("cancelled") })
		h.Cancel()
		h.Cancel() // idempotent
		l.CallSoon(done)
	})
	if want := "[a0 a1 a2 a3 a4 nested]"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
}

// TestCallSoonFuncOrder checks that CallSoonFunc and CallSoon share one FIFO queue and that
// a CallSoonFunc made during a pass runs in the next one, after a pass-boundary marker.
func TestCallSoonFuncOrder(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	got := order(t, l, func(record func(string), done func()) {
		for i := range 6 {
			add := func() {
				record(fmt.Sprint("a", i))
				if i == 0 {
					l.CallSoonFunc(func() { record("nested") })
				}
			}
			if i%2 == 0 {
				l.CallSoonFunc(add)
			} else {
				l.CallSoon(add)
			}
		}
		l.CallSoon(func() { record("cancelled") }).Cancel()
		l.CallSoonFunc(func() {
			record("end")
			// Queued after "nested" (which a0 queued earlier in this pass).
			l.CallSoonFunc(done)
		})
	})
	if want := "[a0 a1 a2 a3 a4 a5 end nested]"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
}

// TestCallSoonFuncAllocs checks that scheduling and running a bound function allocates nothing.
func TestCallSoonFuncAllocs(t *testing.T) {
	l := startLoop(t, Options{})
	const n = 100
	count := 0
	cb := func() { count++ }
	var allocs float64
	onLoop(t, l, func() {
		for range 3 * n { // grow the ready queues first
			l.CallSoonFunc(cb)
		}
	})
	onLoop(t, l, func() {}) // a pass has run them
	onLoop(t, l, func() {
		allocs = testing.AllocsPerRun(n, func() { l.CallSoonFunc(cb) })
	})
	if allocs != 0 {
		t.Fatalf("CallSoonFunc: %v allocs per call, want 0", allocs)
	}
	testutil.WaitFor(t, "callbacks run", func() bool {
		c := 0
		onLoop(t, l, func() { c = count })
		return c == 3*n+n+1 // AllocsPerRun makes one warm-up call
	})
}

// TestOneWakePerPass checks that many callbacks queued in one pass, from the loop and from
// other goroutines, cost one waker write.
func TestOneWakePerPass(t *testing.T) {
	l := startLoop(t, Options{Debug: true}) // Debug counts the waker writes
	ran := 0
	cb := func() { ran++ }
	done := make(chan struct{})
	var before uint64
	onLoop(t, l, func() {
		before = wakes(l)
		for i := range 100 {
			if i%2 == 0 {
				l.CallSoonFunc(cb)
			} else {
				l.CallSoon(cb)
			}
			_ = l.CallSoonThreadsafe(cb)
		}
		l.CallSoonFunc(func() { close(done) })
	})
	testutil.Recv(t, done, "the callbacks")
	var after uint64
	onLoop(t, l, func() { after = wakes(l) })
	// One write for the queued callbacks; onLoop's own CallSoonThreadsafe may add one more.
	if d := after - before; d < 1 || d > 2 {
		t.Fatalf("%d waker writes for one pass of callbacks, want 1 (2 with onLoop's)", d)
	}
	if ran != 200 {
		t.Fatalf("%d callbacks ran, want 200", ran)
	}
}

func TestCallSoonDoesNotStarveIO(t *testing.T) {
	l := startLoop(t, Options{}, func() Protocol { return &echo{} })
	var spins int
	stop := false
	var spin func()
	spin = func() {
		spins++
		if !stop {
			l.CallSoon(spin)
		}
	}
	onLoop(t, l, func() { l.CallSoon(spin) })
	c := testutil.Dial(t, l.Addrs()[0].String())
	for i := range 20 {
		c.Send(fmt.Sprintf("ping %d\n", i))
		if line := c.Line(); line != fmt.Sprintf("ping %d\n", i) {
			t.Fatalf("echo %d: %q", i, line)
		}
	}
	var n int
	onLoop(t, l, func() { stop = true; n = spins })
	if n == 0 {
		t.Fatal("the self-requeuing callback never ran")
	}
}

func TestCallSoonThreadsafeManyGoroutines(t *testing.T) {
	l := startLoop(t, Options{})
	const G, N = 16, 8000 // 128k calls
	last := make([]int, G)
	bad := 0
	total := 0
	var wg sync.WaitGroup
	for g := range G {
		last[g] = -1
		wg.Go(func() {
			for i := range N {
				if err := l.CallSoonThreadsafe(func() {
					if last[g] != i-1 {
						bad++
					}
					last[g] = i
					total++
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var gotTotal, gotBad int
	testutil.WaitFor(t, "all calls", func() bool {
		onLoop(t, l, func() { gotTotal, gotBad = total, bad })
		return gotTotal == G*N
	})
	if gotBad != 0 {
		t.Fatalf("%d calls out of per-goroutine order", gotBad)
	}
}

// TestCallLaterTimeline runs timers on a fake clock and checks, step by step, which have run:
// in deadline order (ties in scheduling order), never before their deadline, cancelled ones
// never, and d <= 0 without the clock moving.
func TestCallLaterTimeline(t *testing.T) {
	clock := NewFakeClock(time.Unix(1e9, 0))
	l := startLoop(t, Options{Debug: true, Clock: clock})
	var got []string // loop-owned
	onLoop(t, l, func() {
		start := l.Time()
		if !start.Equal(clock.Now()) {
			t.Errorf("Time() = %v, want the clock's %v", start, clock.Now())
		}
		for _, tc := range []struct {
			name string
			d    time.Duration
		}{
			{"c", 30 * time.Millisecond},
			{"a", 10 * time.Millisecond},
			{"z", 0},
			{"b", 20 * time.Millisecond},
			{"b2", 20 * time.Millisecond}, // equal deadlines keep scheduling order
			{"neg", -time.Second},
		} {
			h := l.CallLater(tc.d, func() { t.Errorf("cancelled timer %s ran", tc.name) })
			if when := h.When(); !when.Equal(start.Add(tc.d)) {
				t.Errorf("CallLater(%v).When() = %v, want %v", tc.d, when, start.Add(tc.d))
			}
			h.Cancel()
			l.CallAt(start.Add(tc.d), func() { got = append(got, tc.name) })
		}
		x := l.CallLater(15*time.Millisecond, func() { got = append(got, "cancelled") })
		l.CallLater(5*time.Millisecond, func() { x.Cancel() })
	})
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{
		{0, "[neg z]"},
		{10*time.Millisecond - time.Nanosecond, "[neg z]"},
		{time.Nanosecond, "[neg z a]"},
		{5 * time.Millisecond, "[neg z a]"}, // 15ms: cancelled at 5ms
		{5 * time.Millisecond, "[neg z a b b2]"},
		{10*time.Millisecond - time.Nanosecond, "[neg z a b b2]"},
		{time.Hour, "[neg z a b b2 c]"},
	} {
		clock.Advance(step.advance)
		settle(t, l)
		var s string
		onLoop(t, l, func() { s = fmt.Sprint(got) })
		if s != step.want {
			t.Fatalf("at +%v: ran %s, want %s", clock.Now().Sub(time.Unix(1e9, 0)), s, step.want)
		}
	}
	if next, ok := clock.Next(); ok {
		t.Fatalf("a runtime timer is still armed for %v with no timer pending", next)
	}
}

// TestTimerCancelCompaction: cancelled timers are dropped from the heap before they come due,
// and never run once their deadline passes; the one live timer among them does.
func TestTimerCancelCompaction(t *testing.T) {
	clock := NewFakeClock(time.Unix(1e9, 0))
	l := startLoop(t, Options{Clock: clock})
	var fired, live, heap int
	onLoop(t, l, func() {
		for i := range 1000 {
			h := l.CallLater(time.Hour+time.Duration(i), func() { fired++ })
			h.Cancel()
		}
		l.CallLater(time.Hour, func() { live++ })
		heap = len(l.timers)
	})
	if heap > 200 {
		t.Errorf("heap holds %d entries after 1000 cancels; want compaction", heap)
	}
	clock.Advance(2 * time.Hour)
	settle(t, l)
	onLoop(t, l, func() { heap = len(l.timers) })
	if fired != 0 || live != 1 || heap != 0 {
		t.Fatalf("after the deadlines: %d cancelled timers ran, the live one ran %d times, %d left in the heap; want 0, 1, 0", fired, live, heap)
	}
}

func TestStopFromCallbackAndTwice(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(l *Loop)
	}{
		{"callback", func(l *Loop) { _ = l.CallSoonThreadsafe(l.Stop) }},
		{"goroutine", func(l *Loop) { l.Stop(); l.Stop() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(Options{})
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			tc.stop(l)
			testutil.Recv(t, l.Done(), "the loop to stop")
			if err := l.Wait(); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if err := l.CallSoonThreadsafe(func() {}); !errors.Is(err, ErrClosed) {
				t.Fatalf("CallSoonThreadsafe after stop: %v, want ErrClosed", err)
			}
			l.Stop()
		})
	}
}

func TestStopBeforeStart(t *testing.T) {
	l := New(Options{})
	l.Stop()
	testutil.Recv(t, l.Done(), "the loop to stop")
	if err := l.Start(); !errors.Is(err, ErrRunning) {
		t.Fatalf("Start after Stop: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	ln := testutil.Listen(t)
	l := New(Options{})
	if err := l.Listen(ln.Addr().String(), func() Protocol { return &echo{} }); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err == nil {
		l.Stop()
		testutil.Recv(t, l.Done(), "the loop to stop")
		t.Fatal("Start on a busy port succeeded")
	}
	for _, addr := range []string{"udp://127.0.0.1:0", "nonsense"} {
		if err := New(Options{}).Listen(addr, func() Protocol { return &echo{} }); err == nil {
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
}

func TestTwoListeners(t *testing.T) {
	l := New(Options{})
	var which [2]int
	for i := range 2 {
		if err := l.Listen("127.0.0.1:0", func() Protocol { which[i]++; return &echo{} }); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { l.Stop(); testutil.Recv(t, l.Done(), "the loop to stop") }()
	addrs := l.Addrs()
	if len(addrs) != 2 || addrs[0].String() == addrs[1].String() {
		t.Fatalf("Addrs = %v", addrs)
	}
	for i, a := range addrs {
		nc, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "accept", func() bool {
			n := 0
			onLoop(t, l, func() { n = which[i] })
			return n == 1
		})
		nc.Close()
	}
}

func TestDebugWrongGoroutinePanics(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("CallSoon off the loop did not panic in Debug mode")
		}
		if s := fmt.Sprint(r); s != "reactor: CallSoon called off the loop goroutine" {
			t.Fatalf("panic %q", s)
		}
	}()
	l.CallSoon(func() {})
}

func TestDebugWrongGoroutinePanicsCallSoonFunc(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	defer func() {
		if s := fmt.Sprint(recover()); s != "reactor: CallSoonFunc called off the loop goroutine" {
			t.Fatalf("panic %q", s)
		}
	}()
	l.CallSoonFunc(func() {})
}

func TestOnLoop(t *testing.T) {
	l := startLoop(t, Options{})
	if l.OnLoop() {
		t.Fatal("OnLoop true on the test goroutine")
	}
	var on, deep bool
	var rec func(int) bool
	rec = func(n int) bool { // a deep stack still yields the id
		if n == 0 {
			return l.OnLoop()
		}
		return rec(n - 1)
	}
	onLoop(t, l, func() { on = l.OnLoop(); deep = rec(200) })
	if !on || !deep {
		t.Fatalf("OnLoop on the loop: %v, at depth 200: %v; want true", on, deep)
	}
	ids := make(chan int64, 2)
	for range 2 {
		go func() { ids <- goid() }()
	}
	a, b := <-ids, <-ids
	if a <= 0 || b <= 0 || a == b || a == goid() {
		t.Fatalf("goroutine ids %d, %d (test %d): want positive and distinct", a, b, goid())
	}
}

// TestCallSoonFromIO checks callbacks queued by an I/O callback: they run without a waker
// write (gnet's task queue wakes the loop), and one that keeps rescheduling itself from there
// still leaves the loop polling its sockets.
func TestCallSoonFromIO(t *testing.T) {
	var l *Loop
	type res struct{ wakes uint64 }
	results := make(chan res, 16)
	var spins int
	var spin func()
	spin = func() {
		spins++
		l.CallSoonFunc(spin)
	}
	startLoopWith(t, Options{Debug: true}, func(lp *Loop) []ProtocolFactory {
		l = lp // before the loop starts
		return []ProtocolFactory{func() Protocol {
			return &collector{onData: func(c *collector) {
				first := spins == 0
				w0 := wakes(l)
				l.CallSoonFunc(func() {
					results <- res{wakes: wakes(l) - w0}
					c.t.Write([]byte("ok\n"))
				})
				if first {
					l.CallSoonFunc(spin)
				}
			}}
		}}
	})
	nc := testutil.Dial(t, l.Addrs()[0].String())
	for i := range 5 {
		nc.Send(fmt.Sprintf("ping %d\n", i))
		if line := nc.Line(); line != "ok\n" {
			t.Fatalf("reply %d: %q", i, line)
		}
		if got := testutil.Recv(t, results, "the deferred reply"); i == 0 && got.wakes != 0 {
			// Later rounds share passes with the spinning callback, which writes the waker.
			t.Fatalf("%d waker writes for a callback queued by DataReceived, want 0", got.wakes)
		}
	}
	n := 0
	onLoop(t, l, func() { n = spins; spin = func() {} })
	if n == 0 {
		t.Fatal("the self-requeuing callback never ran")
	}
}

// TestStopFromIOAfterCallSoon stops the loop from DataReceived after a CallSoonFunc armed the
// wake-up as a gnet task, so that the pass run by that task is the one that shuts down.
func TestStopFromIOAfterCallSoon(t *testing.T) {
	var l *Loop
	ran := make(chan struct{}, 1)
	lost := make(chan error, 1)
	startLoopWith(t, Options{Debug: true}, func(lp *Loop) []ProtocolFactory {
		l = lp
		return []ProtocolFactory{func() Protocol {
			return &collector{lost: lost, onData: func(c *collector) {
				l.CallSoonFunc(func() { ran <- struct{}{} })
				l.Stop()
			}}
		}}
	})
	nc, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("stop\n")); err != nil {
		t.Fatal(err)
	}
	testutil.Recv(t, l.Done(), "the loop to stop")
	if len(ran) != 1 || len(lost) != 1 {
		t.Fatalf("callback ran: %v, ConnectionLost ran: %v; want both", len(ran) == 1, len(lost) == 1)
	}
}

// TestEngineEndsOnItsOwn: when gnet ends the loop without Stop (as a poll failure would), the
// stop still runs in passes on the loop goroutine: ConnectionLost once, on the loop, and what it
// schedules runs too; pending timers never fire; Done closes.
func TestEngineEndsOnItsOwn(t *testing.T) {
	made := make(chan *Transport, 1)
	lost := make(chan bool, 2) // ConnectionLost ran on the loop
	after := make(chan bool, 1)
	var l *Loop
	l = startLoopWith(t, Options{Debug: true}, func(lp *Loop) []ProtocolFactory {
		l = lp
		return []ProtocolFactory{func() Protocol {
			return &funcProto{
				made: func(t *Transport) { made <- t },
				lost: func(error) {
					lost <- l.OnLoop()
					l.CallSoonFunc(func() { after <- l.OnLoop() })
				},
			}
		}}
	})
	dialNet(t, l)
	testutil.Recv(t, made, "ConnectionMade")
	fired := false
	onLoop(t, l, func() { l.CallLater(time.Hour, func() { fired = true }) })
	stopped := make(chan error, 1)
	go func() { // gnet's own Stop, not the loop's
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- l.eng.Stop(ctx)
	}()
	testutil.Recv(t, l.Done(), "the loop to end")
	if !testutil.Recv(t, lost, "ConnectionLost") {
		t.Error("ConnectionLost ran off the loop goroutine")
	}
	if !testutil.Recv(t, after, "the callback ConnectionLost scheduled") {
		t.Error("a callback scheduled at stop ran off the loop goroutine")
	}
	if len(lost) != 0 || fired {
		t.Errorf("ConnectionLost ran again: %v; the pending timer fired: %v", len(lost) != 0, fired)
	}
	if err := testutil.Recv(t, stopped, "gnet's Stop to return"); err != nil {
		t.Errorf("gnet's Stop: %v", err)
	}
}

// CallAtPassEnd runs its callbacks once the callbacks the pass began with have run, in the
// same pass (before what they scheduled with CallSoon), in the order given; outside a pass it
// is CallSoonFunc.
func TestCallAtPassEnd(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	var got []string
	done := make(chan struct{})
	onLoop(t, l, func() {
		l.CallSoonFunc(func() {
			l.CallAtPassEnd(func() {
				got = append(got, "end1")
				l.CallAtPassEnd(func() { got = append(got, "end3") })
			})
			l.CallSoonFunc(func() { got = append(got, "next pass"); close(done) })
			l.CallAtPassEnd(func() { got = append(got, "end2") })
		})
		l.CallSoonFunc(func() { got = append(got, "same pass") })
	})
	testutil.Recv(t, done, "the next pass")
	onLoop(t, l, func() {
		want := "same pass end1 end2 end3 next pass"
		if s := strings.Join(got, " "); s != want {
			t.Errorf("order %q, want %q", s, want)
		}
	})
}
