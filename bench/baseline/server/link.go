package server

import (
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd"
)

// link is the persistent connection to one neighbour, served by its own goroutine (and one
// more that reads the connection while it is up). Updates are queued under Server.mu, so a
// resync and the floods that follow it go out in the order the table changed.
type link struct {
	s      *Server
	peer   string
	origin herd.Origin   // of the lines the neighbour sends back: herd.FromLink
	wake   chan struct{} // capacity 1: the queue has something, or the link must go down

	// Guarded by s.mu.
	up      bool
	queue   []byte
	overrun bool // the queue passed MaxLinkUnsent: close and redial (the resync makes up)

	connMu sync.Mutex
	conn   net.Conn
}

// enqueueLocked queues one AT line (without "\n") if the link is up. Called with s.mu held.
func (l *link) enqueueLocked(line []byte) {
	if !l.up || l.overrun {
		return
	}
	if max := l.s.limits.MaxLinkUnsent; max > 0 && len(l.queue)+len(line)+1 > max {
		l.overrun = true
		l.queue = l.queue[:0]
	} else {
		l.queue = append(l.queue, line...)
		l.queue = append(l.queue, '\n')
	}
	l.notify()
}

func (l *link) notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// closeConn closes the current connection, if any; the link goroutine then redials (or stops
// when the server is closing).
func (l *link) closeConn() {
	l.connMu.Lock()
	if l.conn != nil {
		l.conn.Close()
	}
	l.connMu.Unlock()
	l.notify()
}

// run dials the neighbour, keeps the link up, and redials with exponential backoff and jitter
// after a failure, until the server closes.
func (l *link) run() {
	s := l.s
	defer s.wg.Done()
	base, limit := s.limits.BackoffBase, s.limits.BackoffCap
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if limit < base {
		limit = base
	}
	backoff := base
	d := net.Dialer{Timeout: s.limits.DialTimeout}
	for s.ctx.Err() == nil {
		c, err := d.DialContext(s.ctx, "tcp", s.peerAddr(l.peer))
		if err != nil {
			s.log.Info("link dial failed", "peer", l.peer, "err", err)
			// Full jitter: a random wait up to the current bound.
			t := time.NewTimer(rand.N(backoff) + time.Millisecond)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, limit)
			continue
		}
		backoff = base
		l.serve(c)
	}
}

// serve runs one connection of the link: resync, then floods, until it fails.
func (l *link) serve(c net.Conn) {
	s := l.s
	l.connMu.Lock()
	l.conn = c
	l.connMu.Unlock()
	if s.ctx.Err() != nil { // Close ran between the dial and now
		c.Close()
		return
	}
	s.log.Info("link up", "peer", l.peer, "remote", c.RemoteAddr().String())

	s.mu.Lock()
	l.up, l.overrun = true, false
	l.queue = l.queue[:0]
	s.table.Range(func(r *herd.Record) bool {
		l.queue = append(l.queue, r.Line...)
		l.queue = append(l.queue, '\n')
		return true
	})
	s.mu.Unlock()

	// The neighbour sends nothing we must answer, but it may flood AT lines back on this
	// connection; and a read error is how a closed link is noticed while idle.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		l.read(c)
		l.notify()
	}()

	var out []byte
loop:
	for {
		s.mu.Lock()
		overrun := l.overrun
		out, l.queue = l.queue, out[:0]
		s.mu.Unlock()
		if overrun {
			s.log.Warn("link output over its limit, redialling", "peer", l.peer)
			break
		}
		if len(out) > 0 {
			c.SetWriteDeadline(time.Now().Add(s.writeWait))
			if _, err := c.Write(out); err != nil {
				s.log.Info("link write failed", "peer", l.peer, "err", err)
				break
			}
			continue
		}
		select {
		case <-l.wake:
		case <-readDone:
			break loop
		}
		if s.ctx.Err() != nil {
			break
		}
	}
	s.mu.Lock()
	l.up = false
	l.queue = l.queue[:0]
	s.mu.Unlock()
	l.connMu.Lock()
	l.conn = nil
	l.connMu.Unlock()
	c.Close()
	<-readDone
	s.log.Info("link down", "peer", l.peer)
}

// read applies AT lines the neighbour sends on the link, until the connection fails or the
// core says to drop it (a line over the limit).
func (l *link) read(c net.Conn) {
	s := l.s
	core := s.newCore()
	dec := codec.Decoder{Max: s.limits.MaxLine, AT: true}
	buf := make([]byte, readSize)
	for {
		n, err := c.Read(buf)
		recv := codec.FromTime(s.now())
		dec.Feed(buf[:n])
		for {
			line, ok, derr := dec.Next()
			if derr != nil {
				l.act(core.TooLong(line, l.origin))
				return
			}
			if !ok {
				break
			}
			if !l.act(core.Handle(line, recv, l.origin)) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// act does what the core decided about a line from the neighbour and reports whether the
// link reads on: a link carries no replies, so anything but Store and Ignore ends it.
func (l *link) act(r herd.Result) bool {
	switch r.Action {
	case herd.Store:
		l.s.apply(r.Msg, r.Line)
	case herd.Ignore:
	default:
		l.s.log.Info("link: closing it", "peer", l.peer, "err", r.Err)
		return false
	}
	return true
}
