package herd

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/reactor"
)

// transport is what a connection needs of *reactor.Transport (a fake in benchmarks).
type transport interface {
	Write(p []byte)
	Close()
	Abort()
	WriteBufferSize() int
	RemoteAddr() net.Addr
	ID() uint64
}

// slot is one reply in a connection's queue: replies leave in request order, so a WHATSAT's slot
// holds back the ones behind it until Places answers.
type slot struct {
	buf   []byte // the reply, or a WHATSAT's AT line and its "\n"
	body  []byte // a WHATSAT's body and blank line, after buf: shared by the WHATSATs of one Places answer, never changed
	ready bool
}

// clientConn is the protocol of one accepted connection: a client, or a neighbour sending
// AT lines. Every method runs on the loop.
type clientConn struct {
	s *Server
	t transport

	id      uint64
	origin  Origin        // FromClient, FromNeighbourHost or FromPlainHost, known at accept
	dec     codec.Decoder // frames the lines read
	out     []byte        // replies gathered during one event, written at its end in one write
	q       []*slot       // replies waiting behind a WHATSAT; q[head:] are live
	head    int
	qBytes  int // bytes held in q
	unsent  int // unsent reply bytes at the last flush, counted in Server.unsentTotal
	waiting int // WHATSATs waiting on Places

	inLine   []byte // the line being handled, not logged yet (logged with its reply)
	sent     bool   // the peer sent a byte: the connection's records are at INFO from then on
	stop     bool   // no more lines are processed: invalid line, too long, cut off
	eof      bool   // the client half-closed
	closing  bool   // Close or Abort called
	lost     bool   // ConnectionLost ran
	rejected bool   // closed at once: over max_clients or shutting down
	dirty    bool   // replies made ready in this pass, written at its end (Server.flushDirty)
	sentAT   bool   // sent an AT line that was applied: a neighbour's link, exempt from deadlines

	// Deadlines (idle_timeout, line_timeout): one timer per connection, re-armed when it fires
	// for the earliest deadline then (lazily: reads only note times), and earlier only when a
	// line begins and the timer would fire after its line_timeout.
	lastRead  time.Time       // when the last bytes arrived
	lineStart time.Time       // when the first byte of the line not ended yet arrived; zero: none
	timer     *reactor.Handle // the deadline check
}

func (s *Server) newClient() *clientConn { return &clientConn{s: s} }

// ConnectionMade implements reactor.Protocol.
func (c *clientConn) ConnectionMade(t *reactor.Transport) { c.attach(t) }

func (c *clientConn) attach(t transport) {
	s := c.s
	c.t, c.id = t, t.ID()
	c.origin = s.originOf(t.RemoteAddr())
	c.dec = codec.Decoder{Max: s.lim.MaxLine, AT: true}
	if s.stopping || len(s.clients) >= s.lim.MaxClients && !c.neighbourRoom() {
		c.rejected, c.stop, c.closing = true, true, true
		s.metrics.ClientsRejected.Add(1)
		why, reason := "over max_clients", refuseMaxClients
		if s.stopping {
			why, reason = "shutting down", refuseStopping
		}
		s.metrics.Refused[reason].Add(1)
		s.log.Warn("connection refused", "conn", c.id, "remote", addrString(t.RemoteAddr()), "why", why, "clients", len(s.clients))
		if s.stopping {
			t.Close() // an end of stream, not a reset: the stop waits for the linger anyway
		} else {
			t.Abort() // the descriptor is free at once, against a burst over the limit
		}
		return
	}
	s.clients[c.id] = c
	if d := s.lim.IdleTimeout; d > 0 {
		c.lastRead = s.loop.Time()
		c.armAt(c.lastRead.Add(d))
	}
	s.metrics.ClientsOpen.Add(1)
	s.metrics.ClientsTotal.Add(1)
}

// firstBytes writes the connection's "open" record, when its first bytes arrive: a
// connection that closes without sending a byte (a health probe, a port scan) writes no
// record at INFO, only one at DEBUG when it closes. Loop only.
func (c *clientConn) firstBytes() {
	c.sent = true
	if c.s.logInfo {
		g := c.s.lg
		g.begin(slog.LevelInfo, "open")
		g.uint("conn", c.id)
		g.str("remote", addrString(c.t.RemoteAddr()))
		g.end()
	}
}

// neighbourRoom reports whether a connection over max_clients may still come in: one from a
// neighbour's host, while there are fewer than max_clients plus one per neighbour. Loop only.
func (c *clientConn) neighbourRoom() bool {
	s := c.s
	return len(s.clients) < s.lim.MaxClients+len(s.links) && c.origin.neighbour()
}

// armAt makes the deadline check run at when, unless it runs sooner already. Loop only.
func (c *clientConn) armAt(when time.Time) {
	if c.timer != nil {
		if !c.timer.When().After(when) {
			return
		}
		c.timer.Cancel()
	}
	c.timer = c.s.loop.CallAt(when, c.checkDeadlines)
}

// checkDeadlines is the connection's timer: it closes the connection if its line has taken
// line_timeout since its first byte (with a "?" reply), or if it has been quiet for
// idle_timeout and is owed nothing; else it re-arms itself for the earliest deadline left.
// A connection that has sent AT lines (a neighbour's link) is exempt from both. Loop only.
func (c *clientConn) checkDeadlines() {
	c.timer = nil
	if c.closing || c.lost || c.stop || c.sentAT {
		return
	}
	s := c.s
	now := s.eventNow()
	var next time.Time
	if d := s.lim.LineTimeout; d > 0 && !c.lineStart.IsZero() {
		due := c.lineStart.Add(d)
		if !now.Before(due) {
			c.lineTimedOut()
			return
		}
		next = due
	}
	if d := s.lim.IdleTimeout; d > 0 {
		due := c.lastRead.Add(d)
		if c.head < len(c.q) || c.waiting > 0 || len(c.out) > 0 {
			due = now.Add(d) // owed a reply: not idle, whatever it sends
		} else if !now.Before(due) {
			c.idleTimedOut()
			return
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	if !next.IsZero() {
		c.timer = s.loop.CallAt(next, c.checkDeadlines)
	}
}

// idleTimedOut closes a connection quiet for idle_timeout. Loop only.
func (c *clientConn) idleTimedOut() {
	s := c.s
	s.log.Info("idle timeout: closing", "conn", c.id, "remote", addrString(c.t.RemoteAddr()), "idle_timeout", s.lim.IdleTimeout)
	s.metrics.Cut[cutIdle].Add(1)
	c.stop, c.closing = true, true
	c.t.Close()
}

// lineTimedOut answers a line not finished within line_timeout with "? " and what arrived of
// it, and closes the connection once the replies owed before it are written. Loop only.
func (c *clientConn) lineTimedOut() {
	s := c.s
	s.log.Info("line timeout: closing", "conn", c.id, "remote", addrString(c.t.RemoteAddr()), "line_timeout", s.lim.LineTimeout)
	s.metrics.Cut[cutLineTimeout].Add(1)
	echo := c.dec.Pending()
	c.act(s.core.LineTimeout(echo, c.origin), echo)
	c.dec.Reset()
	c.flushOut()
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// DataReceived implements reactor.Protocol: it answers every complete line, in order, and
// writes the replies of this read in one write.
func (c *clientConn) DataReceived(data []byte) {
	if !c.sent && len(data) > 0 {
		c.firstBytes()
	}
	if c.stop {
		return
	}
	s := c.s
	recv := codec.FromTime(s.recvNow()) // the moment these lines were read
	c.dec.Feed(data)
	for !c.stop {
		line, ok, err := c.dec.Next()
		if err != nil {
			c.act(s.core.TooLong(line, c.origin), line)
			break
		}
		if !ok {
			break
		}
		c.handleLine(line, recv)
	}
	if c.stop {
		c.dec.Reset() // no later line is read: let go of what is held
	} else if c.timer != nil || s.lim.LineTimeout > 0 {
		c.noteRead(data)
	}
	switch {
	case c.dirty: // queued for the end of the pass, its earlier replies with it
	case s.floodPending:
		// The floods of this round's reads wait for its end, and the replies with them, so
		// that each link gets one write per round, not one per client read (flushDirty).
		c.dirty = true
		s.flushAtPassEnd(c)
	default:
		c.flushOut()
	}
}

// noteRead notes when data arrived, for the deadlines: the last read, and the start of a
// line that data leaves unfinished. The timer is moved only when such a line begins and the
// timer would fire after the line's deadline. Loop only.
func (c *clientConn) noteRead(data []byte) {
	if len(data) == 0 {
		return
	}
	s := c.s
	now := s.eventNow()
	c.lastRead = now
	switch {
	case c.sentAT:
	case data[len(data)-1] == '\n':
		c.lineStart = time.Time{}
	case c.lineStart.IsZero() || bytes.IndexByte(data, '\n') >= 0: // a new line begins
		c.lineStart = now
		if d := s.lim.LineTimeout; d > 0 {
			c.armAt(now.Add(d))
		}
	}
}

// EOFReceived implements reactor.Protocol: a last line without "\n" is still a line, and the
// connection stays open until every reply owed is written.
func (c *clientConn) EOFReceived() bool {
	c.eof = true
	c.lineStart = time.Time{} // the last line ends here
	if !c.stop {
		line, err := c.dec.Final()
		switch {
		case err != nil:
			c.act(c.s.core.TooLong(line, c.origin), line)
		case line != nil:
			c.handleLine(line, codec.FromTime(c.s.recvNow()))
		}
	}
	c.dec.Reset()
	if c.s.logInfo && c.sent {
		g := c.s.lg
		g.begin(slog.LevelInfo, "eof")
		g.uint("conn", c.id)
		g.int("owed", len(c.q)-c.head)
		g.end()
	}
	c.flushOut()
	return true
}

// ConnectionLost implements reactor.Protocol.
func (c *clientConn) ConnectionLost(err error) {
	c.lost = true
	if c.rejected {
		return
	}
	c.timer.Cancel()
	c.timer = nil
	s := c.s
	delete(s.clients, c.id)
	s.noteUnsent(c, 0)
	s.metrics.ClientsOpen.Add(-1)
	switch {
	case !c.sent && err != nil:
		s.log.Debug("close without data", "conn", c.id, "remote", addrString(c.t.RemoteAddr()), "err", err)
	case !c.sent:
		s.log.Debug("close without data", "conn", c.id, "remote", addrString(c.t.RemoteAddr()))
	case err != nil:
		s.log.Info("close", "conn", c.id, "err", err)
	case s.logInfo:
		g := s.lg
		g.begin(slog.LevelInfo, "close")
		g.uint("conn", c.id)
		g.end()
	}
	s.checkDrained()
}

// handleLine answers one line (no "\n"; valid only during the call). Loop only.
func (c *clientConn) handleLine(line []byte, recv codec.Time) {
	if c.s.logInfo {
		// Logged with its reply, in one record, if the reply is made now (see reply);
		// else (a WHATSAT waiting, a neighbour's AT line) on its own, before what follows.
		c.inLine = line
		defer c.logIn()
	}
	c.act(c.s.core.Handle(line, recv, c.origin), line)
}

// act does what the core decided about line. Loop only.
func (c *clientConn) act(r Result, line []byte) {
	s := c.s
	switch r.Action {
	case Store:
		if r.Msg.Kind == codec.AT {
			c.sentAT = true // a neighbour's link: exempt from the client deadlines
			s.metrics.PeerUpdates.Add(1)
			if s.logInfo {
				c.logIn() // before the flood it causes
			}
		} else {
			s.metrics.IAMATs.Add(1)
		}
		if r.Reply != nil {
			c.reply(r.Reply)
		}
		s.apply(r.Msg, r.Line, nil)
	case AskPlaces:
		c.whatsat(line, r.Msg)
	case Close:
		s.metrics.Invalid.Add(1)
		tooLong := errors.Is(r.Err, codec.ErrLineTooLong)
		if tooLong {
			s.log.Warn("line too long", "conn", c.id, "max_line", s.lim.MaxLine)
		}
		c.reply(r.Reply)
		c.stop = true
		if !tooLong && s.logInfo {
			g := s.lg
			g.begin(slog.LevelInfo, "invalid")
			g.uint("conn", c.id)
			g.str("why", r.Err.Error())
			g.end()
		}
	case Ignore:
		s.ignored(line, r.Err, "conn", c.id)
	case Abort:
		s.log.Warn("connection aborted", "conn", c.id, "err", r.Err)
		c.stop, c.closing = true, true
		c.t.Abort()
	}
}

// whatsat queues the reply slot of a WHATSAT and asks Places for its body. Loop only.
func (c *clientConn) whatsat(line []byte, m *codec.Message) {
	s := c.s
	r := s.table.Get(m.Client)
	if r == nil {
		c.act(s.core.UnknownClient(line, c.origin), line)
		return
	}
	if c.waiting >= s.lim.MaxPending {
		c.cutOff("max_pending requests waiting", cutMaxPending)
		return
	}
	s.metrics.WHATSATs.Add(1)
	// The AT line held now, copied (a newer record reuses the table's storage); the body is
	// appended when Places answers. Nothing is allocated ahead for it: a slot waiting costs
	// the line's bytes, not the reply's.
	sl := &slot{buf: make([]byte, 0, len(r.Line)+1)}
	sl.buf = append(sl.buf, r.Line...)
	sl.buf = append(sl.buf, '\n')
	c.q = append(c.q, sl)
	c.qBytes += len(sl.buf)
	c.waiting++
	if s.logInfo {
		c.logIn() // before the records of the Places call
	}
	if s.waiting >= s.lim.MaxWaiting {
		s.placesBusy(c, sl)
		return
	}
	s.waiting++
	s.metrics.Waiting.Store(int64(s.waiting))
	s.askPlaces(c, sl, r, m)
}

// logIn logs the line being handled on its own if no reply logged it. Loop only.
func (c *clientConn) logIn() {
	if c.inLine == nil {
		return
	}
	g := c.s.lg
	g.begin(slog.LevelInfo, "in")
	g.uint("conn", c.id)
	g.line("in", c.inLine)
	g.end()
	c.inLine = nil
}

// reply queues a finished reply (copied) behind the replies owed before it.
func (c *clientConn) reply(b []byte) {
	if c.s.logInfo {
		g := c.s.lg
		if c.inLine != nil {
			g.begin(slog.LevelInfo, "reply")
			g.uint("conn", c.id)
			g.line("in", c.inLine)
			c.inLine = nil
		} else {
			g.begin(slog.LevelInfo, "out")
			g.uint("conn", c.id)
		}
		g.line("out", b[:len(b)-1])
		g.end()
	}
	if c.head == len(c.q) {
		c.out = append(c.out, b...)
		return
	}
	sl := &slot{buf: append([]byte(nil), b...), ready: true}
	c.q = append(c.q, sl)
	c.qBytes += len(b)
}

// whatsatDone is called when a WHATSAT's slot has its reply: the replies now ready are
// written at the end of the loop's pass, with those that other completions of the pass made
// ready, in one write. Loop only.
func (c *clientConn) whatsatDone(sl *slot) {
	c.slotReady(sl)
	if !c.dirty {
		c.dirty = true
		c.s.flushAtPassEnd(c)
	}
}

// slotReady marks a WHATSAT's slot ready and moves the replies ready at the front of the
// queue to the output, to be written by the caller (flushOut). Loop only.
func (c *clientConn) slotReady(sl *slot) {
	sl.ready = true
	c.waiting--
	// The slot was counted with its AT line and "\n"; the body has come since.
	c.qBytes += len(sl.body)
	if c.s.logInfo {
		first := sl.buf
		for i, b := range first {
			if b == '\n' {
				first = first[:i]
				break
			}
		}
		g := c.s.lg
		g.begin(slog.LevelInfo, "out")
		g.uint("conn", c.id)
		g.line("out", first)
		g.int("bytes", len(sl.buf)+len(sl.body))
		g.end()
	}
	for c.head < len(c.q) && c.q[c.head].ready {
		sl := c.q[c.head]
		c.out = append(c.out, sl.buf...)
		c.out = append(c.out, sl.body...)
		c.qBytes -= len(sl.buf) + len(sl.body)
		c.q[c.head] = nil
		c.head++
	}
	c.compact()
}

// compact empties or slides down the queue once its front has moved far enough: O(1)
// amortised per reply.
func (c *clientConn) compact() {
	if c.head == len(c.q) {
		c.q, c.head = c.q[:0], 0
		return
	}
	if c.head >= 32 && c.head >= len(c.q)/2 {
		// A client that always has a WHATSAT waiting never empties its queue: slide it down.
		n := copy(c.q, c.q[c.head:])
		clear(c.q[n:])
		c.q, c.head = c.q[:n], 0
	}
}

// flushOut writes the floods gathered during this read (Server.flushLinks), then the
// gathered replies in one write, enforces max_unsent, and closes the connection if it is
// finished. Floods first: a client that has read its reply finds its update at the
// neighbours.
func (c *clientConn) flushOut() {
	c.s.flushLinks()
	if c.closing || c.lost {
		c.out = c.out[:0]
		return
	}
	if len(c.out) > 0 {
		c.t.Write(c.out)
		c.out = c.out[:0]
		if cap(c.out) > 64<<10 {
			c.out = nil
		}
	}
	unsent := c.t.WriteBufferSize() + c.qBytes
	if unsent > c.s.lim.MaxUnsent {
		c.cutOff("max_unsent reply bytes not read", cutMaxUnsent)
		return
	}
	c.s.noteUnsent(c, unsent)
	c.maybeFinish()
}

// noteUnsent records that client c has unsent reply bytes (its transport's buffer and the
// replies queued behind a WHATSAT), in the server's total; past max_unsent_total the
// total is checked at the end of the loop's pass (checkUnsent). O(1). Loop only.
func (s *Server) noteUnsent(c *clientConn, unsent int) {
	s.unsentTotal += unsent - c.unsent
	c.unsent = unsent
	if s.unsentTotal > int(s.lim.MaxUnsentTotal) && !s.unsentCheck {
		s.unsentCheck = true
		s.loop.CallAtPassEnd(s.checkUnsentFn)
	}
}

// checkUnsent enforces max_unsent_total. The total noteUnsent keeps counts each client's
// bytes as they were at its last flush, and a transport's buffer drains without telling
// it, so the total can only be too high: it is counted again, exactly, from every client
// (O(clients), a few microseconds a thousand, and at most once a pass). While it is past
// the limit, the client with the most unsent bytes is cut off (aborted): the one that
// reads least, which a limit per client would cut first too. Loop only.
func (s *Server) checkUnsent() {
	s.unsentCheck = false
	total := 0
	for _, c := range s.clients {
		if c.unsent != 0 || !c.closing { // a client cut off is out of the count
			c.unsent = c.t.WriteBufferSize() + c.qBytes
			total += c.unsent
		}
	}
	s.unsentTotal = total
	for s.unsentTotal > int(s.lim.MaxUnsentTotal) {
		var worst *clientConn
		for _, c := range s.clients {
			if !c.closing && (worst == nil || c.unsent > worst.unsent) {
				worst = c
			}
		}
		if worst == nil {
			return
		}
		worst.cutOff("max_unsent_total reply bytes not read, the most of any client", cutMaxUnsentTotal)
	}
}

// cutOff drops a client that exceeds a limit (reason: a CutReasons index). For max_pending
// (the client reads, it just asks too much at once) the replies already made in order are
// written first and the connection is closed once they are out; for max_unsent and
// max_unsent_total (it does not read) it is aborted.
func (c *clientConn) cutOff(why string, reason int) {
	if c.closing || c.lost {
		return
	}
	s := c.s
	c.stop, c.closing = true, true
	s.noteUnsent(c, 0) // aborted, or closing with what it has: left out of the total
	s.metrics.ClientsCut.Add(1)
	s.metrics.Cut[reason].Add(1)
	flush := reason == cutMaxPending
	s.log.Warn("client cut off", "conn", c.id, "remote", addrString(c.t.RemoteAddr()), "why", why,
		"unsent", c.t.WriteBufferSize()+c.qBytes+len(c.out), "waiting", c.waiting)
	if flush {
		if len(c.out) > 0 {
			s.flushLinks() // floods before replies, as in flushOut
			c.t.Write(c.out)
		}
		c.out = c.out[:0]
		c.t.Close()
		return
	}
	c.out = c.out[:0]
	c.t.Abort()
}

// stopReading is the server's stop for this connection: no later line is read (what the
// client sends is discarded), and the connection closes once the replies owed are written.
func (c *clientConn) stopReading() {
	c.stop = true
	c.dec.Reset()
	c.maybeFinish()
}

// maybeFinish closes the connection once nothing more will be written to it: after an invalid
// line, after the client's half-close, or when the server stops, and no reply is owed.
func (c *clientConn) maybeFinish() {
	if c.closing || c.lost {
		return
	}
	if (c.stop || c.eof || c.s.stopping) && c.head == len(c.q) && len(c.out) == 0 {
		c.closing = true
		c.t.Close()
	}
}
