package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"golang.org/x/sys/unix"
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
	ReadBufferCap int           // gnet read buffer; default 64 KiB

	// HalfCloseWriteTimeout bounds how long the writer of a half-closed transport waits for
	// the peer to take queued bytes (see Transport); default 30s.
	HalfCloseWriteTimeout time.Duration

	// LingerTimeout and LingerBytes bound the lingering close (see Transport.Close): after
	// Close has sent everything and shut down the write side, the socket stays open reading and
	// discarding input until the peer closes, LingerTimeout passes (default 1s) or more than
	// LingerBytes arrive (default 4 MiB). A negative LingerTimeout turns lingering off: Close
	// then closes the socket at once, and a peer still sending gets a reset.
	LingerTimeout time.Duration
	LingerBytes   int
}

// ProtocolFactory makes the Protocol of one new connection. It is called on the loop.
type ProtocolFactory func() Protocol

type listenSpec struct {
	proto   string // "tcp://127.0.0.1:0" as given to gnet
	network string // "tcp"
	address string // "127.0.0.1:0"
	factory ProtocolFactory
	addr    *net.TCPAddr // bound address, after Start
}

// Loop is a single-goroutine event loop on one gnet engine with one event loop. All protocol
// callbacks, CallSoon and CallLater callbacks and Future callbacks run on that goroutine, one at
// a time, so state they share needs no locks.
//
// Make one with New; the zero value is not usable.
type Loop struct {
	opts Options
	log  *slog.Logger

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

	// The waker: wakeFD is the raw end of a socketpair whose other end is a gnet conn on the loop.
	mu       sync.Mutex // guards tsq, tsqSpare, closed, wakeFD writes
	tsq      []func()
	tsqSpare []func()
	closed   bool
	wakeFD   int
	wakes    uint64 // waker writes made, for tests
	armed    atomic.Bool
	stopReq  atomic.Bool
	wakeConn gnet.Conn // loop only
	passTask gnet.Runnable
	inPass   bool // loop only: a pass is running

	// Loop-owned.
	ready           []readyItem
	readySpare      []readyItem
	timers          timerHeap
	nCancelled      int
	timer           *time.Timer
	timerAt         time.Time
	timerSeq        uint64
	timerSpent      atomic.Bool
	conns           map[uint64]*Transport
	watch           map[*Transport]struct{} // paused or closing-with-pending transports
	watchTimer      *Handle
	watchDelay      time.Duration
	nextID          uint64
	cur             *Transport // transport whose gnet callback is running
	stopping        bool
	eng             gnet.Engine // set in OnBoot
	listenersClosed bool        // CloseListeners ran

	// enrolls counts connections handed to gnet by Dial whose OnOpen has not run: the loop
	// does not exit while one is in flight, since gnet's goroutine waits for it. Increments
	// happen under mu and only while !closed.
	enrolls atomic.Int64
	exited  chan struct{} // closed when gnet's Run has returned

	exec    executor
	workWG  sync.WaitGroup
	dialWG  sync.WaitGroup
	writeWG sync.WaitGroup

	detached map[*Transport]struct{}
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		opts:     opts,
		log:      log,
		started:  make(chan struct{}),
		done:     make(chan struct{}),
		stopCh:   make(chan struct{}),
		exited:   make(chan struct{}),
		rootCtx:  ctx,
		cancel:   cancel,
		wakeFD:   -1,
		conns:    make(map[uint64]*Transport),
		watch:    make(map[*Transport]struct{}),
		detached: make(map[*Transport]struct{}),
	}
	l.loopGID.Store(-1)
	return l
}

// Listen registers a TCP listener served by this loop; each accepted connection gets a Protocol
// from f. addr is "host:port" (port 0 picks a free port; see Addrs) or gnet's "tcp4://host:port"
// form. Call before Start or Run, from the goroutine that will call Start.
func (l *Loop) Listen(addr string, f ProtocolFactory) error {
	if l.state.Load() != stateNew {
		return ErrRunning
	}
	if f == nil {
		return errors.New("reactor: nil ProtocolFactory")
	}
	proto := addr
	if !strings.Contains(addr, "://") {
		proto = "tcp://" + addr
	}
	network, address, ok := strings.Cut(proto, "://")
	if !ok || !strings.HasPrefix(network, "tcp") {
		return fmt.Errorf("reactor: listen %q: only tcp addresses are supported", addr)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("reactor: listen %q: %w", addr, err)
	}
	// gnet finds a listener again (DupListener) by its address text, so two listeners on port 0
	// of one host must differ in it: "0", "00", ... all mean port 0.
	for l.hasListen(address) && strings.Trim(port, "0") == "" {
		port += "0"
		address = net.JoinHostPort(host, port)
		proto = network + "://" + address
	}
	l.listens = append(l.listens, &listenSpec{proto: proto, network: network, address: address, factory: f})
	return nil
}

func (l *Loop) hasListen(address string) bool {
	for _, s := range l.listens {
		if s.address == address {
			return true
		}
	}
	return false
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
		if s.factory == nil {
			continue // internal listener
		}
		out = append(out, s.addr)
	}
	return out
}

// Start starts the loop on a new goroutine and returns once it is serving: listeners bound and
// the loop ready to run callbacks. It returns the bind error if a listener cannot be bound.
// Call it once, from any goroutine but the loop.
func (l *Loop) Start() error {
	l.startMu.Lock()
	if !l.state.CompareAndSwap(stateNew, stateRunning) {
		l.startMu.Unlock()
		return ErrRunning
	}
	l.startMu.Unlock()
	if len(l.listens) == 0 {
		// gnet needs one listener for Engine.Register and Stop; this one accepts nothing useful
		// (connections to it are closed at once).
		l.listens = append(l.listens, &listenSpec{proto: "tcp4://127.0.0.1:0", network: "tcp4", address: "127.0.0.1:0"})
	}
	addrs := make([]string, len(l.listens))
	for i, s := range l.listens {
		addrs[i] = s.proto
	}
	bootErr := make(chan error, 1)
	h := &handler{l: l, bootErr: bootErr}
	go func() {
		err := gnet.Rotate(h, addrs,
			gnet.WithNumEventLoop(1),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReadBufferCap(l.opts.ReadBufferCap),
			gnet.WithLogger(gnetLogger{l.log}),
		)
		l.finish(err)
	}()
	select {
	case <-l.started:
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
// Any goroutine may call it, also a callback on the loop; it is idempotent and does not wait
// (use Wait or Done).
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

// Time returns the loop's clock: the time against which CallLater deadlines are checked
// (time.Now, with its monotonic reading). Any goroutine.
func (l *Loop) Time() time.Time { return time.Now() }

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
// allocates nothing (the ready queue holds the function value itself; a closure or method
// value is the caller's allocation, and one bound once and reused is free). Ordering is
// CallSoon's: FIFO together with CallSoon, in the next pass. Loop only (Debug mode panics
// otherwise).
func (l *Loop) CallSoonFunc(fn func()) {
	l.checkLoop("CallSoonFunc")
	l.ready = append(l.ready, readyItem{fn: fn})
	l.wakeOnLoop()
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

// wake makes the loop run a pass soon, by writing the waker. Any goroutine. The armed flag
// makes this at most one wake-up per pass, however many callbacks are queued: the pass clears
// it as it begins.
func (l *Loop) wake() {
	if l.armed.Load() || !l.armed.CompareAndSwap(false, true) {
		return
	}
	l.mu.Lock()
	l.writeWakeLocked()
	l.mu.Unlock()
}

// wakeOnLoop is wake for callers on the loop. In an I/O callback it posts the pass as a gnet
// task: gnet signals its own edge-triggered eventfd, which it never reads, so the wake-up
// costs a write and no read (the waker socket costs both), and one small allocation (gnet's
// closure around the task). The task runs at the end of the epoll round, after its I/O
// events. During a pass it writes the waker instead: gnet runs a task posted by a running
// task in the same round, without polling, so a callback that reschedules itself would
// starve I/O.
func (l *Loop) wakeOnLoop() {
	if l.inPass || l.el == nil || l.stopping {
		l.wake()
		return
	}
	if l.armed.Load() || !l.armed.CompareAndSwap(false, true) {
		return
	}
	if l.el.Execute(context.Background(), l.passTask) != nil {
		l.mu.Lock()
		l.writeWakeLocked()
		l.mu.Unlock()
	}
}

// passRunnable runs a pass as a gnet task (see wakeOnLoop).
type passRunnable struct{ l *Loop }

func (p passRunnable) Run(context.Context) error {
	if p.l.pass() == gnet.Shutdown {
		return gerrors.ErrEngineShutdown
	}
	return nil
}

var wakeByte = []byte{1}

func (l *Loop) writeWakeLocked() {
	if l.wakeFD < 0 {
		return // not started yet (the pass at start picks the work up) or closed
	}
	l.wakes++
	for {
		_, err := unix.Write(l.wakeFD, wakeByte)
		if err == unix.EINTR {
			continue
		}
		// EAGAIN: the socket buffer is full of wake bytes, so the loop is awake anyway.
		return
	}
}

// pass runs one turn of the loop's own work, in the waker's OnTraffic: thread-safe callbacks,
// due timers and the callbacks that were ready when it began (asyncio's _run_once).
func (l *Loop) pass() gnet.Action {
	l.inPass = true
	defer func() { l.inPass = false }()
	l.armed.Store(false)
	if l.stopping {
		return l.exitWhenEnrolled()
	}
	if l.stopReq.Load() {
		return l.shutdownOnLoop()
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
		now := time.Now()
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

	if len(l.watch) > 0 {
		l.checkWatch()
	}
	if len(l.ready) > 0 {
		l.wake()
	}
	if l.stopReq.Load() {
		return l.shutdownOnLoop()
	}
	return gnet.None
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

// shutdownOnLoop tears everything down on the loop and tells gnet to stop.
func (l *Loop) shutdownOnLoop() gnet.Action {
	l.stopping = true
	l.state.Store(stateStopping)
	l.stopOne.Do(func() { close(l.stopCh) })
	l.cancel()
	l.exec.stop()
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
		h.cancelled = true
		h.fn = nil
	}
	l.timers = nil
	// Run what is queued (ConnectionLost among it). A callback that keeps rescheduling itself
	// is cut off after a bounded number of rounds.
	for round := 0; round < 1000; round++ {
		l.mu.Lock()
		q := l.tsq
		l.tsq = nil
		if round == 0 {
			l.closed = true
		}
		l.mu.Unlock()
		for _, fn := range q {
			l.ready = append(l.ready, readyItem{fn: fn})
		}
		if len(l.ready) == 0 {
			break
		}
		batch := l.ready
		l.ready = nil
		for _, it := range batch {
			if fn := it.take(); fn != nil {
				l.run("callback", fn)
			}
		}
		for _, t := range l.conns {
			t.abortOnLoop(nil)
		}
	}
	l.ready = nil
	return l.exitWhenEnrolled()
}

// exitWhenEnrolled tells gnet to stop, unless a connection made by Dial is still on its way
// to the loop: gnet's goroutine that hands it over waits until the loop has opened it, so the
// loop runs on (closing such connections in OnOpen) until the last one has arrived.
func (l *Loop) exitWhenEnrolled() gnet.Action {
	if l.enrolls.Load() > 0 {
		return gnet.None
	}
	return gnet.Shutdown
}

// finish runs on the gnet goroutine after the engine has returned.
func (l *Loop) finish(err error) {
	close(l.exited)
	l.mu.Lock()
	l.closed = true
	if l.wakeFD >= 0 {
		_ = unix.Close(l.wakeFD)
		l.wakeFD = -1
	}
	l.mu.Unlock()
	l.stopOne.Do(func() { close(l.stopCh) })
	l.cancel()
	l.state.Store(stateStopping)
	if l.timer != nil {
		l.timer.Stop()
	}
	for t := range l.detached {
		t.closeWriter()
	}
	l.dialWG.Wait()
	l.workWG.Wait()
	l.writeWG.Wait()
	// The loop goroutine has exited: leftovers (ConnectionLost of connections gnet closed on
	// its own) run here, still one at a time, and this goroutine stands in for the loop.
	l.loopGID.Store(goid())
	for t := range l.detached {
		t.closeDFD()
	}
	for _, it := range l.ready {
		if fn := it.take(); fn != nil {
			l.run("callback", fn)
		}
	}
	l.ready = nil
	l.runErr = err
	l.state.Store(stateStopped)
	close(l.done)
}

// newWaker makes the socketpair. The gnet end is returned as a net.Conn; the raw end is stored.
func (l *Loop) newWaker() (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reactor: socketpair: %w", err)
	}
	f := os.NewFile(uintptr(fds[0]), "reactor-waker")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		_ = unix.Close(fds[1])
		return nil, fmt.Errorf("reactor: waker: %w", err)
	}
	l.mu.Lock()
	l.wakeFD = fds[1]
	l.mu.Unlock()
	return nc, nil
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
