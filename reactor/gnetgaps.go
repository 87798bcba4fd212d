package reactor

// What gnet v2.9.7 lacks, and how the loop works around it: one section per gap, each with
// what is missing, what is done instead and what it costs. The rest of the package relies on
// these and on gnet's documented behaviour only; a gnet that filled a gap would shrink this
// file, not the others.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------------------------------------
// Gap 1: no way to wake the loop for work that must wait for the next poll.
//
// EventLoop.Execute queues a task, but gnet runs a task posted by a running task in the same
// round, without polling (a callback that reschedules itself would starve I/O), and keeps FIFO
// order only below about a thousand queued tasks; EventLoop.Schedule is not implemented.
// Instead the loop keeps its own queues and a waker: a socketpair whose one end is a gnet
// connection on the loop (registered from OnTick: Engine.Register needs running loops and must
// not be awaited on the loop), and whose other end, wakeFD, takes one byte per wake-up; gnet
// then calls the waker's OnTraffic, which runs a pass. Three system calls per wake-up (the
// write, the epoll round that reports it, gnet's read). From I/O callbacks, where the pass may
// run at the end of the round, wakeOnLoop posts it as one gnet task instead: gnet signals its
// edge-triggered eventfd and never reads it, two system calls and one small allocation. The
// waker's OnClose is also where the loop learns that gnet ended it on its own (stopOnExit).
// ---------------------------------------------------------------------------------------------

// wakerTag marks the waker connection in gnet's Conn context.
type wakerTag struct{}

// registerWaker makes the waker and hands its gnet end to the engine. It runs on gnet's
// ticker goroutine (OnTick), never on the loop, since it waits for the loop to open it.
func (l *Loop) registerWaker(eng gnet.Engine) error {
	nc, err := l.newWaker()
	if err != nil {
		return err
	}
	ctx := gnet.NewContext(gnet.NewNetConnContext(context.Background(), nc), &wakerTag{})
	ch, err := eng.Register(ctx)
	if err != nil {
		_ = nc.Close()
		return err
	}
	return (<-ch).Err
}

// newWaker makes the socketpair. The gnet end is returned as a net.Conn; the raw end is stored.
func (l *Loop) newWaker() (net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
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

// wakerOpened is the waker's OnOpen: from here on the loop runs passes.
func (l *Loop) wakerOpened(c gnet.Conn) {
	l.loopGID.Store(goid())
	l.el = c.EventLoop()
	l.wakeConn = c
	l.passTask = passRunnable{l}
	close(l.started)
	l.armed.Store(false)
	l.wake() // run whatever was queued before the loop existed
}

// wakerClosed is the waker's OnClose. Outside a stop it means gnet is ending the loop on its
// own (an acceptor or poller failure), closing every connection: the stop's passes run now.
func (l *Loop) wakerClosed(err error) {
	if l.stopping {
		return
	}
	l.log.Error("reactor: gnet ended the event loop on its own; stopping", "err", err)
	l.stopOnExit()
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
	p.l.evSeq++
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
	if l.dbg != nil {
		l.dbg.wakes++
	}
	for {
		_, err := unix.Write(l.wakeFD, wakeByte)
		if err == unix.EINTR {
			continue
		}
		// EAGAIN: the socket buffer is full of wake bytes, so the loop is awake anyway.
		return
	}
}

// closeWakerLocked closes the raw end of the waker, once gnet has returned.
func (l *Loop) closeWakerLocked() {
	if l.wakeFD >= 0 {
		_ = unix.Close(l.wakeFD)
		l.wakeFD = -1
	}
}

// ---------------------------------------------------------------------------------------------
// Gap 2: no drain callback.
//
// gnet says nothing when a connection's output buffer empties, yet PauseWriting needs its
// ResumeWriting, Close must wait for the buffer to drain and WriteEOF must shut the write side
// after the last byte. The transports that wait for that (paused, closing, eofPending) are on
// a watch list: every pass checks each of them (one OutboundBuffered call each, so a pass costs
// O(watched)), and while the list is not empty a runtime timer wakes the loop to check it
// again, after 1 ms, backing off to 32 ms while no buffer shrinks. While the loop shuts down,
// lingering and draining transports whose peer is short of bytes are watched too, on the
// kernel's send queue (gap 6). The timer keeps real time
// whatever Options.Clock says: a drain is the network's doing, not a deadline's.
// ---------------------------------------------------------------------------------------------

const (
	watchMin = time.Millisecond
	watchMax = 32 * time.Millisecond
)

// watchAdd puts t on the watch list and arms the poll. Loop only.
func (l *Loop) watchAdd(t *Transport) {
	l.watch[t] = struct{}{}
	l.watchDelay = watchMin
	if !l.watchArmed && !l.stopping {
		l.armDrainPoll()
	}
}

func (l *Loop) armDrainPoll() {
	l.watchArmed = true
	if l.watchTimer == nil {
		l.watchTimer = time.AfterFunc(l.watchDelay, l.watchFired)
	} else {
		l.watchTimer.Reset(l.watchDelay)
	}
}

// watchFired runs on the runtime's timer goroutine.
func (l *Loop) watchFired() {
	l.watchDue.Store(true)
	l.wake()
}

// pollDrains checks the watched transports, in each pass; when the poll timer has fired it
// also re-arms it, backing off while nothing drains. Loop only.
func (l *Loop) pollDrains() {
	due := l.watchDue.Swap(false)
	if len(l.watch) == 0 {
		if due {
			l.watchArmed = false
		}
		return
	}
	progress := l.checkWatch()
	if !due {
		return
	}
	l.watchArmed = false
	if progress {
		l.watchDelay = watchMin
	} else {
		l.watchDelay = min(2*l.watchDelay, watchMax)
	}
	if len(l.watch) > 0 && !l.stopping {
		l.armDrainPoll()
	}
}

// stopDrainPoll stops the poll timer (the loop is stopping). Loop, or after it has exited.
func (l *Loop) stopDrainPoll() {
	if l.watchTimer != nil {
		l.watchTimer.Stop()
	}
	l.watchArmed = false
}

// checkWatch resumes writing and finishes closes of transports whose buffers drained. It
// reports whether any watched buffer shrank since the last check.
func (l *Loop) checkWatch() (progress bool) {
	for t := range l.watch {
		if l.checkTransport(t) {
			progress = true
		}
	}
	return progress
}

// checkTransport acts on t's write buffer: ResumeWriting at the low-water mark, the rest of a
// Close or a WriteEOF once it is empty. It reports whether the buffer shrank.
func (l *Loop) checkTransport(t *Transport) (progress bool) {
	if (t.state == stLingering || t.state == stDraining) && t.c != nil {
		return l.checkLinger(t)
	}
	if t.c == nil || t.state >= stLingering {
		delete(l.watch, t)
		return true
	}
	n := t.c.OutboundBuffered()
	progress = n < t.lastSize
	t.lastSize = n
	if t.paused && n <= t.low {
		t.paused = false
		l.run("ResumeWriting", t.fc.ResumeWriting) // may write, close or abort t
	}
	switch {
	case t.state == stClosing && t.c != nil && t.c.OutboundBuffered() == 0:
		delete(l.watch, t)
		t.closeDrained(false)
		return true
	case t.state == stEOFPending && n == 0: // no writes since: they are dropped
		if t.shutdownWrite() {
			t.state = stWriteShut
		}
	}
	if !t.paused && t.state != stClosing && t.state != stEOFPending {
		delete(l.watch, t)
	}
	return progress
}

// checkLinger watches a lingering or draining transport of a loop that shuts down: once the
// kernel's send queue is empty (the peer has taken every byte) it is no longer watched, and a
// draining one, whose linger is over, is closed. It reports whether the queue shrank.
func (l *Loop) checkLinger(t *Transport) (progress bool) {
	n := sendQueued(t.c.Fd())
	progress = n < t.lastSize
	t.lastSize = n
	if n > 0 {
		return progress
	}
	delete(l.watch, t)
	if t.state == stDraining {
		t.releaseEnrolled() // gap 7
		_ = l.el.Close(t.c) // synchronous: OnClose runs inside
	}
	return true
}

// ---------------------------------------------------------------------------------------------
// Gap 3: no half-close.
//
// gnet closes a connection as soon as read returns end-of-file, while asyncio lets a protocol
// go on writing after the peer's EOF (EOFReceived returning true). In gnet's OnClose, before
// gnet closes the socket, the transport takes a duplicate of it (detach) and writes there
// itself: directly while the kernel takes the bytes, then through one short-lived goroutine
// (detachedWriter, with Options.HalfCloseWriteTimeout) that writes the rest and closes. What
// gnet still holds must leave first, and gnet offers no way to take it: if one more
// non-blocking attempt does not send it, the transport is lost with ErrUnsent.
// ---------------------------------------------------------------------------------------------

// detach switches t to writing on a duplicate of the socket, inside gnet's OnClose (before
// gnet closes the fd).
func (t *Transport) detach(c gnet.Conn) error {
	if c.OutboundBuffered() > 0 {
		_ = c.Flush()
		if n := c.OutboundBuffered(); n > 0 {
			return fmt.Errorf("%w (%d bytes)", ErrUnsent, n)
		}
	}
	fd, err := c.Dup()
	if err != nil {
		return fmt.Errorf("reactor: dup for half-close: %w", err)
	}
	t.c = nil
	t.state = stDetached
	t.dfd = fd
	if t.paused {
		t.paused = false
		t.l.run("ResumeWriting", t.fc.ResumeWriting)
	}
	t.l.detached[t] = struct{}{}
	return nil
}

func (t *Transport) closeDFD() {
	if t.dfd >= 0 {
		_ = unix.Close(t.dfd)
		t.dfd = -1
	}
}

func (t *Transport) writeDetached(p []byte) {
	if t.w != nil {
		t.w.push(p)
		return
	}
	for len(p) > 0 {
		n, err := unix.Write(t.dfd, p)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.closeDFD()
			t.l.connLost(t, fmt.Errorf("reactor: write: %w", err))
			return
		}
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	if err := t.startWriter(p); err != nil {
		t.closeDFD()
		t.l.connLost(t, err)
	}
}

// closeDetached is Close of a detached transport: lost now, or once the writer is done.
func (t *Transport) closeDetached() {
	if t.w != nil {
		t.state = stDetachedClosing
		t.w.close()
		return
	}
	t.closeDFD()
	t.l.connLost(t, t.lostErr)
}

// detachedWriter drains the rest of a half-closed transport's output off the loop.
type detachedWriter struct {
	mu      sync.Mutex
	q       [][]byte
	n       int
	closing bool
	signal  chan struct{}
	nc      net.Conn
	timeout time.Duration
}

func (t *Transport) startWriter(rest []byte) error {
	l := t.l
	if !l.track(&l.writeWG) {
		return ErrClosed
	}
	f := os.NewFile(uintptr(t.dfd), "reactor-detached")
	nc, err := net.FileConn(f) // dups the fd again
	_ = f.Close()
	t.dfd = -1
	if err != nil {
		l.writeWG.Done()
		return fmt.Errorf("reactor: half-close writer: %w", err)
	}
	if l.dbg != nil {
		l.dbg.writers++
	}
	w := &detachedWriter{signal: make(chan struct{}, 1), nc: nc, timeout: l.opts.HalfCloseWriteTimeout}
	w.push(rest)
	t.w = w
	go func() {
		defer l.writeWG.Done()
		err := w.run()
		// Refused once the loop stops: the stop aborted t, whose ConnectionLost is queued.
		_ = l.CallSoonThreadsafe(func() {
			if err == nil {
				err = t.lostErr
			}
			l.connLost(t, err)
		})
	}()
	return nil
}

func (w *detachedWriter) push(p []byte) {
	w.mu.Lock()
	w.q = append(w.q, append([]byte(nil), p...))
	w.n += len(p)
	w.mu.Unlock()
	w.kick()
}

func (w *detachedWriter) kick() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *detachedWriter) buffered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *detachedWriter) close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.kick()
}

// abort closes the socket under the writer, which then returns. Any goroutine.
func (w *detachedWriter) abort() {
	_ = w.nc.Close()
	w.close()
}

func (w *detachedWriter) run() error {
	defer w.nc.Close()
	for {
		w.mu.Lock()
		q, closing := w.q, w.closing
		w.q = nil
		w.mu.Unlock()
		if len(q) == 0 {
			if closing {
				return nil
			}
			<-w.signal
			continue
		}
		for _, b := range q {
			_ = w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
			if _, err := w.nc.Write(b); err != nil {
				return fmt.Errorf("reactor: write: %w", err)
			}
			w.mu.Lock()
			w.n -= len(b)
			w.mu.Unlock()
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Gap 4: the acceptor ends the engine when accept fails.
//
// gnet's acceptor (acceptor_unix.go, accept0) retries accept on EINTR, ECONNRESET and
// ECONNABORTED only: any other error, EMFILE above all (the process is out of descriptors, as
// a burst of connections over the limit makes it), returns ErrAcceptSocket, which ends the
// acceptor's goroutine and with it the engine. A server must outlive that. So the loop owns its
// listeners and accepts on them itself (listeners.go): a failed accept is counted and retried
// after a pause, and each accepted connection goes to gnet's loop through EventLoop.Enroll, as
// Dial's do (gap 5). gnet still wants one listener of its own (Engine.Validate refuses an
// engine without, and Engine.Register and Stop validate): it gets 127.0.0.1:0, and OnBoot,
// before gnet's acceptor polls it, puts a descriptor that is never readable (an eventfd that is
// never written) in its place with dup3, so that gnet's acceptor never calls accept at all; gnet
// closes the stand-in when it stops. gnet does not say which descriptor is its listener, so the
// loop finds it in /proc/self/fd (Linux only). Cost: one directory read of the process's
// descriptors at Start, and the accept path of listeners.go (a dup, Go's poller and two
// goroutine hand-offs per connection more than gnet's own).
//
// A patched copy of gnet's acceptor (a replace of the whole module) would keep gnet's path but
// fork gnet; accepting here keeps gnet as it is, and gives the listeners a real Close
// (CloseListeners) and their bound addresses for free.
// ---------------------------------------------------------------------------------------------

// gnetListenAddr is the listener gnet gets, never accepted on (see gap 4).
const gnetListenAddr = "tcp4://127.0.0.1:0"

// silenceGnetListener puts a descriptor that is never readable in place of gnet's listener, so
// that gnet's acceptor never accepts. It runs in OnBoot, before the acceptor polls.
func silenceGnetListener(eng gnet.Engine) error {
	d, err := eng.DupListener("tcp", "127.0.0.1:0") // gnet files tcp4 under "tcp"
	if err != nil {
		return err
	}
	defer unix.Close(d)
	fd, err := sameSocketFD(d)
	if err != nil {
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(efd)
	return unix.Dup3(efd, fd, unix.O_CLOEXEC)
}

// sameSocketFD returns the one descriptor other than d that refers to d's socket.
func sameSocketFD(d int) (int, error) {
	var want unix.Stat_t
	if err := unix.Fstat(d, &want); err != nil {
		return -1, err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, fmt.Errorf("cannot list file descriptors: %w", err)
	}
	found := -1
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == d {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if found >= 0 {
			return -1, errors.New("the listening socket has several descriptors")
		}
		found = fd
	}
	if found < 0 {
		return -1, errors.New("gnet's descriptor of the listening socket not found")
	}
	return found, nil
}

// ---------------------------------------------------------------------------------------------
// Gap 5: Enroll cannot be abandoned.
//
// EventLoop.Enroll hands a connection (accepted, or dialled by Dial) to the loop through gnet's
// worker goroutine, which waits until the loop has opened it, and would wait for ever on a loop
// that stopped first. Loop.enrolls counts the connections on their way: a stopping loop runs on
// (closing each in OnOpen) until the last has arrived, and its arrival wakes the loop. A
// connection counts as arrived in its OnOpen, or when the one who enrolled it reads gnet's
// answer (an error, or the rare registration that fails after gnet's answer is sent, when
// OnOpen never runs).
// ---------------------------------------------------------------------------------------------

// enrollTag marks a connection handed to gnet by the loop's acceptors or by Dial.
type enrollTag struct {
	factory  ProtocolFactory
	outbound bool        // made by Dial
	done     atomic.Bool // arrived: counted off Loop.enrolls

	// answer is gnet's answer channel, stored by enroll once Enroll returns: gnet closes it
	// after its worker has closed its own descriptor of the socket (gap 7).
	answer atomic.Pointer[<-chan gnet.RegisteredResult]
}

// enroll hands nc to the loop as tag's connection, counted in Loop.enrolls until it arrives.
// Once the loop is closing it closes nc and returns ErrClosed. Any goroutine but the loop;
// gnet's answer must not be awaited on the loop either.
func (l *Loop) enroll(nc net.Conn, tag *enrollTag) (<-chan gnet.RegisteredResult, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = nc.Close()
		return nil, ErrClosed
	}
	l.enrolls.Add(1)
	l.mu.Unlock()
	ch, err := l.el.Enroll(gnet.NewContext(context.Background(), tag), nc)
	if err != nil {
		tag.arrived(l)
		_ = nc.Close()
		if errors.Is(err, gerrors.ErrEngineInShutdown) {
			err = ErrClosed
		}
		return nil, err
	}
	tag.answer.Store(&ch)
	return ch, nil
}

// arrived takes t's connection off the loop's count of those in flight, once.
func (t *enrollTag) arrived(l *Loop) {
	if t.done.CompareAndSwap(false, true) {
		l.enrolls.Add(-1)
		if l.stopReq.Load() {
			l.wake() // a stopping loop may be waiting for this one
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Gap 6: no send-queue size.
//
// gnet reports the bytes it holds for a connection (OutboundBuffered) but not those the kernel
// holds, and a graceful stop must not close a socket before the peer has them: with input
// still arriving, the close sends a reset and the kernel drops its queue. sendQueued asks the
// kernel (ioctl SIOCOUTQ, TIOCOUTQ's number on Linux: bytes not yet acknowledged, the end of
// stream included once the write side is shut). A shutting-down loop asks for each lingering
// or draining transport on each drain check (gap 2): one system call each, so O(watched) per
// check, only while a stop waits on them.
// ---------------------------------------------------------------------------------------------

// sendQueued returns the bytes of socket fd's send queue that the peer has not acknowledged;
// 0 if the kernel cannot say (the socket is gone).
func sendQueued(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return 0
	}
	return n
}

// ---------------------------------------------------------------------------------------------
// Gap 7: Enroll's worker holds the socket for a moment after OnOpen.
//
// EventLoop.Enroll gives the loop a duplicate of the connection's descriptor; gnet's worker
// closes the original only after the loop has run OnOpen, once the scheduler gets round to it.
// Until then, gnet's close of its duplicate closes nothing: the socket stays open, unread, and
// when the worker closes the original with input queued the kernel sends the reset a
// lingering close exists to avoid. A connection closed within moments of its arrival (an
// invalid first line, say) could end its linger in that window. So before ending a linger the
// loop waits for the worker to let go (releaseEnrolled): gnet closes its answer channel right
// after the original descriptor, and the worker has nothing left that can block, so the wait
// is one goroutine switch at worst and none once the channel is closed, as it is for all but
// the youngest connections. Waiting is safe outside OnOpen only (the worker waits for the
// loop to finish OnOpen), and lingers end in passes and OnTraffic.
// ---------------------------------------------------------------------------------------------

// releaseEnrolled returns once gnet's enrolling worker has closed its own descriptor of t's
// socket, so that closing t's closes the socket. Loop only, never in OnOpen.
func (t *Transport) releaseEnrolled() {
	tag := t.tag
	if tag == nil {
		return
	}
	t.tag = nil
	p := tag.answer.Load()
	for p == nil { // enroll stores it as soon as Enroll returns: a few instructions away
		runtime.Gosched()
		p = tag.answer.Load()
	}
	for range *p { // the answer, if its reader has not taken it; then the close
	}
}
