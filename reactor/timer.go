package reactor

import (
	"time"
)

// Handle is a callback scheduled with CallSoon, CallLater or CallAt; Cancel unschedules it.
// Its methods are loop only. The zero value is not useful.
type Handle struct {
	fn        func()
	when      time.Time // CallLater deadline
	l         *Loop
	index     int    // position in the timer heap, -1 when not in it
	seq       uint64 // scheduling order, for equal deadlines
	cancelled bool
}

// Cancel stops the callback from running if it has not run yet. Loop only. A nil Handle is
// fine.
//
// It is amortised O(1), not O(1): a timer's heap entry is left in place and dropped lazily
// when it reaches the top, but the cancel that leaves more than half of the heap dead (and
// more than 64 entries) compacts it, in O(n), so that a cancel-heavy workload keeps the heap
// bounded.
func (h *Handle) Cancel() {
	if h == nil || h.cancelled {
		return
	}
	if h.l != nil {
		h.l.checkLoop("Handle.Cancel")
	}
	h.cancelled = true
	h.fn = nil
	if h.index >= 0 && h.l != nil {
		l := h.l
		l.nCancelled++
		if l.nCancelled > 64 && l.nCancelled > len(l.timers)/2 {
			l.compactTimers()
		}
	}
}

// Cancelled reports whether Cancel was called. Loop only.
func (h *Handle) Cancelled() bool { return h != nil && h.cancelled }

// When returns a CallLater or CallAt handle's deadline on the loop's clock (zero for
// CallSoon). Any goroutine: it never changes.
func (h *Handle) When() time.Time { return h.when }

// CallLater schedules fn to run on the loop once d has passed on the loop's clock
// (Options.Clock), never earlier. Timers with the same deadline run in the order scheduled.
// d <= 0 behaves like CallSoon but runs in a later pass. A timer scheduled while the loop stops
// never runs. It costs O(log n) for n timers pending. Loop only (Debug mode panics otherwise).
func (l *Loop) CallLater(d time.Duration, fn func()) *Handle {
	l.checkLoop("CallLater")
	return l.callAt(l.clock.Now().Add(d), fn)
}

// CallAt is CallLater with an absolute deadline on the loop's clock (see Time). Loop only.
func (l *Loop) CallAt(when time.Time, fn func()) *Handle {
	l.checkLoop("CallAt")
	return l.callAt(when, fn)
}

func (l *Loop) callAt(when time.Time, fn func()) *Handle {
	l.timerSeq++
	h := &Handle{fn: fn, when: when, l: l, index: -1, seq: l.timerSeq}
	if l.stopping {
		h.cancelled, h.fn = true, nil // the timers were dropped: so is this one
		return h
	}
	l.pushTimer(h)
	if h.index == 0 {
		if !when.After(l.clock.Now()) {
			l.wakeOnLoop() // due already: no need for the runtime timer's goroutine hop
		} else {
			l.resetTimer()
		}
	}
	return h
}

// resetTimer points the runtime timer at the earliest live deadline. Loop only.
func (l *Loop) resetTimer() {
	for len(l.timers) > 0 && l.timers[0].cancelled {
		l.popTimer()
		l.nCancelled--
	}
	if len(l.timers) == 0 {
		if l.timer != nil && !l.timerAt.IsZero() {
			l.timer.Stop()
			l.timerAt = time.Time{}
		}
		return
	}
	at := l.timers[0].when
	if at.Equal(l.timerAt) {
		return
	}
	l.timerAt = at
	d := max(at.Sub(l.clock.Now()), 0)
	if l.timer == nil {
		l.timer = l.clock.AfterFunc(d, l.timerFired)
	} else {
		l.timer.Reset(d)
	}
}

// timerFired runs on the clock's timer goroutine (the runtime's, for SystemClock). The flag
// tells the next pass that the runtime timer is spent, so resetTimer must re-arm it even if
// the earliest deadline did not change.
func (l *Loop) timerFired() {
	l.timerSpent.Store(true)
	l.wake()
}

// compactTimers drops the cancelled entries of the heap and heapifies the rest: O(n).
func (l *Loop) compactTimers() {
	live := l.timers[:0]
	for _, h := range l.timers {
		if h.cancelled {
			h.index = -1
			continue
		}
		live = append(live, h)
	}
	clear(l.timers[len(live):])
	l.timers = live
	for i, h := range l.timers {
		h.index = i
	}
	for i := len(l.timers)/2 - 1; i >= 0; i-- {
		l.timers.down(i)
	}
	l.nCancelled = 0
	l.resetTimer()
}

func (l *Loop) pushTimer(h *Handle) {
	h.index = len(l.timers)
	l.timers = append(l.timers, h)
	l.timers.up(h.index)
}

func (l *Loop) popTimer() *Handle {
	t := l.timers
	n := len(t) - 1
	h := t[0]
	t.swap(0, n)
	t[n] = nil
	l.timers = t[:n]
	if n > 0 {
		l.timers.down(0)
	}
	h.index = -1
	return h
}

// timerHeap is a binary min-heap ordered by deadline, then by scheduling order.
type timerHeap []*Handle

func (t timerHeap) less(i, j int) bool {
	if t[i].when.Equal(t[j].when) {
		return t[i].seq < t[j].seq
	}
	return t[i].when.Before(t[j].when)
}

func (t timerHeap) swap(i, j int) {
	t[i], t[j] = t[j], t[i]
	t[i].index = i
	t[j].index = j
}

func (t timerHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !t.less(j, i) {
			break
		}
		t.swap(i, j)
		j = i
	}
}

func (t timerHeap) down(i int) {
	n := len(t)
	for {
		j := 2*i + 1
		if j >= n {
			return
		}
		if r := j + 1; r < n && t.less(r, j) {
			j = r
		}
		if !t.less(j, i) {
			return
		}
		t.swap(i, j)
		i = j
	}
}
