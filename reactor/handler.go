package reactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// wakerTag marks the waker connection in gnet's Conn context.
type wakerTag struct{}

// dialTag marks a connection enrolled by Dial.
type dialTag struct {
	factory ProtocolFactory
	addr    string
	done    atomic.Bool // arrived: counted off Loop.enrolls
}

// handler adapts gnet's callbacks to the loop.
type handler struct {
	gnet.BuiltinEventEngine
	l        *Loop
	bootErr  chan error
	eng      gnet.Engine
	ticked   bool
	internal *net.TCPAddr // the internal listener, when the user has none
}

// OnBoot runs on gnet's Run goroutine before the loop exists: learn the bound addresses.
func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.eng = eng
	h.l.eng = eng
	for _, s := range h.l.listens {
		fd, err := eng.DupListener("tcp", s.address) // gnet files tcp4 and tcp6 under "tcp"

		if err != nil {
			h.bootErr <- fmt.Errorf("reactor: listener %s: %w", s.proto, err)
			return gnet.Shutdown
		}
		s.addr = sockAddr(fd)
		_ = unix.Close(fd)
		if s.addr == nil {
			h.bootErr <- fmt.Errorf("reactor: listener %s: cannot read its bound address", s.proto)
			return gnet.Shutdown
		}
		if s.factory == nil {
			h.internal = s.addr
		}
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
	nc, err := h.l.newWaker()
	if err == nil {
		ctx := gnet.NewContext(gnet.NewNetConnContext(context.Background(), nc), &wakerTag{})
		var ch <-chan gnet.RegisteredResult
		ch, err = h.eng.Register(ctx)
		if err != nil {
			_ = nc.Close()
		} else if r := <-ch; r.Err != nil {
			err = r.Err
		}
	}
	if err != nil {
		h.bootErr <- fmt.Errorf("reactor: start: %w", err)
		return time.Hour, gnet.Shutdown
	}
	return time.Hour, gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	l := h.l
	var f ProtocolFactory
	var local net.Addr
	outbound := false
	switch tag := c.Context().(type) {
	case *wakerTag:
		l.loopGID.Store(goid())
		l.el = c.EventLoop()
		l.wakeConn = c
		l.passTask = passRunnable{l}
		c.SetContext(tag)
		close(l.started)
		l.armed.Store(false)
		l.wake() // run whatever was queued before the loop existed
		return nil, gnet.None
	case *dialTag:
		tag.arrived(l)
		f = tag.factory
		outbound = true
	default:
		// gnet reports the listener's configured address (port 0 stays 0) as LocalAddr.
		local = sockAddr(c.Fd())
		f = l.factoryFor(local)
	}
	if f == nil || l.stopping {
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
		dfd:      -1,
	}
	if local != nil {
		t.local = local
	} else if a := c.LocalAddr(); a != nil {
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
	if !ok || t.proto == nil || t.closeNow {
		if !ok || t.proto == nil {
			t.lostErr = errors.New("reactor: protocol setup failed")
		}
		return nil, gnet.Close
	}
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
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
	switch x := c.Context().(type) {
	case *Transport:
		l.connClosed(x, c, err)
	case *wakerTag:
		if !l.stopping {
			l.log.Error("reactor: waker connection closed; stopping", "err", err)
			return gnet.Shutdown
		}
	}
	return gnet.None
}

func (l *Loop) factoryFor(local net.Addr) ProtocolFactory {
	la, ok := local.(*net.TCPAddr)
	if !ok {
		return nil
	}
	var wild ProtocolFactory
	for _, s := range l.listens {
		if s.addr == nil || s.addr.Port != la.Port {
			continue
		}
		if s.addr.IP.Equal(la.IP) {
			return s.factory
		}
		if s.addr.IP.IsUnspecified() && wild == nil {
			wild = s.factory
		}
	}
	return wild
}

// sockAddr returns the local TCP address of socket fd, or nil.
func sockAddr(fd int) *net.TCPAddr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), a.Addr[:]...)), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), a.Addr[:]...)), Port: a.Port}
	}
	return nil
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
