package reactor

import (
	"errors"
	"fmt"
	"net"

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

// tstate is where a transport is in its life. The transitions, in the manner of asyncio's
// protocols.py (which writes start -> CM [-> DR*] [-> ER?] -> CL -> end for the protocol's
// side):
//
//	open -> [eofPending ->] writeShut              WriteEOF: the write side shuts once drained
//	open -> detached                               peer EOF, EOFReceived true (gnetgaps.go)
//	open | eofPending -> closing -> lingering      Close: drain, shut the write side, linger
//	writeShut -> lingering                         Close with nothing left to send
//	closing -> closed                              drained, lingering off or the loop stopping
//	closing -> draining                            drained, lingering off, the loop shutting
//	                                               down and the peer short of bytes sent
//	detached -> detachedClosing -> lost            Close: the writer sends the rest
//	any but lingering, draining and lost           Abort, a failed write or shutdown
//	  -> closed -> lost
//	reading states -> lost                         the peer closes or resets
//	lingering -> lost                              the peer closes, LingerTimeout, LingerBytes
//	lingering -> draining                          LingerTimeout or LingerBytes while the loop
//	                                               shuts down and the peer is short of bytes
//	draining -> lost                               the peer has taken every byte, closes or
//	                                               resets; the loop stops
//
// ConnectionLost is scheduled on entering lingering, draining or lost, so it comes once. The
// reading states are open, eofPending and writeShut: they hand input to DataReceived. Only
// open and detached take writes. From closing on, input is discarded. closed lasts only while
// the transport's own gnet callback runs (gnet closes the connection when it returns);
// elsewhere the close is synchronous and the transport is lost at once. "Short of bytes" means
// the kernel's send queue is not empty (SIOCOUTQ, gnetgaps.go): the peer has not acknowledged
// everything written, the end of stream included. Closing such a socket while input is still
// arriving sends a reset, which destroys the queue; a draining socket is therefore only closed
// once the peer has it all, or when the loop's stop ends the wait (Shutdown, then Stop).
//
// Write flow control (paused) is kept apart from the state, as asyncio keeps _protocol_paused
// apart from _closing: a transport may be paused in any state that has a write buffer.
type tstate uint8

const (
	stOpen            tstate = iota // reading and writing
	stEOFPending                    // WriteEOF called: writes dropped, the write side shuts once drained
	stWriteShut                     // the write side is shut: reading only
	stDetached                      // the peer closed and the protocol writes on (a duplicate of the socket)
	stClosing                       // Close called: the write buffer drains; input discarded
	stDetachedClosing               // Close called while detached: the writer sends what is left
	stClosed                        // the socket closes when the running gnet callback returns
	stLingering                     // ConnectionLost scheduled; the socket stays open, discarding input
	stDraining                      // lingering over, the loop shutting down: open until the peer has every byte
	stLost                          // ConnectionLost scheduled; the socket is closed
)

// Transport is one TCP connection on the loop, like asyncio's transport. All methods are loop
// only (Debug mode panics otherwise); none blocks.
//
// After the peer half-closes and EOFReceived returns true, gnet has already dropped the
// connection, so the transport writes to a duplicate of the socket on its own: directly when the
// kernel takes the bytes, else through one short-lived goroutine that writes what is left (with
// Options.HalfCloseWriteTimeout) and then closes. That rare path is the only goroutine a
// connection ever gets.
type Transport struct {
	l        *Loop
	id       uint64
	c        gnet.Conn // nil once gnet has closed the connection
	proto    Protocol
	fc       WriteFlowController
	state    tstate
	paused   bool // PauseWriting called, ResumeWriting not yet
	high     int
	low      int
	lastSize int // write buffer size at the last drain check
	lostErr  error
	outbound bool
	tag      *enrollTag // until gnet's worker is known to have let go of the socket (gap 7)
	local    net.Addr
	remote   net.Addr

	lingerRead  int     // bytes discarded while lingering
	lingerTimer *Handle // ends the linger

	// Detached (half-closed by the peer, see gnetgaps.go).
	dfd int // dup of the socket, -1 once handed to the writer or closed
	w   *detachedWriter
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

// Write queues p to be sent; p may be reused after Write returns. Writes after Close or
// WriteEOF, or after the connection is lost, are dropped. Loop only.
func (t *Transport) Write(p []byte) {
	t.l.checkLoop("Transport.Write")
	if t.state != stOpen || len(p) == 0 {
		if t.state == stDetached && len(p) > 0 {
			t.writeDetached(p)
		}
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
	if t.state != stOpen {
		if t.state == stDetached {
			for _, b := range bufs {
				t.writeDetached(b)
			}
		}
		return
	}
	_, _ = t.c.Writev(bufs)
	if t.fc != nil {
		t.afterWrite()
	}
}

func (t *Transport) afterWrite() {
	if t.c == nil || t.paused || t.fc == nil {
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
// the peer has not read yet (say, an error message to a client that is still sending). While
// the loop shuts down (Loop.Shutdown) the socket is not closed before the peer has taken every
// byte, whatever the linger's bounds, until Stop.
func (t *Transport) Close() {
	t.l.checkLoop("Transport.Close")
	switch t.state {
	case stOpen, stEOFPending:
		t.state = stClosing
		if t.c.OutboundBuffered() == 0 {
			t.closeDrained(false)
			return
		}
		t.l.watchAdd(t)
	case stWriteShut:
		t.state = stClosing
		t.closeDrained(true)
	case stDetached:
		t.closeDetached()
	}
}

// WriteEOF closes the write side of the transport once its write buffer has been sent
// (shutdown(SHUT_WR); asyncio's write_eof): the peer reads end-of-file, and the transport goes
// on receiving until the peer closes too (EOFReceived, whose answer is then ignored: there is
// nothing left to write) or Close or Abort is called. Writes after WriteEOF are dropped.
// Idempotent. Loop only.
func (t *Transport) WriteEOF() {
	t.l.checkLoop("Transport.WriteEOF")
	switch t.state {
	case stOpen:
		if t.c.OutboundBuffered() > 0 {
			t.state = stEOFPending
			t.l.watchAdd(t)
			return
		}
		if t.shutdownWrite() {
			t.state = stWriteShut
		}
	case stDetached:
		t.Close() // the peer has closed already: both directions are done
	}
}

// shutdownWrite shuts down the write side of t's socket; on failure it aborts t.
func (t *Transport) shutdownWrite() bool {
	if err := unix.Shutdown(t.c.Fd(), unix.SHUT_WR); err != nil {
		t.abortOnLoop(fmt.Errorf("reactor: shutdown: %w", err))
		return false
	}
	return true
}

// closeDrained finishes a Close (state closing) whose write buffer is empty: a lingering close
// (write side shut unless shut is true already, ConnectionLost scheduled, input discarded
// until the real close), or, with lingering off or the loop stopping, the real close. While
// the loop shuts down (Shutdown) a socket whose peer is short of bytes is never closed here:
// with lingering off it drains at once instead.
func (t *Transport) closeDrained(shut bool) {
	l := t.l
	if l.stopping || t.c == nil {
		t.closeGnet()
		return
	}
	linger := l.opts.LingerTimeout >= 0
	if !linger && (!l.shutting || sendQueued(t.c.Fd()) == 0) {
		t.closeGnet()
		return
	}
	if !shut && !t.shutdownWrite() {
		return
	}
	t.state = stDraining
	if linger {
		t.state = stLingering
		t.lingerTimer = l.callAt(l.clock.Now().Add(l.opts.LingerTimeout), t.endLinger)
	}
	l.scheduleLost(t, t.lostErr)
	l.lingering[t] = struct{}{}
	if l.shutting {
		l.watchAdd(t)
	}
}

// endLinger ends the linger of a lingering transport once LingerTimeout has passed.
func (t *Transport) endLinger() {
	t.lingerTimer = nil
	if t.c != nil && t.lingerEnds() {
		_ = t.l.el.Close(t.c) // synchronous: OnClose runs inside
	}
}

// lingerEnds is the end of a linger (LingerTimeout or LingerBytes): it reports whether the
// socket is to close now. It is not while the loop shuts down and the peer is short of bytes:
// the transport drains then, until the peer has them (checkLinger) or the stop ends.
func (t *Transport) lingerEnds() (closeNow bool) {
	l := t.l
	if !l.shutting || sendQueued(t.c.Fd()) == 0 {
		t.releaseEnrolled()
		return true
	}
	t.state = stDraining
	t.lingerTimer.Cancel()
	t.lingerTimer = nil
	l.watchAdd(t)
	return false
}

// unsent returns the bytes t holds that its peer has not taken: its write buffer and the
// kernel's send queue (or, detached, what the writer still holds). Loop only.
func (t *Transport) unsent() int {
	switch {
	case t.c != nil:
		return t.c.OutboundBuffered() + sendQueued(t.c.Fd())
	case t.w != nil:
		return t.w.buffered()
	case t.dfd >= 0:
		return sendQueued(t.dfd)
	}
	return 0
}

// Abort closes the transport now, dropping what is queued (gnet makes one non-blocking attempt
// to send it). ConnectionLost(nil) follows. Idempotent. Loop only.
func (t *Transport) Abort() {
	t.l.checkLoop("Transport.Abort")
	t.abortOnLoop(nil)
}

// abortOnLoop closes t at once; err, if t has no error yet, goes to ConnectionLost.
func (t *Transport) abortOnLoop(err error) {
	if t.state >= stLingering {
		return
	}
	if err != nil && t.lostErr == nil {
		t.lostErr = err
	}
	if t.c == nil { // detached
		if t.w != nil {
			t.w.abort() // the writer's own report then finds t lost
		}
		t.closeDFD()
		t.l.connLost(t, t.lostErr)
		return
	}
	t.closeGnet()
}

// closeGnet closes the gnet connection: at the end of its own callback if one runs (state
// closed until then), else now, and then t is lost.
func (t *Transport) closeGnet() {
	if t.c == nil {
		return
	}
	t.state = stClosed
	if t.l.cur == t {
		return
	}
	_ = t.l.el.Close(t.c) // synchronous: OnClose runs inside
}

// traffic handles readable data of a transport. Loop only (gnet's OnTraffic).
func (l *Loop) traffic(t *Transport, c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	if t.state >= stClosing {
		return l.trafficClosing(t, c, len(buf))
	}
	// While t is current, closing it only sets the state to closed, and gnet closes it when
	// this returns: closing a connection inside its own OnTraffic would leave gnet using a
	// released conn.
	l.cur = t
	if len(buf) > 0 && !l.dataReceived(t, buf) {
		t.abortOnLoop(errors.New("reactor: panic in DataReceived"))
	}
	if t.paused && t.state != stClosed {
		l.checkTransport(t) // ResumeWriting may run, and may close t
	}
	l.cur = nil
	if t.state == stClosed {
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

// trafficClosing handles n bytes read on a closing, lingering or draining transport: they are
// discarded.
func (l *Loop) trafficClosing(t *Transport, c gnet.Conn, n int) gnet.Action {
	switch t.state {
	case stLingering:
		t.lingerRead += n
		if t.lingerRead > l.opts.LingerBytes && t.lingerEnds() {
			return gnet.Close
		}
	case stClosing:
		if c.OutboundBuffered() == 0 {
			l.cur = t
			t.closeDrained(false)
			l.cur = nil
		}
	}
	if t.state == stClosed {
		return gnet.Close
	}
	return gnet.None
}

// connClosed is gnet's OnClose for a transport: decide between ConnectionLost and half-close.
func (l *Loop) connClosed(t *Transport, c gnet.Conn, err error) {
	delete(l.conns, t.id)
	delete(l.watch, t)
	if t.state >= stLingering {
		t.socketClosed()
		return
	}
	eof := isEOF(err)
	if eof && t.state < stDetached && !l.stopping {
		l.cur = t
		keep := false
		ok := l.run("EOFReceived", func() { keep = t.proto.EOFReceived() })
		l.cur = nil
		if t.state >= stLingering { // EOFReceived called Close, which lingers on a closing socket
			t.socketClosed()
			return
		}
		if ok && keep && t.state == stOpen {
			derr := t.detach(c)
			if derr == nil {
				return
			}
			t.lostErr = derr
		}
	}
	if eof && t.state != stClosed && c.OutboundBuffered() > 0 {
		// gnet makes one more non-blocking attempt after OnClose and drops the rest.
		_ = c.Flush()
		if n := c.OutboundBuffered(); n > 0 && t.lostErr == nil {
			t.lostErr = fmt.Errorf("%w (up to %d bytes)", ErrUnsent, n)
		}
	}
	if eof || t.state >= stClosing {
		err = nil
	}
	t.c = nil
	if t.lostErr != nil {
		err = t.lostErr
	}
	l.connLost(t, err)
}

// socketClosed records that the socket of a lingering, draining (or lost) transport is gone.
// A shutting-down loop may be waiting for that alone, so it is woken.
func (t *Transport) socketClosed() {
	t.c = nil
	t.state = stLost
	t.lingerTimer.Cancel()
	t.lingerTimer = nil
	delete(t.l.lingering, t)
	if t.l.shutting {
		t.l.wakeOnLoop()
	}
}

// connLost moves t to lost and schedules ConnectionLost(err), unless it was scheduled already.
func (l *Loop) connLost(t *Transport, err error) {
	if t.state >= stLingering {
		return
	}
	t.state = stLost
	l.scheduleLost(t, err)
}

// scheduleLost forgets t and schedules its ConnectionLost(err), which runs in a pass.
func (l *Loop) scheduleLost(t *Transport, err error) {
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
