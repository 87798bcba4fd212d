package reactor

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Clock is the loop's source of time, given as Options.Clock: Now reads it (Loop.Time, the
// deadlines of CallLater, the check for due timers), and AfterFunc arms the one runtime timer
// that wakes the loop at the earliest deadline. As golang.org/x/time/rate takes time as an
// argument, a loop given a FakeClock runs its timers on a timeline the test moves, with no
// sleeps. A Clock must be safe for use by any goroutine.
//
// Only the loop's own timers follow the Clock: CallLater and CallAt, and the lingering close's
// Options.LingerTimeout. What waits on the network keeps real time, whatever the Clock: Dial's
// timeout, Options.HalfCloseWriteTimeout and the polling for drained write buffers (see
// gnetgaps.go).
type Clock interface {
	Now() time.Time
	// AfterFunc calls f, on a goroutine of the Clock's choosing, once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is what Clock.AfterFunc returns; *time.Timer is one. Stop and Reset behave as
// time.Timer's.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// SystemClock is the Clock of the zero Options: time.Now and time.AfterFunc.
type SystemClock struct{}

// Now returns time.Now(). Any goroutine.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc returns time.AfterFunc(d, f). Any goroutine.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// FakeClock is a Clock for tests: its time stands still until Advance moves it, and then the
// functions given to AfterFunc whose deadline it reached run, in deadline order (ties in the
// order they were armed), on the goroutine that called Advance. A function armed for a time
// that has already come runs at once, on the goroutine that arms it. For a loop that means:
// after Advance, the timers it made due run in the loop's next pass. Several loops may share
// one FakeClock. Any goroutine may call its methods. Make one with NewFakeClock.
//
// It is written here rather than taken from a clock library because tests of the loop need to
// see the deadline the loop armed (Next), which those libraries do not show, and the loop
// needs only Now and AfterFunc.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*fakeTimer // armed, in no order: a loop arms one at a time
}

type fakeTimer struct {
	c     *FakeClock
	f     func()
	when  time.Time
	seq   uint64
	armed bool
}

// NewFakeClock returns a FakeClock that reads start until it is advanced.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the clock's time. Any goroutine.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run once the clock has been advanced by d (at once if d <= 0). Any
// goroutine.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &fakeTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d (d < 0 is taken as 0) and runs, in deadline order, the
// functions armed for a time up to the new one. It returns once they have returned. Any
// goroutine.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(max(d, 0))
	var due []*fakeTimer
	live := c.timers[:0]
	for _, t := range c.timers {
		if t.when.After(c.now) {
			live = append(live, t)
			continue
		}
		t.armed = false
		due = append(due, t)
	}
	clear(c.timers[len(live):])
	c.timers = live
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b *fakeTimer) int {
		if r := a.when.Compare(b.when); r != 0 {
			return r
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for _, t := range due {
		t.f()
	}
}

// Next returns the earliest deadline armed and not yet run, and whether there is one. For a
// loop on this clock it is the deadline of its earliest timer. Any goroutine.
func (c *FakeClock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for i, t := range c.timers {
		if i == 0 || t.when.Before(next) {
			next = t.when
		}
	}
	return next, len(c.timers) > 0
}

// Stop disarms the timer and reports whether it was armed.
func (t *fakeTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.disarmLocked()
}

func (t *fakeTimer) disarmLocked() bool {
	if !t.armed {
		return false
	}
	t.armed = false
	c := t.c
	i := slices.Index(c.timers, t)
	c.timers = slices.Delete(c.timers, i, i+1)
	return true
}

// Reset arms the timer for d from the clock's time (running f at once if d <= 0) and reports
// whether it was armed before.
func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	was := t.disarmLocked()
	if d <= 0 {
		c.mu.Unlock()
		t.f()
		return was
	}
	c.seq++
	t.when, t.seq, t.armed = c.now.Add(d), c.seq, true
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return was
}
