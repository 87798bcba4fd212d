package herd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/herd-project/herd/reactor"
)

// Link output: a resync writes chunks of at most linkChunk bytes, and only while the link's
// write buffer is below its high mark (Server.linkHigh: at most linkHighMax, less where
// max_link_unsent is small), so that a resync never reaches max_link_unsent itself.
const (
	linkChunk   = 64 << 10
	linkHighMax = 256 << 10
)

// maxPendingHellos bounds the connections on the peer port that have not finished their
// hello: more are closed at once. A hello must come within dial_timeout, so a burst of idle
// connections cannot hold a server's descriptors for long either.
const maxPendingHellos = 64

// link is this server's side of the link with one neighbour: at most one connection in use
// (c), dialled by either side, and this side's dialling (backoff, faults). Floods go out on
// c; lines from the neighbour come in on it. All fields are loop-owned.
type link struct {
	s          *Server
	name       string
	plain      bool // the neighbour speaks bare AT lines on its client port (ServerConfig.Plain)
	perMessage bool // and takes one line per connection (ServerConfig.PerMessage): see msgTransport

	addr  string       // where to dial: the neighbour's peer_addr (its addr if plain)
	hosts []string     // the hosts of its addr and peer_addr (names or IPs): its host for AT lines
	ips   []netip.Addr // hosts resolved (at the latest dial for names)
	local bool         // a host is unspecified: loopback counts as the neighbour's host

	c       *linkConn // the connection in use: the link is up while it is set
	dialing bool      // a dial (resolution, connect or hello) is under way
	parked  *linkConn // an accepted connection whose hello waits for our dial (park)
	gen     int       // bumped at every dial, at stop and at a cut: stale dials close themselves
	stopped bool
	upAt    time.Time
	attempt int // redials in a row (the backoff exponent)
	failed  int // dials failed in a row (logged at the first)
	timer   *reactor.Handle
	out     []byte    // floods gathered during this read, and resync chunks
	fault   LinkFault // injected by SetLinkFault
	m       *LinkMetrics
}

// LinkFault is a fault injected into a link (Server.SetLinkFault, Herd.SetLinkFault), so
// that tests can partition a herd without stopping servers, as memberlist's mock transport
// drops messages. It acts on this server's side of the link, whichever side dialled it.
type LinkFault uint8

const (
	// NoFault is a working link. Setting it heals a fault: a cut link is redialled at once,
	// and a link that dropped its output is closed and redialled, so that the resync of
	// its new connection makes up for what was dropped.
	NoFault LinkFault = iota
	// LinkDrops keeps the link up but drops what this server sends on it: floods and
	// resyncs. Lines the neighbour sends on it are still read.
	LinkDrops
	// LinkCut cuts the link's connection (aborted, as if the network failed), refuses the
	// neighbour's connections and does not redial until healed.
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

// dial connects to the neighbour unless the link is up, a dial is under way, or the link is
// cut or stopped. A host name is resolved first, off the loop, with dial_timeout; what it
// resolves to becomes the neighbour's host (originOf).
func (l *link) dial() {
	s := l.s
	if l.stopped || l.dialing || l.c != nil || l.fault == LinkCut || s.stopping {
		return
	}
	l.dialing = true
	l.gen++
	gen := l.gen
	if !hasName(l.hosts) {
		l.connect(gen, []string{l.addr})
		return
	}
	hosts, timeout := l.hosts, s.lim.DialTimeout
	f := reactor.Go(s.loop, func(ctx context.Context) (resolved, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return resolveHosts(ctx, hosts)
	})
	f.AddDoneCallback(func(f *reactor.Future[resolved]) {
		res, err := f.Result()
		if gen != l.gen {
			return
		}
		if len(res.ips) > 0 || res.local {
			l.ips, l.local = res.ips, res.local
			s.rebuildPeerHosts()
		}
		addrs, aerr := dialAddrs(l.addr, res)
		if aerr != nil {
			l.dialFailed(errors.Join(err, aerr))
			return
		}
		l.connect(gen, addrs)
	})
}

// connect dials addrs (IPs and ports) in turn for dial number gen, until one connects.
func (l *link) connect(gen int, addrs []string) {
	s := l.s
	proto := func() reactor.Protocol { return s.newLinkConn(l, gen) }
	if l.perMessage {
		addr := addrs[0]
		proto = func() reactor.Protocol { return newProbe(l, gen, addr) }
	}
	s.loop.Dial(addrs[0], proto, s.lim.DialTimeout, func(err error) {
		switch {
		case gen != l.gen:
		case len(addrs) > 1:
			l.connect(gen, addrs[1:])
		default:
			l.dialFailed(err)
		}
	})
}

// dialFailed ends a dial that did not give a link (connect, hello or refusal) and schedules
// the next. Loop only.
func (l *link) dialFailed(err error) {
	s := l.s
	l.dialing = false
	l.failed++
	l.m.DialFailures.Add(1)
	l.unpark(true)
	if l.failed == 1 {
		s.log.Warn("link dial failed", "peer", l.name, "addr", l.addr, "err", err)
	} else {
		s.log.Debug("link dial failed", "peer", l.name, "addr", l.addr, "err", err, "attempt", l.failed)
	}
	l.redialLater()
}

// redialLater schedules the next dial with exponential backoff and full jitter, unless the
// link is up, dialling, already scheduled, cut or stopped.
func (l *link) redialLater() {
	s := l.s
	if l.stopped || s.stopping || l.timer != nil || l.c != nil || l.dialing || l.fault == LinkCut {
		return
	}
	d := backoff(s.lim.BackoffBase, s.lim.BackoffCap, l.attempt)
	l.attempt++
	l.timer = s.loop.CallLater(d, func() {
		l.timer = nil
		l.dial()
	})
}

// offer is called when connection c has finished its hello: it becomes the link's
// connection, or is closed if the link keeps another. Two connections between the same two
// processes (simultaneous dials) keep the one dialled by the server whose name sorts lower,
// as both sides decide alike; of two dialled by the same side, the newer (the other is
// dying). A connection from another process of the neighbour (it restarted) replaces the
// old one. Loop only.
func (l *link) offer(c *linkConn) {
	s := l.s
	if c.outbound {
		l.dialing = false
		l.failed = 0
	}
	if l.fault == LinkCut || l.stopped || s.stopping {
		c.drop()
		return
	}
	if old := l.c; old != nil && old.peerInst == c.peerInst {
		if keep := min(old.dialler(), c.dialler()); keep != c.dialler() {
			s.log.Info("duplicate link closed", "peer", l.name, "kept", "dialled by "+keep)
			c.dropDuplicate()
			return
		}
	}
	l.adopt(c)
}

// park holds an accepted connection whose neighbour dialled while we were dialling it, and
// whose hello we would answer only to close it: of two connections dialled at once both sides
// keep the one dialled by the lower name (offer), ours. Its HELLO waits unanswered until our
// dial ends: closed if ours comes up, answered (and kept) if ours fails, so that a dial that
// cannot get through never costs the link. Without it both connections would come up, each
// starting a resync, and the neighbour's would be closed with its resync half sent.
func (l *link) park(c *linkConn) {
	if p := l.parked; p != nil {
		p.dropDuplicate()
	}
	c.state = connParked
	l.parked = c
	l.s.metrics.LinkHelloHolds.Add(1)
}

// unpark settles the parked connection, if any, as our dial ends: answered if answer (our
// dial failed) and the link can still take it, closed otherwise.
func (l *link) unpark(answer bool) {
	c, s := l.parked, l.s
	if c == nil {
		return
	}
	l.parked = nil
	if c.state != connParked {
		return
	}
	if answer && l.c == nil && !l.stopped && !s.stopping && l.fault != LinkCut {
		c.state = connHello
		c.answer()
		return
	}
	s.log.Info("duplicate link closed", "peer", l.name, "kept", "dialled by "+s.name)
	c.dropDuplicate()
}

// adopt makes c the link's connection: the link is up (or stays up, on a new connection),
// its backoff is dropped, and a resync starts on c.
func (l *link) adopt(c *linkConn) {
	s := l.s
	old := l.c
	l.c = c
	l.unpark(false)
	c.state = connUp
	l.timer.Cancel()
	l.timer = nil
	l.out = l.out[:0]
	l.upAt = s.loop.Time()
	if old != nil {
		s.log.Info("link replaced", "peer", l.name, "by", "a connection dialled by "+c.dialler())
		old.drop()
	} else {
		s.metrics.LinksUp.Add(1)
		s.metrics.LinkUps.Add(1)
		l.m.Up.Store(true)
		l.m.Ups.Add(1)
	}
	c.t.SetWriteBufferLimits(s.linkHigh, s.linkHigh/4)
	s.log.Info("link up", "peer", l.name, "remote", addrString(c.t.RemoteAddr()), "dialled_by", c.dialler(), "records", s.table.Len())
	c.startResync()
}

// down takes the link down after its connection c ended (or was dropped): no more floods
// are queued on it, and it is redialled unless a dial is under way.
func (l *link) down(err error) {
	s := l.s
	l.c = nil
	l.out = l.out[:0]
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
}

// stop ends the link for good: no more dials. An up link's write side is shut once its
// output is written (reactor.Transport.WriteEOF), and the neighbour's lines are still read
// and applied (not flooded) until it closes too, so that a flood it sent as we stopped is
// not lost; a plain peer's link, which has no end of its own, is closed.
func (l *link) stop() {
	l.stopped = true
	l.gen++
	l.dialing = false
	l.unpark(false)
	l.timer.Cancel()
	l.timer = nil
	if c := l.c; c != nil {
		l.flush()
		if l.c != c {
			return
		}
		if t, ok := c.t.(*reactor.Transport); ok && !l.plain {
			c.rs = nil
			t.WriteEOF()
			return
		}
		c.state = connDone
		c.t.Close()
	}
}

// flush writes the gathered output in one write and takes the link down if its unsent bytes
// pass max_link_unsent (the neighbour does not read: it is redialled, and the resync makes up
// for what was dropped). The transport reports a failed write later, in ConnectionLost.
func (l *link) flush() {
	c := l.c
	if c == nil || len(l.out) == 0 {
		return
	}
	if l.fault == LinkDrops {
		l.out = l.out[:0]
		return
	}
	c.t.Write(l.out)
	l.out = l.out[:0]
	if cap(l.out) > 1<<20 {
		l.out = nil
	}
	if n := c.t.WriteBufferSize(); n > l.s.lim.MaxLinkUnsent {
		s := l.s
		s.metrics.LinkOverflows.Add(1)
		s.log.Warn("link over its output limit: closing it", "peer", l.name, "unsent", n, "max_link_unsent", s.lim.MaxLinkUnsent)
		l.abort(nil)
	}
}

// abort takes the link down at once and aborts its connection (its ConnectionLost, which
// comes later, finds it no longer the link's).
func (l *link) abort(err error) {
	c := l.c
	l.down(err)
	c.drop()
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
		l.unpark(false)
		if l.c != nil {
			l.abort(nil)
		}
	case was == LinkCut:
		l.attempt = 0
		l.dial()
	case was == LinkDrops && f == NoFault && l.c != nil:
		// The neighbour missed what was dropped: a new connection resyncs.
		l.abort(nil)
		l.attempt = 0
		l.timer.Cancel()
		l.timer = nil
		l.dial()
	}
}

// resolved is what resolveHosts found.
type resolved struct {
	ips    []netip.Addr
	local  bool // a host is unspecified: loopback counts
	byHost map[string][]netip.Addr
}

// resolveHosts resolves hosts (IPs or names; "" and unspecified IPs mean this host). Any
// goroutine: it blocks on the resolver for names, within ctx.
func resolveHosts(ctx context.Context, hosts []string) (resolved, error) {
	r := resolved{byHost: make(map[string][]netip.Addr, len(hosts))}
	var errs []error
	for _, h := range hosts {
		if unspecified(h) {
			r.local = true
			continue
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			r.ips = append(r.ips, ip.Unmap())
			r.byHost[h] = []netip.Addr{ip.Unmap()}
			continue
		}
		found, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i, f := range found {
			found[i] = f.Unmap()
		}
		r.ips = append(r.ips, found...)
		r.byHost[h] = found
	}
	return r, errors.Join(errs...)
}

// hasName reports whether any of hosts is a name rather than an IP.
func hasName(hosts []string) bool {
	for _, h := range hosts {
		if _, err := netip.ParseAddr(h); err != nil && h != "" {
			return true
		}
	}
	return false
}

// dialAddrs returns addr with its host replaced by each address it resolved to.
func dialAddrs(addr string, r resolved) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{addr}, nil
	}
	ips := r.byHost[host]
	if len(ips) == 0 {
		return nil, fmt.Errorf("herd: %s resolves to no address", host)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip.String(), port)
	}
	return out, nil
}
