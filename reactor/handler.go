package reactor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// handler adapts gnet's callbacks to the loop.
type handler struct {
	gnet.BuiltinEventEngine
	l       *Loop
	bootErr chan error
	eng     gnet.Engine
	ticked  bool
}

// OnBoot runs on gnet's Run goroutine before the loop exists: silence gnet's own listener
// before its acceptor polls it (see gnetgaps.go, gap 4).
func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.eng = eng
	h.l.eng = eng
	if err := silenceGnetListener(eng); err != nil {
		h.bootErr <- fmt.Errorf("reactor: start: %w", err)
		return gnet.Shutdown
	}
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine, once the loop runs: enrol the waker there, since
// Engine.Register needs the loop to exist and must not be awaited on it.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	if h.ticked {
		return time.Hour, gnet.None
	}
	h.ticked = true
	if err := h.l.registerWaker(h.eng); err != nil {
		h.bootErr <- fmt.Errorf("reactor: start: %w", err)
		return time.Hour, gnet.Shutdown
	}
	return time.Hour, gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	l := h.l
	l.evSeq++
	var f ProtocolFactory
	outbound := false
	var enrolled *enrollTag
	switch tag := c.Context().(type) {
	case *wakerTag:
		l.wakerOpened(c)
		return nil, gnet.None
	case *enrollTag:
		tag.arrived(l)
		enrolled = tag
		f = tag.factory
		outbound = tag.outbound
	}
	// Connections come only once the waker has opened (the acceptors and Dial wait for the
	// loop to start), so a pass can run their ConnectionLost; one without a tag (gnet's own
	// listener accepts nothing) or one that arrives at a stopping loop is closed at once.
	if f == nil || l.stopping || l.wakeConn == nil {
		return nil, gnet.Close
	}
	l.nextID++
	t := &Transport{
		l:        l,
		id:       l.nextID,
		c:        c,
		high:     defaultHigh,
		low:      defaultLow,
		outbound: outbound,
		tag:      enrolled,
		dfd:      -1,
	}
	if a := c.LocalAddr(); a != nil {
		t.local = copyAddr(a)
	}
	if a := c.RemoteAddr(); a != nil {
		t.remote = copyAddr(a)
	}
	c.SetContext(t)
	l.conns[t.id] = t
	l.cur = t
	ok := l.run("protocol factory", func() { t.proto = f() })
	if ok && t.proto != nil {
		t.fc, _ = t.proto.(WriteFlowController)
		ok = l.run("ConnectionMade", func() { t.proto.ConnectionMade(t) })
	}
	l.cur = nil
	if !ok || t.proto == nil || t.state == stClosed {
		if !ok || t.proto == nil {
			t.lostErr = errors.New("reactor: protocol setup failed")
		}
		return nil, gnet.Close
	}
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	h.l.evSeq++
	switch x := c.Context().(type) {
	case *Transport:
		return h.l.traffic(x, c)
	case *wakerTag:
		_, _ = c.Discard(-1) // everything: wake bytes carry no data
		return h.l.pass()
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	l := h.l
	l.evSeq++
	switch x := c.Context().(type) {
	case *Transport:
		l.connClosed(x, c, err)
	case *wakerTag:
		l.wakerClosed(err)
	}
	return gnet.None
}

func copyAddr(a net.Addr) net.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		c := *v
		c.IP = append(net.IP(nil), v.IP...)
		return &c
	default:
		return fakeAddr{network: a.Network(), s: a.String()}
	}
}

type fakeAddr struct{ network, s string }

func (a fakeAddr) Network() string { return a.network }
func (a fakeAddr) String() string  { return a.s }

// isEOF reports whether gnet closed the connection because read returned 0.
func isEOF(err error) bool { return err != nil && errors.Is(err, io.EOF) }
