package herd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/reactor"
)

// connState is where a link connection is in its life:
//
//	dialled:  connHello (our HELLO sent, waiting for theirs) -> connUp
//	accepted: connHello (waiting for their HELLO) [-> connParked (ours withheld while our own
//	          dial, which would be kept, is under way: link.park)] [-> connAuth (ours sent,
//	          waiting for AUTH)] -> connUp
//	any -> connDone (refused, dropped, replaced or closing: input is ignored)
//
// A plain link's connection is up as soon as it is made.
type connState uint8

const (
	connHello connState = iota
	connAuth
	connParked
	connUp
	connDone
)

// linkConn is one TCP connection between this server and a neighbour, dialled (outbound) or
// accepted on the peer port, from its hello to its end. Every method runs on the loop.
type linkConn struct {
	s         *Server
	l         *link // the link: from the dial, or from the neighbour's HELLO
	t         linkTransport
	outbound  bool
	gen       int // the dial it belongs to (outbound)
	state     connState
	pending   bool // counted in Server.pendingHellos
	dec       codec.Decoder
	nonce     []byte // ours, hex
	peerNonce []byte // the dialler's, hex (accepted, with a secret: for its AUTH)
	peerInst  string // the neighbour's instance, from its HELLO
	timer     *reactor.Handle
	paused    bool
	rs        *resync // the resync under way, or nil
	pumpFn    func()  // c.pumpSoon, bound once so that queueing it allocates nothing
}

// newLinkConn returns the Protocol of a link connection: dialled for l's dial number gen, or
// accepted on the peer port (l nil).
func (s *Server) newLinkConn(l *link, gen int) *linkConn {
	c := &linkConn{s: s, l: l, outbound: l != nil, gen: gen}
	c.pumpFn = c.pumpSoon
	return c
}

// dialler returns the name of the server that dialled c.
func (c *linkConn) dialler() string {
	if c.outbound {
		return c.s.name
	}
	return c.l.name
}

// linkTransport is what a link connection needs of its transport: a *reactor.Transport, or
// for a plain-per-message peer a *msgTransport, which sends each line on a connection of
// its own. Loop only.
type linkTransport interface {
	Write(p []byte)
	Close()
	Abort()
	WriteBufferSize() int
	SetWriteBufferLimits(high, low int)
	RemoteAddr() net.Addr
	ID() uint64
}

// ConnectionMade implements reactor.Protocol: a dialled connection says its HELLO, an
// accepted one waits for the neighbour's, both within dial_timeout.
func (c *linkConn) ConnectionMade(t *reactor.Transport) { c.made(t) }

// made is ConnectionMade for a transport of either kind. A plain peer's connection is
// offered to its link at once: it has no hello.
func (c *linkConn) made(t linkTransport) {
	s := c.s
	c.t = t
	c.dec = codec.Decoder{Max: s.linkLineMax}
	s.linkConns[c] = struct{}{}
	s.metrics.LinkConns.Add(1)
	if c.outbound {
		l := c.l
		if c.gen != l.gen || l.stopped || s.stopping || l.fault == LinkCut {
			c.state = connDone
			t.Close()
			return
		}
		if l.plain {
			l.offer(c)
			return
		}
		c.nonce = newNonce()
		h := codec.Hello{Version: codec.LinkVersion, From: []byte(s.name), To: []byte(l.name), Instance: s.instance, Nonce: c.nonce}
		t.Write(codec.AppendHello(nil, &h))
	} else {
		if s.stopping {
			c.state = connDone
			t.Abort()
			return
		}
		if s.pendingHellos >= maxPendingHellos {
			s.log.Warn("link connection refused: too many hellos under way", "remote", addrString(t.RemoteAddr()), "max", maxPendingHellos)
			c.state = connDone
			t.Abort()
			return
		}
		c.pending = true
		s.pendingHellos++
	}
	c.timer = s.loop.CallLater(s.lim.DialTimeout, c.helloTimeout)
}

// helloTimeout ends a connection whose hello did not finish within dial_timeout.
func (c *linkConn) helloTimeout() {
	c.timer = nil
	if c.state == connHello || c.state == connAuth || c.state == connParked {
		c.fail(fmt.Errorf("herd: no hello within %v", c.s.lim.DialTimeout))
	}
}

// DataReceived implements reactor.Protocol: the hello first, then AT lines (through the
// core) and resync lines. Floods caused by AT lines go out at the end, one write per link.
func (c *linkConn) DataReceived(data []byte) {
	if c.state == connDone {
		return
	}
	s := c.s
	recv := codec.FromTime(s.recvNow())
	c.dec.Feed(data)
	for c.state != connDone {
		line, ok, err := c.dec.Next()
		if err != nil && c.state == connUp && c.l.plain {
			c.discard(line, err) // a plain peer's text: that line alone is dropped
			c.dec.SkipLine()
			continue
		}
		if err != nil {
			c.fail(fmt.Errorf("herd: line over %d bytes from the neighbour", s.linkLineMax))
			break
		}
		if !ok {
			break
		}
		switch c.state {
		case connHello:
			c.hello(line)
		case connAuth:
			c.auth(line)
		case connParked:
			c.fail(errors.New("herd: a line before our HELLO"))
		case connUp:
			c.linkLine(line, recv)
		}
	}
	if c.rs != nil {
		c.pump() // what the resync lines read call for, or its end
	}
	s.flushLinks()
}

// EOFReceived implements reactor.Protocol: a link ends with its connection. A plain peer's
// last line without "\n" is still a line.
func (c *linkConn) EOFReceived() bool {
	if c.state == connUp && c.l.plain {
		line, err := c.dec.Final()
		switch {
		case err != nil:
			c.discard(line, err)
		case line != nil:
			c.linkLine(line, codec.FromTime(c.s.recvNow()))
			c.s.flushLinks()
		}
	}
	return false
}

// discard drops a plain peer's line that is not an AT line (an acknowledgement, text
// without "\n", a line over the limit) and counts it: a plain peer's chatter never ends its
// link. line is the line, or the start of one over the limit.
func (c *linkConn) discard(line []byte, why error) {
	c.l.m.Discarded.Add(1)
	if c.s.logDebug {
		c.s.log.Debug("link: discarded line from a plain peer", "peer", c.l.name, "line", string(line), "why", why)
	}
}

// ConnectionLost implements reactor.Protocol.
func (c *linkConn) ConnectionLost(err error) {
	s := c.s
	delete(s.linkConns, c)
	s.metrics.LinkConns.Add(-1)
	c.timer.Cancel()
	c.timer = nil
	c.rs = nil
	if c.pending {
		c.pending = false
		s.pendingHellos--
	}
	l := c.l
	switch {
	case l == nil:
	case l.c == c:
		l.down(err)
	case l.parked == c:
		l.parked = nil
	case c.outbound && c.gen == l.gen && l.dialing && c.state != connDone && l.c != nil:
		// The neighbour closed our dial during the hello because the link is up on its
		// own (it parked ours: link.park): a duplicate, not a failure.
		l.dialing = false
		s.log.Debug("duplicate link closed by the neighbour", "peer", l.name)
	case c.outbound && c.gen == l.gen && l.dialing && c.state != connDone:
		if err == nil {
			err = errors.New("herd: closed during the hello")
		}
		l.dialFailed(err)
	}
	c.state = connDone
	s.checkDrained()
}

// PauseWriting implements reactor.WriteFlowController: the resync waits.
func (c *linkConn) PauseWriting() { c.paused = true }

// ResumeWriting implements reactor.WriteFlowController: the resync goes on.
func (c *linkConn) ResumeWriting() {
	c.paused = false
	if c.rs != nil {
		c.pump()
	}
}

// drop closes c without a word (a duplicate, a replaced or stale connection, or the link's
// abort); input is ignored from now on.
func (c *linkConn) drop() {
	c.state = connDone
	c.rs = nil
	c.t.Abort()
}

// fail ends c for err: the link goes down if c was its connection; a dial goes on with its
// backoff; anything else is logged.
func (c *linkConn) fail(err error) {
	l := c.l
	if l != nil && l.c == c {
		l.abort(err)
		return
	}
	c.drop()
	if c.outbound && c.gen == l.gen && l.dialing {
		l.dialFailed(err)
		return
	}
	peer := "?"
	if l != nil {
		peer = l.name
	}
	c.s.log.Warn("link connection failed", "peer", peer, "remote", addrString(c.t.RemoteAddr()), "err", err)
}

// dropDuplicate closes c, which lost to the link's connection (see link.offer), once what
// was written to it (its HELLO, on an accepted one) is sent, so that the other side sees
// the same two connections and drops the same one.
func (c *linkConn) dropDuplicate() {
	c.state = connDone
	c.rs = nil
	c.t.Close()
}

// refuse ends a hello that cannot go on: it tells the neighbour why in an ERR line, logs it
// and closes the connection once the line is written.
func (c *linkConn) refuse(peer string, why string) {
	s := c.s
	s.metrics.LinkRefusals.Add(1)
	s.log.Warn("link refused", "peer", peer, "remote", addrString(c.t.RemoteAddr()), "why", why)
	c.t.Write(codec.AppendLinkError(nil, why))
	c.state = connDone
	c.t.Close()
	if c.outbound && c.gen == c.l.gen && c.l.dialing {
		c.l.dialing = false
		c.l.failed++
		c.l.m.DialFailures.Add(1)
		c.l.unpark(true)
		c.l.redialLater()
	}
}

// hello handles the neighbour's HELLO: the first line on an accepted connection, the answer
// on a dialled one.
func (c *linkConn) hello(line []byte) {
	s := c.s
	if c.outbound && string(codec.Field(line, 0)) == "ERR" {
		err := fmt.Errorf("herd: %s refused the link: %s", c.l.name, line[min(len(line), 4):])
		s.metrics.LinkRefusals.Add(1)
		c.fail(err)
		return
	}
	h, err := codec.ParseHello(line)
	peer := string(h.From)
	if c.outbound {
		peer = c.l.name
	}
	switch {
	case errors.Is(err, codec.ErrLinkVersion):
		c.refuse(peer, fmt.Sprintf("link protocol version %d is not supported (%s speaks %d)", h.Version, s.name, codec.LinkVersion))
		return
	case err != nil:
		c.refuse(peer, fmt.Sprintf("expected HELLO, got %.64q", line))
		return
	case string(h.To) != s.name:
		c.refuse(peer, fmt.Sprintf("this is %s, not %s", s.name, h.To))
		return
	}
	if c.outbound {
		c.helloAnswer(&h)
		return
	}
	l := s.linkByName[string(h.From)]
	switch {
	case l == nil || l.plain:
		c.refuse(peer, fmt.Sprintf("%s has no neighbour %q that links with a hello", s.name, h.From))
		return
	case l.fault == LinkCut:
		c.refuse(peer, fmt.Sprintf("the link between %s and %s is cut (fault injection)", s.name, h.From))
		return
	case h.Proof != nil:
		c.refuse(peer, "a dialler's HELLO carries no proof")
		return
	}
	c.l = l
	c.peerInst = string(h.Instance)
	c.peerNonce = append(c.peerNonce[:0], h.Nonce...)
	if l.c == nil && l.dialing && s.name < l.name {
		// Both sides are dialling, and ours is the connection both will keep (offer):
		// answering this one would start a resync on a connection about to be closed.
		l.park(c)
		return
	}
	c.answer()
}

// answer sends our HELLO in answer to an accepted connection's, whose dialler's instance and
// nonce c holds; with a secret, the dialler's AUTH comes next.
func (c *linkConn) answer() {
	s, l := c.s, c.l
	c.nonce = newNonce()
	ans := codec.Hello{Version: codec.LinkVersion, From: []byte(s.name), To: []byte(l.name), Instance: s.instance, Nonce: c.nonce}
	if s.secret != nil {
		ans.Proof = s.proof("accept", l.name, s.name, []byte(c.peerInst), s.instance, c.peerNonce, c.nonce)
	}
	c.t.Write(codec.AppendHello(nil, &ans))
	if s.secret != nil {
		c.state = connAuth
		return
	}
	c.ready()
}

// helloAnswer checks the HELLO that answers ours, and with a secret proves ours with AUTH.
func (c *linkConn) helloAnswer(h *codec.Hello) {
	s, l := c.s, c.l
	switch {
	case string(h.From) != l.name:
		c.refuse(l.name, fmt.Sprintf("expected %s at %s, found %s", l.name, l.addr, h.From))
		return
	case s.secret != nil && h.Proof == nil:
		c.refuse(l.name, "no proof in the HELLO: is links.secret set there?")
		return
	case s.secret == nil && h.Proof != nil:
		c.refuse(l.name, fmt.Sprintf("%s asks for authentication and %s has no links.secret", l.name, s.name))
		return
	}
	if s.secret != nil {
		want := s.proof("accept", s.name, l.name, s.instance, h.Instance, c.nonce, h.Nonce)
		if !hmac.Equal(want, h.Proof) {
			c.refuse(l.name, "authentication failed")
			return
		}
		c.t.Write(codec.AppendAuth(nil, s.proof("dial", s.name, l.name, s.instance, h.Instance, c.nonce, h.Nonce)))
	}
	c.peerInst = string(h.Instance)
	c.ready()
}

// auth checks the dialler's AUTH line, the last of a handshake with a secret.
func (c *linkConn) auth(line []byte) {
	s, l := c.s, c.l
	proof, err := codec.ParseAuth(line)
	if err != nil {
		c.refuse(l.name, fmt.Sprintf("expected AUTH, got %.64q", line))
		return
	}
	want := s.proof("dial", l.name, s.name, []byte(c.peerInst), s.instance, c.peerNonce, c.nonce)
	if !hmac.Equal(want, proof) {
		c.refuse(l.name, "authentication failed")
		return
	}
	c.ready()
}

// ready ends a successful hello: the link takes the connection, or closes it.
func (c *linkConn) ready() {
	s := c.s
	c.timer.Cancel()
	c.timer = nil
	if c.pending {
		c.pending = false
		s.pendingHellos--
	}
	c.l.offer(c)
}

// linkLine handles one line of an up link: resync lines here, AT lines (and anything else)
// through the core. A plain peer's lines all go to the core, and what it ignores is
// discarded.
func (c *linkConn) linkLine(line []byte, recv codec.Time) {
	s, l := c.s, c.l
	if l.plain {
		switch r := s.core.Handle(line, recv, FromPlainLink); r.Action {
		case Store:
			s.metrics.PeerUpdates.Add(1)
			if a := s.apply(r.Msg, r.Line, l); s.logInfo {
				s.linkIn(l, line, a)
			}
		default:
			c.discard(line, r.Err)
		}
		return
	}
	switch string(codec.Field(line, 0)) {
	case "DIGEST", "HAVE", "DONE":
		if err := c.resyncLine(line); err != nil {
			c.fail(err)
		}
		return
	case "ERR":
		c.fail(fmt.Errorf("herd: %s reports: %s", l.name, line[min(len(line), 4):]))
		return
	}
	r := s.core.Handle(line, recv, FromLink)
	switch r.Action {
	case Store:
		s.metrics.PeerUpdates.Add(1)
		if a := s.apply(r.Msg, r.Line, l); s.logInfo {
			s.linkIn(l, line, a)
		}
	case Ignore:
		s.ignored(line, r.Err, "peer", l.name)
	default:
		// A link carries no replies: anything that would answer ends it.
		c.fail(r.Err)
	}
}

// newNonce returns a fresh random nonce, hex.
func newNonce() []byte {
	var b [codec.NonceLen / 2]byte
	rand.Read(b[:])
	return hex.AppendEncode(nil, b[:])
}

// newInstance returns a random instance name for a server's process, hex.
func newInstance() []byte {
	var b [codec.InstanceLen / 2]byte
	rand.Read(b[:])
	return hex.AppendEncode(nil, b[:])
}

// proof returns the hex HMAC-SHA256, under the links' secret, of a handshake between the
// dialler and the acceptor (names, instances and nonces), for one direction: "accept" for
// the acceptor's HELLO, "dial" for the dialler's AUTH, so that neither proof can stand for
// the other. Fresh nonces from both sides make every proof good for one connection only.
func (s *Server) proof(dir, dialler, acceptor string, dInst, aInst, dNonce, aNonce []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	var n [2]byte
	for _, p := range [][]byte{[]byte("herd link 1"), []byte(dir), []byte(dialler), []byte(acceptor), dInst, aInst, dNonce, aNonce} {
		binary.BigEndian.PutUint16(n[:], uint16(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return hex.AppendEncode(nil, m.Sum(nil))
}
