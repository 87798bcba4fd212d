package herd

import (
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/reactor"
)

// Link write-buffer marks: a resync is sent in chunks and waits for the buffer to drain below
// the low mark once it has passed the high one, so a big table never piles up in memory.
const (
	linkHigh  = 256 << 10
	linkLow   = 64 << 10
	linkChunk = 64 << 10
)

// link is this server's connection to one neighbour, which it dials itself. Floods go out on
// links; a neighbour's own link to this server arrives as an ordinary client connection whose
// AT lines are accepted because they come from a neighbour's host. All fields are loop-owned.
type link struct {
	s      *Server
	name   string
	addr   string
	origin Origin // of the lines the neighbour sends back: FromLink

	t       *reactor.Transport
	gen     int // bumped at every dial and at stop: a late ConnectionMade of an old dial closes itself
	up      bool
	dialing bool
	stopped bool
	paused  bool
	upAt    time.Time
	attempt int
	failed  int // dials failed in a row (logged at the first)
	timer   *reactor.Handle
	out     []byte    // flood lines gathered during this pass
	resync  []*Record // records still to send since the link came up
	fault   LinkFault // injected by SetLinkFault
	m       *LinkMetrics
}

// LinkFault is a fault injected into a link (Server.SetLinkFault, Herd.SetLinkFault), so
// that tests can partition a herd without stopping servers, as memberlist's mock transport
// drops messages. It acts on what this server sends on the link it dialled.
type LinkFault uint8

const (
	// NoFault is a working link. Setting it heals a fault: a cut link is redialled at once,
	// and a link that dropped its output resyncs (sends every record, as when it comes up),
	// since the neighbour missed what was dropped.
	NoFault LinkFault = iota
	// LinkDrops keeps the link up but drops what this server sends on it: floods and
	// resyncs. Lines the neighbour sends on it are still read.
	LinkDrops
	// LinkCut cuts the link's connection (aborted, as if the network failed) and refuses to
	// redial until healed.
	LinkCut
)

// String returns "none", "drops" or "cut".
func (f LinkFault) String() string {
	switch f {
	case LinkDrops:
		return "drops"
	case LinkCut:
		return "cut"
	}
	return "none"
}

// dial connects to the neighbour unless it is connecting, connected (until the connection's
// ConnectionLost, even once aborted), cut or stopped.
func (l *link) dial() {
	s := l.s
	if l.stopped || l.dialing || l.t != nil || l.fault == LinkCut || s.stopping {
		return
	}
	l.dialing = true
	l.gen++
	gen := l.gen
	s.loop.Dial(l.addr, func() reactor.Protocol { return &linkProto{l: l, gen: gen} }, s.lim.DialTimeout, func(err error) {
		if gen != l.gen {
			return
		}
		l.dialing = false
		l.failed++
		l.m.DialFailures.Add(1)
		if l.failed == 1 {
			s.log.Warn("link dial failed", "peer", l.name, "addr", l.addr, "err", err)
		} else {
			s.log.Debug("link dial failed", "peer", l.name, "addr", l.addr, "err", err, "attempt", l.failed)
		}
		l.redialLater()
	})
}

// redialLater schedules the next dial with exponential backoff and full jitter.
func (l *link) redialLater() {
	s := l.s
	if l.stopped || s.stopping || l.timer != nil || l.fault == LinkCut {
		return
	}
	d := backoff(s.lim.BackoffBase, s.lim.BackoffCap, l.attempt)
	l.attempt++
	l.timer = s.loop.CallLater(d, func() {
		l.timer = nil
		l.dial()
	})
}

// stop ends the link for good: no more dials; an up link is closed once its output is written.
func (l *link) stop() {
	l.stopped = true
	l.gen++
	l.timer.Cancel()
	l.timer = nil
	if l.up {
		l.flush()
		l.t.Close()
	}
}

// flush writes the gathered output in one write and closes the link if its unsent bytes pass
// the limit (it is redialled, and the resync makes up for what was dropped). The transport
// reports a failed write later, in ConnectionLost, so the link is still up after Write.
func (l *link) flush() {
	if !l.up || len(l.out) == 0 {
		return
	}
	if l.fault == LinkDrops {
		l.out = l.out[:0]
		return
	}
	l.t.Write(l.out)
	l.out = l.out[:0]
	if cap(l.out) > 1<<20 {
		l.out = nil
	}
	if n := l.t.WriteBufferSize(); n > l.s.lim.MaxLinkUnsent {
		s := l.s
		s.metrics.LinkOverflows.Add(1)
		s.log.Warn("link over its output limit: closing it", "peer", l.name, "unsent", n, "max_link_unsent", s.lim.MaxLinkUnsent)
		l.abort()
	}
}

// abort takes the link down at once: no more floods or resync chunks go to its connection,
// which is aborted (its ConnectionLost, which may come later, redials unless the link is
// cut, and until then no dial starts, since l.t is still set).
func (l *link) abort() {
	l.up, l.resync = false, nil
	l.out = l.out[:0]
	l.t.Abort()
}

// setFault injects fault f, or heals the link with NoFault. Loop only.
func (l *link) setFault(f LinkFault) {
	was := l.fault
	l.fault = f
	l.s.log.Warn("link fault", "peer", l.name, "fault", f, "was", was)
	switch {
	case f == LinkCut:
		l.timer.Cancel()
		l.timer = nil
		l.gen++ // a dial under way closes its connection when it comes
		l.dialing = false
		if l.up {
			l.abort()
		}
	case was == LinkCut:
		l.attempt = 0
		l.dial() // unless the cut connection's ConnectionLost is still to come: it redials
	case was == LinkDrops && f == NoFault && l.up:
		l.startResync() // the neighbour missed what was dropped
	}
}

// startResync sends every record the table holds, in chunks (continueResync).
func (l *link) startResync() {
	s := l.s
	l.resync = make([]*Record, 0, s.table.Len())
	s.table.Range(func(r *Record) bool {
		l.resync = append(l.resync, r)
		return true
	})
	l.continueResync()
}

// continueResync sends the next chunks of the resync until it is done or the link's write
// buffer is above its high mark (ResumeWriting continues it).
func (l *link) continueResync() {
	for l.up && !l.paused && len(l.resync) > 0 {
		i := 0
		for ; i < len(l.resync) && len(l.out) < linkChunk; i++ {
			l.out = append(l.out, l.resync[i].Line...)
			l.out = append(l.out, '\n')
		}
		clear(l.resync[:i])
		l.resync = l.resync[i:]
		l.m.ResyncSent.Add(uint64(i))
		l.flush()
	}
	if len(l.resync) == 0 {
		l.resync = nil
	}
}

// linkProto is the Protocol of one dialled connection of a link.
type linkProto struct {
	l    *link
	gen  int
	dead bool          // a stale connection: closed at once, ignored
	dec  codec.Decoder // frames what the neighbour sends back
}

func (p *linkProto) ConnectionMade(t *reactor.Transport) {
	l, s := p.l, p.l.s
	if p.gen != l.gen || l.stopped || s.stopping {
		p.dead = true
		t.Close()
		return
	}
	p.dec = codec.Decoder{Max: s.lim.MaxLine, AT: true}
	l.dialing, l.failed = false, 0
	l.t, l.up, l.paused = t, true, false
	l.upAt = s.loop.Time()
	t.SetWriteBufferLimits(linkHigh, linkLow)
	s.metrics.LinksUp.Add(1)
	s.metrics.LinkUps.Add(1)
	l.m.Up.Store(true)
	l.m.Ups.Add(1)
	s.log.Info("link up", "peer", l.name, "addr", l.addr, "records", s.table.Len())
	l.startResync()
}

// DataReceived applies AT lines a neighbour sends back on this link (a herd mixing in
// servers that answer on the connection they were dialled on); the core decides what
// else is ignored and what aborts the link.
func (p *linkProto) DataReceived(data []byte) {
	if p.dead {
		return
	}
	s := p.l.s
	recv := codec.FromTime(s.now())
	p.dec.Feed(data)
	for {
		line, ok, err := p.dec.Next()
		if err != nil {
			p.act(s.core.TooLong(line, p.l.origin), line)
			return
		}
		if !ok || !p.act(s.core.Handle(line, recv, p.l.origin), line) {
			return
		}
	}
}

// act does what the core decided about a line from the neighbour and reports whether the
// link reads on. Loop only.
func (p *linkProto) act(r Result, line []byte) bool {
	l, s := p.l, p.l.s
	switch r.Action {
	case Store:
		s.metrics.PeerUpdates.Add(1)
		s.apply(r.Msg, r.Line)
	case Ignore:
		s.log.Debug("link: ignored line from peer", "peer", l.name, "line", string(line), "why", r.Err)
	default:
		// Abort, and anything that would answer on a link: a link carries no replies.
		s.log.Warn("link: closing it", "peer", l.name, "err", r.Err)
		l.t.Abort() // ConnectionLost takes the link down and redials
		return false
	}
	return true
}

func (p *linkProto) EOFReceived() bool { return false }

func (p *linkProto) ConnectionLost(err error) {
	if p.dead {
		return
	}
	l, s := p.l, p.l.s
	l.up, l.t, l.paused = false, nil, false
	l.out, l.resync = l.out[:0], nil
	s.metrics.LinksUp.Add(-1)
	l.m.Up.Store(false)
	if s.loop.Time().Sub(l.upAt) > s.lim.BackoffCap {
		l.attempt = 0 // it was up a good while: the next failure starts the backoff afresh
	}
	if err != nil {
		s.log.Warn("link down", "peer", l.name, "err", err)
	} else {
		s.log.Info("link down", "peer", l.name)
	}
	l.redialLater()
	s.checkDrained()
}

// PauseWriting implements reactor.WriteFlowController.
func (p *linkProto) PauseWriting() {
	if !p.dead {
		p.l.paused = true
	}
}

// ResumeWriting implements reactor.WriteFlowController.
func (p *linkProto) ResumeWriting() {
	if p.dead {
		return
	}
	p.l.paused = false
	if len(p.l.resync) > 0 {
		p.l.continueResync()
	}
}
