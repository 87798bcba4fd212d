package herd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
)

// Helpers that play a neighbour on the link protocol, for tests that need one that does what
// a real server would not (never read, read slowly, send bad hellos).

const (
	testInstance = "00000000000000aa"
	testNonce    = "000000000000000000000000000000bb"
)

// peerConn is one link connection of a neighbour played by the test.
type peerConn struct {
	t     testing.TB
	c     net.Conn
	r     *bufio.Reader
	hello codec.Hello // the server's HELLO (its fields copied)
}

// send writes s on the connection.
func (p *peerConn) send(s string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s)); err != nil {
		p.t.Fatalf("peer: write %q: %v", s, err)
	}
}

// line reads one line (without "\n"), within 10s.
func (p *peerConn) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("peer: read: got %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

// until reads lines until one starts with prefix, and returns the lines before it and it.
func (p *peerConn) until(prefix string) (before []string, line string) {
	p.t.Helper()
	for {
		l := p.line()
		if strings.HasPrefix(l, prefix) {
			return before, l
		}
		before = append(before, l)
	}
}

// newReader returns a reader for a link connection.
func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 64<<10) }

// helloLine is the HELLO a neighbour named from sends to reach to, without a proof.
func helloLine(from, to string) string {
	return fmt.Sprintf("HELLO %d %s %s %s %s\n", codec.LinkVersion, from, to, testInstance, testNonce)
}

// parseHelloCopy parses a HELLO line the server sent, copying its fields.
func parseHelloCopy(t testing.TB, line string) codec.Hello {
	t.Helper()
	h, err := codec.ParseHello([]byte(line))
	if err != nil {
		t.Fatalf("the server's HELLO %q: %v", line, err)
	}
	return h
}

// dialAsPeer dials the server's peer port as its neighbour from and sends the hello line
// hello (helloLine(from, server) for a good one). It returns the connection, with nothing read.
func dialAsPeer(t testing.TB, addr net.Addr, hello string) *peerConn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &peerConn{t: t, c: c, r: newReader(c)}
	p.send(hello)
	return p
}

// acceptLoop accepts connections on ln until stop, handing each to fn on the loop's
// goroutine (fn may block on it; the next accept waits). accepted counts them. stop closes
// the listener and every connection accepted; it also runs when the test ends, after the
// server's shutdown (cleanups run last first), so a test whose neighbour never reads defers
// it, or the server's graceful stop would wait for the neighbour to read.
func acceptLoop(t testing.TB, ln net.Listener, fn func(c net.Conn)) (accepted func() int, stop func()) {
	t.Helper()
	var mu sync.Mutex
	var all []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			all = append(all, c)
			mu.Unlock()
			fn(c)
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ln.Close()
			wg.Wait()
			mu.Lock()
			for _, c := range all {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(stop)
	return func() int { mu.Lock(); defer mu.Unlock(); return len(all) }, stop
}

// fakeNeighbour accepts the links the server dials to ln and answers their hellos as name;
// each connection comes out of the channel once its hello is done (see acceptLoop for
// accepted and stop).
func fakeNeighbour(t *testing.T, name string, ln net.Listener) (conns <-chan *peerConn, accepted func() int, stop func()) {
	t.Helper()
	ch := make(chan *peerConn, 64)
	accepted, stop = acceptLoop(t, ln, func(c net.Conn) {
		p := &peerConn{t: t, c: c, r: newReader(c)}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := p.r.ReadString('\n')
		h, herr := codec.ParseHello([]byte(strings.TrimSuffix(line, "\n")))
		if err != nil || herr != nil {
			return
		}
		p.hello = codec.Hello{From: append([]byte(nil), h.From...)}
		if _, err := c.Write([]byte(helloLine(name, string(h.From)))); err == nil {
			ch <- p
		}
	})
	return ch, accepted, stop
}

// silentNeighbour starts server A of a herd where its neighbour Sink, played by the test,
// answers A's hellos and then never reads; cfg's limits are changed by limits first. It
// returns A and how many links Sink has accepted.
func silentNeighbour(t *testing.T, limits func(*Limits)) (a *Server, accepted func() int) {
	ln, err := smallBufferListen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, accepted, stop := fakeNeighbour(t, "Sink", ln)
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"Sink"}}, ServerConfig{Name: "Sink", PeerAddr: ln.Addr().String()})
	limits(&cfg.Limits)
	a = startServer(t, cfg, "A")
	t.Cleanup(stop) // before A's shutdown, which would wait for Sink to read
	return a, accepted
}

// acceptOne accepts the server's dial to ln, within 10s.
func acceptOne(t testing.TB, ln net.Listener) *peerConn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peerConn{t: t, c: c, r: newReader(c)}
}

// next waits for the fake neighbour's next connection.
func next(t testing.TB, conns <-chan *peerConn, what string) *peerConn {
	t.Helper()
	select {
	case p := <-conns:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	return nil
}
