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
	"github.com/herd-project/herd/internal/testutil"
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

// newPeerConn wraps c, a link connection the test holds.
func newPeerConn(t testing.TB, c net.Conn) *peerConn {
	return &peerConn{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// send writes s on the connection.
func (p *peerConn) send(s string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s)); err != nil {
		p.t.Fatalf("peer: write %q: %v", s, err)
	}
}

// line reads one line (without "\n"), within testutil.Patience.
func (p *peerConn) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(testutil.Patience))
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

// helloLine is the HELLO a neighbour named from sends to reach to, without a proof.
func helloLine(from, to string) string {
	return fmt.Sprintf("HELLO %d %s %s %s %s\n", codec.LinkVersion, from, to, testInstance, testNonce)
}

// parseHelloCopy parses a HELLO line the server sent; the fields alias a copy of the line.
func parseHelloCopy(t testing.TB, line string) codec.Hello {
	t.Helper()
	h, err := codec.ParseHello([]byte(line))
	if err != nil {
		t.Fatalf("the server's HELLO %q: %v", line, err)
	}
	return h
}

// dialAsPeer dials the server's peer port and sends the hello line hello
// (helloLine(from, server) for a good one). It returns the connection, with nothing read.
func dialAsPeer(t testing.TB, addr net.Addr, hello string) *peerConn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := newPeerConn(t, c)
	p.send(hello)
	return p
}

// answerHello reads the HELLO of a link the server dialled on c and answers it as name. It
// runs on a goroutine of testutil.Serve's, so it reports failure by its result.
func answerHello(c net.Conn, name string) (*peerConn, bool) {
	p := &peerConn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	c.SetReadDeadline(time.Now().Add(testutil.Patience))
	line, err := p.r.ReadString('\n')
	h, herr := codec.ParseHello([]byte(strings.TrimSuffix(line, "\n")))
	if err != nil || herr != nil {
		return nil, false
	}
	p.hello = codec.Hello{From: append([]byte(nil), h.From...)}
	_, err = c.Write([]byte(helloLine(name, string(h.From))))
	return p, err == nil
}

// fakeNeighbour accepts the links the server dials to ln and answers their hellos as name;
// each connection comes out of the channel once its hello is done (the first 64: a test
// takes few), and accepted counts them. testutil.Serve closes them when the test ends.
func fakeNeighbour(t *testing.T, name string, ln net.Listener) (conns <-chan *peerConn, accepted func() int) {
	t.Helper()
	ch := make(chan *peerConn, 64)
	accepted = testutil.Serve(t, ln, func(c net.Conn) {
		if p, ok := answerHello(c, name); ok {
			p.t = t
			select {
			case ch <- p:
			default:
			}
		}
	})
	return ch, accepted
}

// silentNeighbour starts server A of a herd where its neighbour Sink, played by the test,
// answers A's hellos and then never reads; cfg's limits are changed by limits first. It
// returns A and how many links Sink has accepted. Sink's connections are closed before A's
// shutdown, which would otherwise wait for Sink to read what it owes.
func silentNeighbour(t *testing.T, limits func(*Limits)) (a *Server, accepted func() int) {
	ln, err := testutil.SmallReceiveBufferListen("127.0.0.1:0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	gone := false // the test is over: Sink takes no more links
	accepted = testutil.Serve(t, ln, func(c net.Conn) {
		_, ok := answerHello(c, "Sink")
		mu.Lock()
		defer mu.Unlock()
		if ok && !gone {
			held = append(held, c)
		} else {
			c.Close()
		}
	})
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"Sink"}}, ServerConfig{Name: "Sink", PeerAddr: ln.Addr().String()})
	limits(&cfg.Limits)
	a = startServer(t, cfg, "A")
	t.Cleanup(func() { // runs before A's shutdown: cleanups run last first
		ln.Close() // A redials at once: no new link may come to hold the stop either
		mu.Lock()
		defer mu.Unlock()
		gone = true
		for _, c := range held {
			c.Close()
		}
	})
	return a, accepted
}

// acceptOne takes the server's next dial to ln.
func acceptOne(t testing.TB, ln net.Listener) *peerConn {
	t.Helper()
	return newPeerConn(t, testutil.Recv(t, testutil.Accepted(t, ln), "the server's dial"))
}
