package reactor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Protocol receives the events of one connection, like asyncio.Protocol. Every method runs on
// the loop.
type Protocol interface {
	// ConnectionMade is called once, first, with the connection's transport.
	ConnectionMade(t *Transport)
	// DataReceived is called with bytes read. data is valid only during the call: copy what
	// you keep.
	DataReceived(data []byte)
	// EOFReceived is called when the peer has closed its sending side. Return true to keep the
	// transport open for writing (close it yourself later); false closes it.
	EOFReceived() bool
	// ConnectionLost is called once, last, when the connection is closed: err is nil on a
	// clean close (Close, Abort, peer EOF, loop Stop) and says what failed otherwise.
	ConnectionLost(err error)
}

// WriteFlowController is an optional interface of a Protocol: PauseWriting is called once when
// the transport's write buffer rises above the high-water mark, ResumeWriting once when it has
// drained to the low-water mark or below. Both run on the loop.
type WriteFlowController interface {
	PauseWriting()
	ResumeWriting()
}

// ErrUnsent is the ConnectionLost error when the peer closed while bytes were still queued
// that the kernel would not take (gnet drops a connection on EOF; see the package doc).
var ErrUnsent = errors.New("reactor: peer closed with bytes unsent")

// Default write-buffer limits, as in asyncio.
const (
	defaultHigh = 64 << 10
	defaultLow  = defaultHigh / 4
)

// The loop checks paused and closing transports for a drained write buffer on every pass and,
// when nothing else wakes it, on a timer (gnet has no drain callback): first after
// watchMin, then backing off to watchMax while no buffer shrinks.
const (
	watchMin = time.Millisecond
	watchMax = 32 * time.Millisecond
)

// Transport is one TCP connection on the loop, like asyncio's transport. All methods are loop
// only (Debug mode panics otherwise); none blocks.
//
// After the peer half-closes and EOFReceived returns true, gnet has already dropped the
// connection, so the transport writes to a duplicate of the socket on its own: directly when the
// kernel takes the bytes, else through one short-lived goroutine that writes what is left (with
// Options.HalfCloseWriteTimeout) and then closes. That rare path is the only goroutine a connection ever
// gets.
type Transport struct {
	l        *Loop
	id       uint64
	c        gnet.Conn // nil once gnet has closed the connection
	proto    Protocol
	fc       WriteFlowController
	high     int
	low      int
	paused   bool
	closing  bool // Close called: no more writes, close when drained
	closeNow bool // close in the gnet callback that is running
	aborted  bool
	lastSize int  // write buffer size at the last watch check
	lost     bool // ConnectionLost scheduled
	lostErr  error
	outbound bool
	local    net.Addr
	remote   net.Addr

	// Write side shut (WriteEOF, lingering Close).
	eofPending  bool // WriteEOF called: shut the write side once drained
	eofWritten  bool // shutdown(SHUT_WR) done
	lingering   bool // closed for the protocol; reading and discarding until the real close
	lingerRead  int
	lingerTimer *Handle

	// Half-closed ("detached") mode.
	detached bool
	dfd      int // dup of the socket, -1 once handed to the writer or closed
	w        *detachedWriter
}

// ID returns a number unique among the loop's transports. Any goroutine.
func (t *Transport) ID() uint64 { return t.id }

// RemoteAddr returns the peer's address (a copy taken at connect). Any goroutine.
func (t *Transport) RemoteAddr() net.Addr { return t.remote }

// LocalAddr returns the local address (a copy taken at connect). Any goroutine.
func (t *Transport) LocalAddr() net.Addr { return t.local }

// Outbound reports whether the connection was made by Dial. Any goroutine.
func (t *Transport) Outbound() bool { return t.outbound }

// Protocol returns the transport's protocol. Loop only.
func (t *Transport) Protocol() Protocol { return t.proto }

// IsClosing reports whether Close or Abort was called or the connection is lost. Loop only.
func (t *Transport) IsClosing() bool { return t.closing || t.lost }

// Write queues p to be sent; p may be reused after Write returns. Writes after Close or after
// the connection is lost are dropped. Loop only.
func (t *Transport) Write(p []byte) {
	t.l.checkLoop("Transport.Write")
	if t.closing || t.lost || t.eofPending || len(p) == 0 {
		return
	}
	if t.detached {
		t.writeDetached(p)
		return
	}
	_, _ = t.c.Write(p) // a hard error closes the conn inside Write: OnClose marks t lost
	if t.fc != nil {
		t.afterWrite()
	}
}

// Writev is Write for several buffers, sent in order with one system call when possible.
// The buffers may be reused after Writev returns. Loop only.
func (t *Transport) Writev(bufs [][]byte) {
	t.l.checkLoop("Transport.Writev")
	if t.closing || t.lost || t.eofPending {
		return
	}
	if t.detached {
		for _, b := range bufs {
			t.writeDetached(b)
		}
		return
	}
	_, _ = t.c.Writev(bufs)
	if t.fc != nil {
		t.afterWrite()
	}
}

func (t *Transport) afterWrite() {
	if t.lost || t.c == nil || t.paused || t.fc == nil {
		return
	}
	if t.c.OutboundBuffered() > t.high {
		t.paused = true
		t.l.run("PauseWriting", t.fc.PauseWriting)
		t.l.watchAdd(t)
	}
}

// WriteBufferSize returns the bytes queued and not yet taken by the kernel. Loop only.
func (t *Transport) WriteBufferSize() int {
	if c := t.c; c != nil {
		return c.OutboundBuffered()
	}
	if t.w != nil {
		return t.w.buffered()
	}
	return 0
}

// SetWriteBufferLimits sets the high- and low-water marks of the write buffer that drive
// PauseWriting and ResumeWriting (defaults 64 KiB and 16 KiB). high <= 0 means 64 KiB;
// low <= 0 means high/4; low is capped at high. Loop only.
func (t *Transport) SetWriteBufferLimits(high, low int) {
	t.l.checkLoop("Transport.SetWriteBufferLimits")
	if high <= 0 {
		high = defaultHigh
	}
	if low <= 0 {
		low = high / 4
	}
	low = min(low, high)
	t.high, t.low = high, low
	if t.c != nil {
		t.afterWrite()
		if t.paused {
			t.l.watchAdd(t)
		}
	}
}

// Close closes the transport once its write buffer has been sent; data received meanwhile is
// discarded. ConnectionLost(nil) follows. Idempotent. Loop only.
//
// The close lingers, as web servers do: once everything is sent, Close shuts down the write
// side (the peer reads end-of-file after the last byte) and ConnectionLost is scheduled, but the
// socket stays open for a while, reading and discarding what the peer still sends, until the
// peer closes, Options.LingerTimeout passes or more than Options.LingerBytes arrive. Closing a
// socket with unread input makes the kernel send a reset, and a reset can destroy the reply
// the peer has not read yet (say, an error message to a client that is still sending).
func (t *Transport) Close() {
	t.l.checkLoop("Transport.Close")
	if t.closing || t.lost {
		return
	}
	t.closing = true
	if t.detached {
		t.closeDetached()
		return
	}
	if t.c.OutboundBuffered() == 0 {
		t.closeDrained()
		return
	}
	t.l.watchAdd(t)
}

// WriteEOF closes the write side of the transport once its write buffer has been sent
// (shutdown(SHUT_WR); asyncio's write_eof): the peer reads end-of-file, and the transport goes
// on receiving until the peer closes too (EOFReceived, whose answer is then ignored: there is
// nothing left to write) or Close or Abort is called. Writes after WriteEOF are dropped.
// Idempotent. Loop only.
func (t *Transport) WriteEOF() {
	t.l.checkLoop("Transport.WriteEOF")
	if t.closing || t.lost || t.eofPending {
		return
	}
	t.eofPending = true
	if t.detached {
		t.Close() // the peer has closed already: both directions are done
		return
	}
	if t.c.OutboundBuffered() == 0 {
		t.shutdownWrite()
		return
	}
	t.l.watchAdd(t)
}

// shutdownWrite shuts down the write side of t's socket.
func (t *Transport) shutdownWrite() bool {
	if t.eofWritten {
		return true
	}
	if err := unix.Shutdown(t.c.Fd(), unix.SHUT_WR); err != nil {
		t.abortOnLoop(fmt.Errorf("reactor: shutdown: %w", err))
		return false
	}
	t.eofWritten = true
	return true
}

// closeDrained finishes a Close whose write buffer is empty: a lingering close (write side
// shut, ConnectionLost scheduled, input discarded until the real close), or, with lingering
// off or the loop stopping, the real close.
func (t *Transport) closeDrained() {
	l := t.l
	if l.opts.LingerTimeout < 0 || l.stopping || t.c == nil {
		t.closeGnet()
		return
	}
	if !t.shutdownWrite() {
		return
	}
	t.lingering = true
	t.lingerTimer = l.callAt(time.Now().Add(l.opts.LingerTimeout), func() {
		t.lingerTimer = nil
		t.closeGnet()
	})
	l.connLost(t, t.lostErr)
}

// Abort closes the transport now, dropping what is queued (gnet makes one non-blocking attempt
// to send it). ConnectionLost(nil) follows. Idempotent. Loop only.
func (t *Transport) Abort() {
	t.l.checkLoop("Transport.Abort")
	t.abortOnLoop(nil)
}

func (t *Transport) abortOnLoop(err error) {
	if t.lost {
		return
	}
	t.closing = true
	t.aborted = true
	if err != nil && t.lostErr == nil {
		t.lostErr = err
	}
	if t.detached {
		if t.w != nil {
			t.w.abort() // the writer's own report then finds t lost
		}
		t.closeDFD()
		t.l.connLost(t, t.lostErr)
		return
	}
	t.closeGnet()
}

// closeGnet closes the gnet connection: at the end of its own callback if one runs, else now.
func (t *Transport) closeGnet() {
	if t.c == nil {
		return
	}
	if t.l.cur == t {
		t.closeNow = true
		return
	}
	_ = t.l.el.Close(t.c) // synchronous: OnClose runs inside
}

// traffic handles readable data of a transport. Loop only (gnet's OnTraffic).
func (l *Loop) traffic(t *Transport, c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	if t.closing || t.lost {
		return l.trafficClosing(t, c, len(buf))
	}
	// While t is current, closing it only sets closeNow, and gnet closes it when this returns:
	// closing a connection inside its own OnTraffic would leave gnet using a released conn.
	l.cur = t
	if len(buf) > 0 && !l.dataReceived(t, buf) {
		t.abortOnLoop(errors.New("reactor: panic in DataReceived"))
	}
	if t.paused && !t.closeNow {
		l.checkTransport(t) // ResumeWriting may run, and may close t
	}
	l.cur = nil
	if t.closeNow {
		return gnet.Close
	}
	return gnet.None
}

// dataReceived is run("DataReceived", ...) without the closure: it is called on every read.
func (l *Loop) dataReceived(t *Transport, buf []byte) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			l.logPanic("DataReceived", r)
			ok = false
		}
	}()
	if l.opts.Debug {
		return l.run("DataReceived", func() { t.proto.DataReceived(buf) })
	}
	t.proto.DataReceived(buf)
	return true
}

// trafficClosing handles n bytes read on a closing transport: they are discarded.
func (l *Loop) trafficClosing(t *Transport, c gnet.Conn, n int) gnet.Action {
	if t.lingering {
		t.lingerRead += n
		if t.lingerRead > l.opts.LingerBytes {
			return gnet.Close
		}
		return gnet.None
	}
	if !t.closeNow && !t.lost && c.OutboundBuffered() == 0 {
		l.cur = t
		t.closeDrained()
		l.cur = nil
	}
	if t.closeNow {
		return gnet.Close
	}
	return gnet.None
}

// connClosed is gnet's OnClose for a transport: decide between ConnectionLost and half-close.
func (l *Loop) connClosed(t *Transport, c gnet.Conn, err error) {
	delete(l.conns, t.id)
	delete(l.watch, t)
	if t.lost {
		t.c = nil
		if t.lingerTimer != nil {
			t.lingerTimer.Cancel()
			t.lingerTimer = nil
		}
		return
	}
	eof := isEOF(err)
	if eof && !t.closing && !l.stopping {
		l.cur = t
		keep := false
		ok := l.run("EOFReceived", func() { keep = t.proto.EOFReceived() })
		l.cur = nil
		if ok && keep && !t.closing && !t.closeNow && !t.eofPending {
			derr := t.detach(c)
			if derr == nil {
				return
			}
			t.lostErr = derr
		}
	}
	if eof && !t.aborted && c.OutboundBuffered() > 0 {
		// gnet makes one more non-blocking attempt after OnClose and drops the rest.
		_ = c.Flush()
		if n := c.OutboundBuffered(); n > 0 && t.lostErr == nil {
			t.lostErr = fmt.Errorf("%w (up to %d bytes)", ErrUnsent, n)
		}
	}
	if eof || t.closing {
		err = nil
	}
	t.c = nil
	if t.lostErr != nil {
		err = t.lostErr
	}
	l.connLost(t, err)
}

// connLost marks t lost and schedules ConnectionLost(err), once.
func (l *Loop) connLost(t *Transport, err error) {
	if t.lost {
		return
	}
	t.lost = true
	t.closing = true
	delete(l.conns, t.id)
	delete(l.watch, t)
	delete(l.detached, t)
	p := t.proto
	if p == nil {
		return
	}
	l.ready = append(l.ready, readyItem{fn: func() { l.run("ConnectionLost", func() { p.ConnectionLost(err) }) }})
	l.wakeOnLoop()
}

// detach switches t to writing on a duplicate of the socket, inside gnet's OnClose (before
// gnet closes the fd). Whatever gnet still holds must leave first, or it would be lost.
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
	t.detached = true
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

func (t *Transport) closeDetached() {
	if t.w != nil {
		t.w.close()
		return
	}
	t.closeDFD()
	t.l.connLost(t, t.lostErr)
}

// writersStarted counts detached writers, for tests.
var writersStarted atomic.Int64

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
	if !t.l.track(&t.l.writeWG) {
		return ErrClosed
	}
	f := os.NewFile(uintptr(t.dfd), "reactor-detached")
	nc, err := net.FileConn(f) // dups the fd again
	_ = f.Close()
	t.dfd = -1
	if err != nil {
		t.l.writeWG.Done()
		return fmt.Errorf("reactor: half-close writer: %w", err)
	}
	writersStarted.Add(1)
	w := &detachedWriter{signal: make(chan struct{}, 1), nc: nc, timeout: t.l.opts.HalfCloseWriteTimeout}
	w.push(rest)
	t.w = w
	l := t.l
	go func() {
		defer l.writeWG.Done()
		err := w.run()
		if pe := l.CallSoonThreadsafe(func() {
			if err == nil {
				err = t.lostErr
			}
			l.connLost(t, err)
		}); pe != nil {
			// The loop is stopping; finish's leftovers run nothing for us, so it is dropped.
			return
		}
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
func (w *detachedWriter) abort() { _ = w.nc.Close() }

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

// closeWriter makes a detached writer finish at once (loop stopping). Any goroutine.
func (t *Transport) closeWriter() {
	if w := t.w; w != nil {
		w.abort()
		w.close()
	}
}

// watchAdd puts t on the watch list.
func (l *Loop) watchAdd(t *Transport) {
	l.watch[t] = struct{}{}
	l.watchDelay = watchMin
	if l.watchTimer == nil {
		l.watchTimer = l.callAt(time.Now().Add(l.watchDelay), l.watchTick)
	}
}

func (l *Loop) watchTick() {
	l.watchTimer = nil
	if !l.checkWatch() {
		l.watchDelay = min(2*l.watchDelay, watchMax)
	} else {
		l.watchDelay = watchMin
	}
	if len(l.watch) > 0 {
		l.watchTimer = l.callAt(time.Now().Add(l.watchDelay), l.watchTick)
	}
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

func (l *Loop) checkTransport(t *Transport) (progress bool) {
	if t.lost || t.c == nil {
		delete(l.watch, t)
		return true
	}
	n := t.c.OutboundBuffered()
	progress = n < t.lastSize
	t.lastSize = n
	if t.paused && n <= t.low {
		t.paused = false
		l.run("ResumeWriting", t.fc.ResumeWriting)
	}
	if t.closing && !t.lost && t.c != nil && t.c.OutboundBuffered() == 0 {
		delete(l.watch, t)
		t.closeDrained()
		return true
	}
	if t.eofPending && !t.eofWritten && !t.closing && n == 0 {
		t.shutdownWrite()
	}
	if !t.paused && !t.closing && (!t.eofPending || t.eofWritten) {
		delete(l.watch, t)
	}
	return progress
}
