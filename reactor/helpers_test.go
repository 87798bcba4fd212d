package reactor

import (
	"bytes"
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// startLoop starts a loop with the given listeners and stops it at the end of the test.
func startLoop(t testing.TB, opts Options, listens ...ProtocolFactory) *Loop {
	t.Helper()
	return startLoopWith(t, opts, func(*Loop) []ProtocolFactory { return listens })
}

// startLoopWith is startLoop for factories that need the loop.
func startLoopWith(t testing.TB, opts Options, listens func(l *Loop) []ProtocolFactory) *Loop {
	t.Helper()
	l := New(opts)
	for _, f := range listens(l) {
		if err := l.Listen("127.0.0.1:0", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Stop()
		testutil.Recv(t, l.Done(), "the loop to stop")
	})
	return l
}

// onLoop runs fn on the loop and waits for it.
func onLoop(t testing.TB, l *Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := l.CallSoonThreadsafe(func() { fn(); close(done) }); err != nil {
		t.Fatal(err)
	}
	testutil.Recv(t, done, "the callback to run")
}

// settle returns once the loop has run a pass begun after the call, and the pass after it:
// every callback and timer due when settle was called has run, and so have the callbacks they
// scheduled.
func settle(t testing.TB, l *Loop) {
	t.Helper()
	done := make(chan struct{})
	onLoop(t, l, func() { l.CallSoonFunc(func() { l.CallSoonFunc(func() { close(done) }) }) })
	testutil.Recv(t, done, "the next pass")
}

// wakes returns the number of waker writes the loop made (Debug mode only).
func wakes(l *Loop) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dbg.wakes
}

// echo writes back what it receives; it records events on the loop.
type echo struct {
	l       *Loop
	t       *Transport
	events  chan string
	offLoop chan string
}

func (e *echo) check(ev string) {
	if e.l != nil && !e.l.OnLoop() {
		e.offLoop <- ev
	}
}

func (e *echo) ConnectionMade(t *Transport) { e.t = t; e.check("made") }
func (e *echo) DataReceived(p []byte)       { e.check("data"); e.t.Write(p) }
func (e *echo) EOFReceived() bool           { e.check("eof"); return false }
func (e *echo) ConnectionLost(err error) {
	e.check("lost")
	if e.events != nil {
		e.events <- "lost"
	}
}

// collector is a client protocol that gathers what it reads.
type collector struct {
	l       *Loop
	t       *Transport
	buf     bytes.Buffer
	made    chan *Transport
	lost    chan error
	onData  func(c *collector)
	offLoop chan string
}

func (c *collector) ConnectionMade(t *Transport) {
	c.t = t
	if c.l != nil && !c.l.OnLoop() {
		c.offLoop <- "made"
	}
	if c.made != nil {
		c.made <- t
	}
}
func (c *collector) DataReceived(p []byte) {
	if c.l != nil && !c.l.OnLoop() {
		c.offLoop <- "data"
	}
	c.buf.Write(p)
	if c.onData != nil {
		c.onData(c)
	}
}
func (c *collector) EOFReceived() bool { return false }
func (c *collector) ConnectionLost(err error) {
	if c.lost != nil {
		c.lost <- err
	}
}
