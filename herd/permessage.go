package herd

import (
	"bytes"
	"net"
	"time"

	"github.com/herd-project/herd/reactor"
)

// A plain-per-message peer (link = "plain-per-message") is a server of the seed's design that
// reads one line from a connection and closes it, as the seed's prototype opens a connection
// for each message it floods. Over one persistent connection such a server keeps the first
// line alone. So each line for it goes out on a connection of its own.
//
// The link does not know: its connection (a linkConn, as for any plain peer) writes to a
// msgTransport as to a socket, and gets the same flow control and limits. The transport
// queues the lines written to it, in order, and sends each on a connection of its own, with
// at most msgConns of them open (or being dialled) at once: the resync and the floods go
// out at the pace the peer takes them, PauseWriting and ResumeWriting pace the resync, and
// the queue counts as the link's unsent bytes, so a peer that cannot keep up passes
// max_link_unsent and is redialled as any link is. Each message connection writes its line,
// shuts its write side (a server that reads lines until the end of its stream sees that
// end), reads and discards what the peer sends back (acknowledgements, with or without
// "\n", counted in LinkMetrics.Discarded) until the peer closes or msgWait has passed, and
// closes.
//
// The link is up once a connection to the peer is made (the first one, the probe, then
// carries the first line of the resync), and it goes down with the first message connection
// that fails (refused, timed out, reset: LinkMetrics.SendFailures): its lines may be lost,
// and the peer may have restarted with nothing. The queue is dropped, the link is redialled
// with the usual backoff, and the resync of its next connection sends every record again.
// Connections still open when it goes down end on their own.

// msgConns is the most connections open or being dialled at once toward a plain-per-message
// peer. A seed-style server handles each in a task of its own; eight keep one flood from
// waiting for the round trip of the one before without flooding the peer's accept queue.
const msgConns = 8

// msgWait bounds how long a message connection stays open once its line is written, for the
// peer to read it and close. A peer that reads its one line and closes takes a round trip;
// one that neither closes nor sends anything holds a connection (of msgConns) this long.
const msgWait = 500 * time.Millisecond

// msgTransport is the transport of a link connection to a plain-per-message peer. Loop only.
type msgTransport struct {
	s      *Server
	l      *link
	c      *linkConn // its protocol
	id     uint64    // the probe's transport ID, unique among the loop's
	addr   string    // where the probe connected: every message connection dials it
	remote net.Addr

	queue   []byte // the lines waiting for a connection, each with its "\n"; queue[head:] live
	head    int
	lines   int        // lines in the queue
	sending int        // bytes of the lines on connections that have not ended
	dialing int        // message connections being dialled: each takes a line when made
	open    int        // message connections made and not ended
	waiting *msgConn   // a connection made with no line for it yet (the probe, at first)
	conns   []*msgConn // the open ones, for Abort

	high, low int
	paused    bool
	closing   bool // Close: the lines queued go out, then the transport is lost
	lost      bool // ConnectionLost is scheduled or has run: nothing more is sent
}

// msgConn is one message connection: the probe that brings a link up, or one dialled for a
// queued line. Every method runs on the loop.
type msgConn struct {
	mt    *msgTransport // nil for a probe until its ConnectionMade
	probe *probe
	t     *reactor.Transport
	line  []byte // the line it carries, with its "\n"; nil if none
	wait  *reactor.Handle
	tail  bool // bytes received since the last "\n": a reply without one, discarded at the end
}

// probe is what a probe connection knows of its dial: its link and dial number, and the
// address it dialled.
type probe struct {
	l    *link
	gen  int
	addr string
}

// newProbe returns the protocol of the connection that dial number gen of l (to a
// plain-per-message peer) makes to addr.
func newProbe(l *link, gen int, addr string) *msgConn {
	return &msgConn{probe: &probe{l: l, gen: gen, addr: addr}}
}

// ConnectionMade implements reactor.Protocol. A probe makes the link's transport and offers
// its link connection to the link (as any plain peer's connection is), then carries the
// first line queued, if any; a message connection takes the next queued line.
func (m *msgConn) ConnectionMade(t *reactor.Transport) {
	m.t = t
	if p := m.probe; p != nil {
		l := p.l
		mt := &msgTransport{s: l.s, l: l, id: t.ID(), addr: p.addr, remote: t.RemoteAddr()}
		mt.c = l.s.newLinkConn(l, p.gen)
		m.mt = mt
		mt.open++
		mt.conns = append(mt.conns, m)
		mt.waiting = m
		mt.c.made(mt) // the link is up (its resync queues lines), or the dial was stale
		if mt.waiting == m {
			mt.waiting = nil
			mt.take(m)
		}
		return
	}
	mt := m.mt
	mt.dialing--
	mt.open++
	mt.conns = append(mt.conns, m)
	mt.take(m)
}

// DataReceived implements reactor.Protocol: what the peer sends back is discarded, a line
// counted at each "\n".
func (m *msgConn) DataReceived(data []byte) {
	n := bytes.Count(data, []byte{'\n'})
	m.mt.l.m.Discarded.Add(uint64(n))
	if len(data) > 0 {
		m.tail = data[len(data)-1] != '\n'
	}
}

// EOFReceived implements reactor.Protocol: the peer is done; so is the connection.
func (m *msgConn) EOFReceived() bool { return false }

// ConnectionLost implements reactor.Protocol.
func (m *msgConn) ConnectionLost(err error) {
	m.wait.Cancel()
	m.wait = nil
	if m.tail {
		m.mt.l.m.Discarded.Add(1)
	}
	m.mt.ended(m, err)
}

// take gives m, a connection just made, the next queued line, or closes it if there is none.
func (mt *msgTransport) take(m *msgConn) {
	if mt.lost || mt.lines == 0 {
		m.t.Close()
		return
	}
	i := bytes.IndexByte(mt.queue[mt.head:], '\n')
	m.line = append([]byte(nil), mt.queue[mt.head:mt.head+i+1]...)
	mt.head += i + 1
	mt.lines--
	if mt.head == len(mt.queue) {
		mt.queue, mt.head = mt.queue[:0], 0
	} else if mt.head > len(mt.queue)/2 {
		mt.queue = mt.queue[:copy(mt.queue, mt.queue[mt.head:])]
		mt.head = 0
	}
	mt.sending += len(m.line)
	m.t.Write(m.line)
	m.t.WriteEOF()
	m.wait = mt.s.loop.CallLater(msgWait, m.t.Close)
	mt.kick()
}

// ended is called when a message connection has ended (err nil: cleanly) or its dial failed
// (m nil). A failure takes the link down; otherwise the next line goes out.
func (mt *msgTransport) ended(m *msgConn, err error) {
	if m != nil {
		mt.open--
		mt.sending -= len(m.line)
		for i, o := range mt.conns {
			if o == m {
				mt.conns = append(mt.conns[:i], mt.conns[i+1:]...)
				break
			}
		}
	} else {
		mt.dialing--
	}
	if err != nil && (m == nil || m.line != nil) {
		mt.l.m.SendFailures.Add(1)
		mt.fail(err)
		return
	}
	mt.kick()
	mt.afterWrite()
	if mt.closing && !mt.lost && mt.lines == 0 && mt.open == 0 && mt.dialing == 0 {
		mt.lose(nil)
	}
}

// kick gives the waiting connection a line and dials one connection for each queued line
// that none being dialled will take, up to msgConns.
func (mt *msgTransport) kick() {
	if mt.lost {
		return
	}
	if m := mt.waiting; m != nil && mt.lines > 0 {
		mt.waiting = nil
		mt.take(m)
		return // take kicks again
	}
	s := mt.s
	for mt.lines > mt.dialing && mt.open+mt.dialing < msgConns {
		mt.dialing++
		s.loop.Dial(mt.addr, func() reactor.Protocol { return &msgConn{mt: mt} }, s.lim.DialTimeout, func(err error) {
			mt.ended(nil, err)
		})
	}
}

// fail takes the link down for err: what is queued is dropped, and the connections open end
// on their own.
func (mt *msgTransport) fail(err error) {
	if mt.lost {
		return
	}
	mt.s.log.Warn("plain peer: message not delivered", "peer", mt.l.name, "addr", mt.addr, "err", err)
	mt.lose(err)
}

// lose drops the queue and schedules the link connection's ConnectionLost(err), as a socket's
// transport does.
func (mt *msgTransport) lose(err error) {
	mt.lost = true
	mt.queue, mt.head, mt.lines = nil, 0, 0
	mt.s.loop.CallSoonFunc(func() { mt.c.ConnectionLost(err) })
}

// afterWrite calls PauseWriting once the bytes not yet sent pass the high mark, and
// ResumeWriting once they are down to the low mark, as a socket's transport does.
func (mt *msgTransport) afterWrite() {
	switch n := mt.WriteBufferSize(); {
	case !mt.paused && mt.high > 0 && n > mt.high:
		mt.paused = true
		mt.c.PauseWriting()
	case mt.paused && n <= mt.low && !mt.lost:
		mt.paused = false
		mt.c.ResumeWriting()
	}
}

// Write queues the lines of p (whole lines, each with its "\n", as a link writes them) and
// starts the connections that will carry them. Dropped once closing or lost.
func (mt *msgTransport) Write(p []byte) {
	if mt.lost || mt.closing || len(p) == 0 {
		return
	}
	mt.queue = append(mt.queue, p...)
	mt.lines += bytes.Count(p, []byte{'\n'})
	mt.kick()
	mt.afterWrite()
}

// Close sends what is queued, then ends the transport: ConnectionLost(nil) follows. The
// loop's stop does not wait for message connections still to be dialled (see the package
// doc, "Plain peers").
func (mt *msgTransport) Close() {
	if mt.lost || mt.closing {
		return
	}
	mt.closing = true
	if mt.lines == 0 && mt.open == 0 && mt.dialing == 0 {
		mt.lose(nil)
		return
	}
	if m := mt.waiting; m != nil {
		mt.waiting = nil
		mt.take(m)
	}
}

// Abort drops what is queued and aborts the message connections open now:
// ConnectionLost(nil) follows.
func (mt *msgTransport) Abort() {
	if mt.lost {
		return
	}
	mt.waiting = nil
	for _, m := range append([]*msgConn(nil), mt.conns...) {
		m.t.Abort()
	}
	mt.lose(nil)
}

// WriteBufferSize returns the bytes of the lines not yet sent: queued, and on message
// connections that have not ended.
func (mt *msgTransport) WriteBufferSize() int { return len(mt.queue) - mt.head + mt.sending }

// SetWriteBufferLimits sets the marks of PauseWriting and ResumeWriting.
func (mt *msgTransport) SetWriteBufferLimits(high, low int) {
	mt.high, mt.low = high, min(low, high)
	mt.afterWrite()
}

// RemoteAddr returns the address the probe connected to.
func (mt *msgTransport) RemoteAddr() net.Addr { return mt.remote }

// ID returns the probe's transport ID.
func (mt *msgTransport) ID() uint64 { return mt.id }
