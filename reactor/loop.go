package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Errors returned by the loop.
var (
	// ErrClosed is returned by CallSoonThreadsafe once the loop is stopping or stopped, and given
	// to Dial's onError when the loop stops before the connection is made.
	ErrClosed = errors.New("reactor: loop is closed")
	// ErrCancelled is the error of a Future that was cancelled.
	ErrCancelled = errors.New("reactor: cancelled")
	// ErrRunning is returned by Listen and Start once the loop has been started.
	ErrRunning = errors.New("reactor: loop already started")
	// ErrNotDone is returned by Future.Result before the future is done.
	ErrNotDone = errors.New("reactor: future not done")
)

// Options configure a Loop. The zero value is usable.
type Options struct {
	Logger        *slog.Logger  // nil: discard
	Debug         bool          // slow-callback warnings and wrong-goroutine panics
	SlowCallback  time.Duration // debug threshold, default 100ms
	Workers       int           // executor (Go) jobs running at once; default min(32, GOMAXPROCS+4)
	MaxQueued     int           // executor jobs waiting for a worker at most (then ErrBusy); 0: no bound
	ReadBufferCap int           // gnet read buffer; default 64 KiB

	// HalfCloseWriteTimeout bounds how long the writer of a half-closed transport waits for
	// the peer to take queued bytes (see Transport); default 30s.
	HalfCloseWriteTimeout time.Duration

	// LingerTimeout and LingerBytes bound the lingering close (see Transport.Close): after
	// Close has sent everything and shut down the write side, the socket stays open reading and
	// discarding input until the peer closes, LingerTimeout passes (default 1s) or more than
	// LingerBytes arrive (default 4 MiB). A negative LingerTimeout turns lingering off: Close
	// then closes the socket at once, and a peer still sending gets a reset. While the loop
	// shuts down (Shutdown), neither bound closes a socket whose peer is short of bytes.
	LingerTimeout time.Duration
	LingerBytes   int

	// Clock is the loop's time: Time, the deadlines of CallLater and CallAt and the lingering
	// close's timeout follow it (see Clock for what does not). nil: SystemClock. Tests give a
	// FakeClock.
	Clock Clock
}

// ProtocolFactory makes the Protocol of one new connection. It is called on the loop.
type ProtocolFactory func() Protocol

type listenSpec struct {
	network   string // "tcp", "tcp4" or "tcp6"
	address   string // "127.0.0.1:0"
	factory   ProtocolFactory
	ln        *net.TCPListener // bound by Start
	addr      *net.TCPAddr     // bound address, after Start
	closeOnce sync.Once
}

// Loop is a single-goroutine event loop on one gnet engine with one event loop. All protocol
// callbacks, CallSoon and CallLater callbacks and Future callbacks run on that goroutine, one at
// a time, so state they share needs no locks.
//
// Make one with New; the zero value is not usable.
type Loop struct {
	opts  Options
	log   *slog.Logger
	clock Clock
	dbg   *debugCounters // Debug mode only

	listens []*listenSpec
	state   atomic.Int32 // stateNew, stateRunning, stateStopping, stateStopped
	startMu sync.Mutex   // serialises Start/Stop transitions made off the loop

	// Set before started is closed; read-only afterwards.
	el      gnet.EventLoop
	started chan struct{}
	done    chan struct{}
	runErr  error
	stopCh  chan struct{} // closed when stopping begins (for goroutines that wait on the loop)
	stopOne sync.Once
	rootCtx context.Context
	cancel  context.CancelFunc
	loopGID atomic.Int64

	// The waker (gnetgaps.go): wakeFD is the raw end of a socketpair whose other end is a gnet
	// conn on the loop.
	mu       sync.Mutex // guards tsq, tsqSpare, closed, wakeFD writes
	tsq      []func()
	tsqSpare []func()
	closed   bool
	wakeFD   int
	armed    atomic.Bool
	stopReq  atomic.Bool
	shutReq  atomic.Bool
	wakeConn gnet.Conn // loop only; nil until the loop is ready
	passTask gnet.Runnable
	inPass   bool     // loop only: a pass is running
	passEnd  []func() // loop only: CallAtPassEnd's callbacks for the running pass

	// EventTime's cache (loop only): evSeq counts the events (gnet callbacks) begun, and
	// evTime is the time read during event evTimeSeq.
	evSeq     uint64
	evTimeSeq uint64
	evTime    time.Time

	// Loop-owned.
	ready      []readyItem
	readySpare []readyItem
	timers     timerHeap
	nCancelled int
	timer      Timer
	timerAt    time.Time
	timerSeq   uint64
	timerSpent atomic.Bool
	conns      map[uint64]*Transport
	nextID     uint64
	cur        *Transport  // transport whose gnet callback is running
	shutting   bool        // the graceful stop (Shutdown) began
	stopping   bool        // the stop's teardown ran
	stopPasses int         // passes run since the teardown
	eng        gnet.Engine // set in OnBoot

	// Drain polling (gnetgaps.go): transports waiting for their write buffer to drain.
	watch      map[*Transport]struct{}
	watchTimer *time.Timer // real time, whatever the Clock
	watchArmed bool
	watchDue   atomic.Bool
	watchDelay time.Duration

	// enrolls counts connections handed to gnet by the acceptors and Dial whose OnOpen has
	// not run: the loop does not exit while one is in flight, since gnet's goroutine waits for
	// it. Increments happen under mu and only while !closed.
	enrolls      atomic.Int64
	exited       chan struct{} // closed when gnet's Run has returned
	acceptErrors atomic.Uint64

	exec     executor
	workWG   sync.WaitGroup
	dialWG   sync.WaitGroup
	writeWG  sync.WaitGroup
	acceptWG sync.WaitGroup

	detached  map[*Transport]struct{}
	lingering map[*Transport]struct{} // lingering and draining: lost, but their sockets open
}

const (
	stateNew int32 = iota
	stateRunning
	stateStopping
	stateStopped
)

// New returns a loop configured by opts. Nothing runs until Start or Run.
func New(opts Options) *Loop {
	if opts.SlowCallback <= 0 {
		opts.SlowCallback = 100 * time.Millisecond
	}
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers()
	}
	if opts.ReadBufferCap <= 0 {
		opts.ReadBufferCap = 64 << 10
	}
	if opts.HalfCloseWriteTimeout <= 0 {
		opts.HalfCloseWriteTimeout = 30 * time.Second
	}
	if opts.LingerTimeout == 0 {
		opts.LingerTimeout = time.Second
	}
	if opts.LingerBytes <= 0 {
		opts.LingerBytes = 4 << 20
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		opts:      opts,
		log:       log,
		clock:     opts.Clock,
		started:   make(chan struct{}),
		done:      make(chan struct{}),
		stopCh:    make(chan struct{}),
		exited:    make(chan struct{}),
		rootCtx:   ctx,
		cancel:    cancel,
		wakeFD:    -1,
		conns:     make(map[uint64]*Transport),
		watch:     make(map[*Transport]struct{}),
		detached:  make(map[*Transport]struct{}),
		lingering: make(map[*Transport]struct{}),
	}
	l.loopGID.Store(-1)
	if opts.Debug {
		l.dbg = new(debugCounters)
	}
	return l
}

// Listen registers a TCP listener served by this loop; each accepted connection gets a Protocol
// from f. addr is "host:port" (port 0 picks a free port; see Addrs) or the "tcp4://host:port"
// form (tcp, tcp4 or tcp6). The port is bound by Start. Call before Start or Run, from the
// goroutine that will call Start.
func (l *Loop) Listen(addr string, f ProtocolFactory) error {
	if l.state.Load() != stateNew {
		return ErrRunning
	}
	if f == nil {
		return errors.New("reactor: nil ProtocolFactory")
	}
	network, address, ok := strings.Cut(addr, "://")
	if !ok {
		network, address = "tcp", addr
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("reactor: listen %q: only tcp addresses are supported", addr)
	}
	if _, _, err := net.SplitHostPort(address); err != nil {
		return fmt.Errorf("reactor: listen %q: %w", addr, err)
	}
	l.listens = append(l.listens, &listenSpec{network: network, address: address, factory: f})
	return nil
}

// Addrs returns the bound listen addresses, in Listen order. It is meaningful after Start has
// returned nil; any goroutine may call it.
func (l *Loop) Addrs() []net.Addr {
	select {
	case <-l.started:
	default:
		return nil
	}
	out := make([]net.Addr, 0, len(l.listens))
	for _, s := range l.listens {
		out = append(out, s.addr)
	}
	return out
}

// Start binds the listeners and starts the loop on a new goroutine; it returns once the loop
// is serving: listeners bound, the loop ready to run callbacks and accepting. It returns the
// bind error if a listener cannot be bound. Call it once, from any goroutine but the loop.
func (l *Loop) Start() error {
	l.startMu.Lock()
	if !l.state.CompareAndSwap(stateNew, stateRunning) {
		l.startMu.Unlock()
		return ErrRunning
	}
	l.startMu.Unlock()
	if err := l.bind(); err != nil {
		l.state.Store(stateStopped)
		l.stopOne.Do(func() { close(l.stopCh) })
		l.cancel()
		close(l.done)
		return err
	}
	bootErr := make(chan error, 1)
	h := &handler{l: l, bootErr: bootErr}
	go func() {
		// gnet gets a listener of its own that never accepts (gnetgaps.go, gap 4).
		err := gnet.Run(h, gnetListenAddr,
			gnet.WithNumEventLoop(1),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithReadBufferCap(l.opts.ReadBufferCap),
			gnet.WithLogger(gnetLogger{l.log}),
		)
		l.finish(err)
	}()
	select {
	case <-l.started:
		l.startAcceptors()
		return nil
	case err := <-bootErr:
		<-l.done
		return err
	case <-l.done:
		select {
		case err := <-bootErr:
			return err
		default:
		}
		if l.runErr != nil {
			return l.runErr
		}
		return ErrClosed
	}
}

// Run is Start followed by Wait: it returns when the loop has stopped. Call it once, from any
// goroutine but the loop.
func (l *Loop) Run() error {
	if err := l.Start(); err != nil {
		return err
	}
	return l.Wait()
}

// Wait blocks until the loop has fully stopped and returns the engine's error, if any.
// Never call it on the loop (it would deadlock).
func (l *Loop) Wait() error {
	<-l.done
	return l.runErr
}

// Done returns a channel closed when the loop has fully stopped: every ConnectionLost has run,
// timers are gone and executor goroutines and Dial goroutines have returned. Any goroutine.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Stop stops the loop: it closes every transport (ConnectionLost runs for each, with nil),
// drops pending timers, cancels the contexts of running Go functions and shuts the engine down.
// It ends a Shutdown's wait too: lingering and draining sockets are closed, whatever their
// peers have not taken yet. Any goroutine may call it, also a callback on the loop; it is
// idempotent and does not wait (use Wait or Done).
func (l *Loop) Stop() {
	l.startMu.Lock()
	if l.state.CompareAndSwap(stateNew, stateStopped) {
		l.startMu.Unlock()
		l.stopOne.Do(func() { close(l.stopCh) })
		l.cancel()
		close(l.done)
		return
	}
	l.startMu.Unlock()
	l.stopReq.Store(true)
	l.wake()
}

// Shutdown stops the loop gracefully: it goes on running until every transport is lost and
// every peer has taken what was written to it, and then stops as with Stop. From the next pass
// on, a lingering close does not end while the kernel still holds bytes the peer has not
// acknowledged (the send queue, SIOCOUTQ): past LingerTimeout or LingerBytes the transport
// drains instead, reading and discarding input, until the peer has them all or closes. So a
// peer that reads slowly gets every reply, where closing its socket while it still sends would
// reset it and destroy the queue.
//
// Shutdown closes nothing itself: the protocols close their transports (the loop waits for
// ConnectionLost of each), and listeners stay open unless CloseListeners closes them (a
// connection accepted meanwhile is one more to wait for). Stop ends the wait at once, aborting
// what is left: Unsent says, before, what that would drop. Timers, CallSoonThreadsafe and Go
// work as usual until then. A peer that never reads holds the loop until Stop.
//
// Any goroutine may call it, also a callback on the loop; it is idempotent and does not wait
// (use Wait or Done). Before Start it is Stop.
func (l *Loop) Shutdown() {
	if l.state.Load() == stateNew {
		l.Stop()
		return
	}
	l.shutReq.Store(true)
	l.wake()
}

// Unsent returns, by transport ID, the bytes each transport holds that its peer has not taken
// yet: its write buffer and the kernel's send queue, for open transports and for lingering and
// draining ones whose ConnectionLost has run. Transports with nothing unsent are left out. A
// half-closed transport's writer (see Transport) counts only what it holds itself. Loop only;
// O(transports), one system call each.
func (l *Loop) Unsent() map[uint64]int {
	l.checkLoop("Unsent")
	m := make(map[uint64]int)
	add := func(t *Transport) {
		if n := t.unsent(); n > 0 {
			m[t.id] = n
		}
	}
	for _, t := range l.conns {
		add(t)
	}
	for t := range l.lingering {
		add(t)
	}
	for t := range l.detached {
		add(t)
	}
	return m
}

// OnLoop reports whether the caller runs on the loop goroutine. Any goroutine. It costs one to
// several microseconds, more on a deep stack (it reads the goroutine id from runtime.Stack,
// which Go offers no cheaper way to get), so it belongs in debug checks and rare paths, not
// per-event code: the loop itself calls it only in Debug mode and in CloseListeners.
func (l *Loop) OnLoop() bool {
	id := l.loopGID.Load()
	return id >= 0 && id == goid()
}

// checkLoop panics in Debug mode if the caller is not on the loop. It is small enough to be
// inlined, so with Debug off it costs one load and one branch.
func (l *Loop) checkLoop(what string) {
	if l.opts.Debug {
		l.checkLoopDebug(what)
	}
}

func (l *Loop) checkLoopDebug(what string) {
	if !l.OnLoop() {
		panic("reactor: " + what + " called off the loop goroutine")
	}
}

// Time returns the loop's time: Options.Clock's Now (time.Now by default), against which
// CallLater deadlines are checked. Any goroutine.
func (l *Loop) Time() time.Time { return l.clock.Now() }

// EventTime returns the real time (time.Now, whatever Options.Clock says) at which the loop
// began to handle the current event, an I/O callback or a pass: the clock is read at the
// first call during the event and the same time is returned for the rest of it, as libuv's
// uv_now, so that code stamping many records in one event (a log, one record per line of a
// pipelined read) reads the clock once (about 0.1 us a read on a virtual machine). The time
// may lag by as long as the event has run. Loop only (Debug mode panics otherwise); on a loop
// not started (a test driving a protocol by hand) it is the time of the first call.
func (l *Loop) EventTime() time.Time {
	l.checkLoop("EventTime")
	if l.evTimeSeq != l.evSeq || l.evTime.IsZero() {
		l.evTime = time.Now()
		l.evTimeSeq = l.evSeq
	}
	return l.evTime
}

// CallSoon schedules fn to run on the loop, after the callbacks already scheduled (FIFO).
// Callbacks scheduled while a pass runs go to the next pass, after I/O, so a callback that
// reschedules itself never starves sockets. Loop only (Debug mode panics otherwise).
func (l *Loop) CallSoon(fn func()) *Handle {
	l.checkLoop("CallSoon")
	h := &Handle{fn: fn, l: l, index: -1}
	l.ready = append(l.ready, readyItem{h: h})
	l.wakeOnLoop()
	return h
}

// CallSoonFunc is CallSoon without a Handle, for callbacks that are never cancelled: it
// allocates nothing itself (the ready queue holds the function value; a closure or method
// value is the caller's allocation, and one bound once and reused is free). The first callback
// queued from an I/O callback arms the wake-up as a gnet task, which costs gnet one small
// allocation per pass, shared by every callback queued in that round. Ordering is CallSoon's:
// FIFO together with CallSoon, in the next pass. Loop only (Debug mode panics otherwise).
func (l *Loop) CallSoonFunc(fn func()) {
	l.checkLoop("CallSoonFunc")
	l.ready = append(l.ready, readyItem{fn: fn})
	l.wakeOnLoop()
}

// CallAtPassEnd schedules fn to run at the end of the running pass, once the callbacks the
// pass began with have run, before the loop polls its sockets again: as redis's beforeSleep,
// for work that gathers what several callbacks of one pass produced (one write for several
// replies made ready). Called outside a pass (in an I/O callback such as DataReceived), it is
// CallSoonFunc. It allocates nothing once its queue has grown to its working size. Loop only
// (Debug mode panics otherwise).
func (l *Loop) CallAtPassEnd(fn func()) {
	l.checkLoop("CallAtPassEnd")
	if !l.inPass {
		l.CallSoonFunc(fn)
		return
	}
	l.passEnd = append(l.passEnd, fn)
}

// CallSoonThreadsafe schedules fn to run on the loop; calls made by one goroutine run in the
// order made. It is the only way in from another goroutine; it may also be called on the loop.
// It returns ErrClosed once the loop is stopping, and then fn never runs.
func (l *Loop) CallSoonThreadsafe(fn func()) error {
	l.mu.Lock()
	if l.closed || l.state.Load() >= stateStopping {
		l.mu.Unlock()
		return ErrClosed
	}
	l.tsq = append(l.tsq, fn)
	if l.armed.CompareAndSwap(false, true) {
		l.writeWakeLocked()
	}
	l.mu.Unlock()
	return nil
}

// track adds one to wg unless the loop is closing, so that finish's Wait never races an Add.
// Any goroutine.
func (l *Loop) track(wg *sync.WaitGroup) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	wg.Add(1)
	return true
}

// readyItem is a callback in the ready queue: a Handle (CallSoon, due timers) or a bare
// function (thread-safe calls and the loop's own work), which saves an allocation.
type readyItem struct {
	h  *Handle
	fn func()
}

// take returns the function to run, or nil if the handle was cancelled.
func (it readyItem) take() func() {
	if it.h == nil {
		return it.fn
	}
	if it.h.cancelled {
		return nil
	}
	fn := it.h.fn
	it.h.fn = nil
	return fn
}

// maxStopPasses bounds the passes a stopping loop runs for callbacks that the stop's callbacks
// scheduled, so that a callback that keeps rescheduling itself cannot hold the stop.
const maxStopPasses = 1000

// pass is one turn of the loop's own work, as asyncio's _run_once, and the only place where
// scheduled callbacks run (CallSoon, CallSoonThreadsafe, timers, Future done callbacks,
// ConnectionLost): it takes the thread-safe queue and the timers that are due, runs the
// callbacks that were ready when it began, and checks the transports waiting for a drained
// write buffer. Callbacks scheduled meanwhile go to the next pass, after the loop has polled
// its sockets again. It runs on the loop, woken by the waker (gnetgaps.go).
//
// Stopping is passes too: the first pass after Stop tears down (teardown) and runs the
// ConnectionLost callbacks that queued; later passes run what those scheduled, until nothing
// is left (stopPass), and then the pass tells gnet to stop. A graceful stop (Shutdown) begins
// in the first pass after Shutdown (beginShutdown), and the pass that finds nothing left to
// wait for (shutDone) asks for the stop.
func (l *Loop) pass() gnet.Action {
	l.inPass = true
	defer func() { l.inPass = false }()
	l.armed.Store(false)
	if l.stopReq.Load() && !l.stopping {
		l.teardown()
	} else if l.shutReq.Load() && !l.shutting && !l.stopping {
		l.beginShutdown()
	}
	l.mu.Lock()
	q := l.tsq
	l.tsq = l.tsqSpare[:0]
	l.mu.Unlock()
	for _, fn := range q {
		l.ready = append(l.ready, readyItem{fn: fn})
	}
	clear(q)
	l.tsqSpare = q[:0]

	if l.timerSpent.Swap(false) {
		l.timerAt = time.Time{}
	}
	if len(l.timers) > 0 {
		now := l.clock.Now()
		for len(l.timers) > 0 {
			h := l.timers[0]
			if h.cancelled {
				l.popTimer()
				l.nCancelled--
				continue
			}
			if h.when.After(now) {
				break
			}
			l.popTimer()
			l.ready = append(l.ready, readyItem{h: h})
		}
		l.resetTimer()
	}

	batch := l.ready
	l.ready = l.readySpare[:0]
	for i := range batch {
		if fn := batch[i].take(); fn != nil {
			l.run("callback", fn)
		}
		batch[i] = readyItem{}
	}
	l.readySpare = batch[:0]
	for i := 0; i < len(l.passEnd); i++ { // grows while it runs: those run too
		l.run("callback", l.passEnd[i])
		l.passEnd[i] = nil
	}
	l.passEnd = l.passEnd[:0]

	if len(l.watch) > 0 || l.watchArmed {
		l.pollDrains()
	}
	if l.stopping {
		return l.stopPass()
	}
	if l.shutting && l.shutDone() {
		l.stopReq.Store(true)
		l.wake()
	} else if len(l.ready) > 0 {
		l.wake()
	}
	return gnet.None
}

// beginShutdown begins the graceful stop (Shutdown), in the first pass after it: from now on
// the sockets of lingering transports are watched until their peers have every byte.
func (l *Loop) beginShutdown() {
	l.shutting = true
	for t := range l.lingering {
		l.watchAdd(t)
	}
}

// shutDone reports whether a graceful stop has nothing left to wait for: every transport is
// lost, and no lingering or draining socket is watched because its peer is short of bytes.
// O(1).
func (l *Loop) shutDone() bool {
	return len(l.conns) == 0 && len(l.detached) == 0 && len(l.watch) == 0
}

// teardown begins the stop, in the first pass after Stop: the thread-safe queue is closed
// (what it holds still runs in this pass), pending timers are dropped, and every transport is
// aborted, so that its ConnectionLost(nil) runs in this pass.
func (l *Loop) teardown() {
	l.stopping = true
	l.state.Store(stateStopping)
	l.stopOne.Do(func() { close(l.stopCh) })
	l.cancel()
	l.exec.stop()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	_ = l.closeListeners() // the acceptors end
	for _, t := range l.conns {
		t.abortOnLoop(nil)
	}
	for t := range l.detached {
		t.abortOnLoop(nil)
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	for _, h := range l.timers {
		h.cancelled, h.fn, h.index = true, nil, -1
	}
	l.timers, l.nCancelled = nil, 0
	l.stopDrainPoll()
}

// stopPass ends a pass of a stopping loop. While callbacks are queued another pass follows (up
// to maxStopPasses; then they are dropped). Then gnet is told to stop, unless a connection made
// by Dial is still on its way to the loop (see enrolls): its arrival wakes the loop again.
func (l *Loop) stopPass() gnet.Action {
	if len(l.ready) > 0 {
		if l.stopPasses++; l.stopPasses < maxStopPasses {
			l.wake()
			return gnet.None
		}
		l.log.Warn("reactor: callbacks still rescheduling themselves at stop: dropped", "callbacks", len(l.ready))
		clear(l.ready)
		l.ready = l.ready[:0]
	}
	if l.enrolls.Load() > 0 {
		return gnet.None
	}
	return gnet.Shutdown
}

// stopOnExit runs the stop's passes at once when gnet ends the loop on its own (an acceptor
// or poller failure): gnet is closing every connection, the waker among them, and no pass
// would be woken again. It runs on the loop goroutine, in the waker's OnClose.
func (l *Loop) stopOnExit() {
	l.stopReq.Store(true)
	for {
		l.pass()
		if len(l.ready) == 0 {
			return
		}
	}
}

// run calls fn on the loop, timing it in Debug mode and recovering a panic (logged, like
// asyncio's exception handler). It reports whether fn returned normally.
func (l *Loop) run(kind string, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			l.logPanic(kind, r)
			ok = false
		}
	}()
	if l.opts.Debug {
		t0 := time.Now()
		fn()
		if d := time.Since(t0); d >= l.opts.SlowCallback {
			l.log.Warn("reactor: slow "+kind, "duration", d)
		}
		return true
	}
	fn()
	return true
}

func (l *Loop) logPanic(kind string, r any) {
	l.log.Error("reactor: panic in "+kind, "panic", r, "stack", string(debug.Stack()))
}

// finish runs on gnet's Run goroutine once the engine has returned. The loop goroutine is
// gone and every callback ran in its passes: what is left is to close the waker, wait for the
// goroutines the loop started and mark the loop stopped.
func (l *Loop) finish(err error) {
	close(l.exited)
	l.mu.Lock()
	l.closed = true
	l.closeWakerLocked()
	l.mu.Unlock()
	l.stopOne.Do(func() { close(l.stopCh) })
	l.cancel()
	l.state.Store(stateStopping)
	if l.timer != nil {
		l.timer.Stop()
	}
	l.stopDrainPoll()
	_ = l.closeListeners()
	l.acceptWG.Wait()
	l.dialWG.Wait()
	l.workWG.Wait()
	l.writeWG.Wait()
	l.runErr = err
	l.state.Store(stateStopped)
	close(l.done)
}

// gnetLogger routes gnet's warnings and errors to slog and drops its chatter.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(string, ...any) {}
func (g gnetLogger) Infof(string, ...any)  {}
func (g gnetLogger) Warnf(format string, args ...any) {
	g.l.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error("gnet: fatal: " + fmt.Sprintf(format, args...))
}
