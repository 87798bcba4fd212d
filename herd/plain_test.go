package herd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// Tests of plain peers (servers of the seed's design, link = "plain" or "plain-per-message"):
// their AT lines in Python's forms, the names some of them append, their chatter, and one
// connection per message.

// listenOn listens on a free port of the loopback address ip (all of 127/8 is loopback on
// Linux, so each address stands for a host of its own) and closes it when the test ends.
func listenOn(t *testing.T, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestPlainPeerLines: on the client port, a plain peer's host may send AT lines with a time
// difference as Python prints a float and with names after the six fields; the record is the
// six fields as sent, counted when names were dropped. The same lines from another
// neighbour's host or a stranger's get "?".
func TestPlainPeerLines(t *testing.T) {
	p := listenOn(t, "127.0.0.2") // the plain peer P, on a host of its own
	testutil.Serve(t, p, nil)
	cfg := testConfig(t, "",
		ServerConfig{Name: "A", Peers: []string{"P", "B"}},
		ServerConfig{Name: "P", Addr: p.Addr().String(), Link: LinkPlain},
		ServerConfig{Name: "B", Addr: "127.0.0.3:1", PeerAddr: "127.0.0.3:2"}) // a herd neighbour
	a := startServer(t, cfg, "A")
	addr := a.Addr().String()
	send := func(from, line string) string {
		t.Helper()
		out, err := testutil.TryExchangeFrom(net.ParseIP(from), addr, line+"\n")
		if err != nil {
			t.Fatalf("from %s: %v", from, err)
		}
		return out
	}
	for i, c := range []struct{ line, record string }{
		{"AT P +1.1e-05 c0 +34.068930-118.445127 1796033264.634695053", ""},
		{"AT P 0.5 c1 +1+1 5", ""},
		{"AT P -3.0 c2 +1+1 5", ""},
		{"AT P 1e-05 c3 +1+1 5", ""},
		{"AT Jaquez +0.001401662826538086 c4 +34.068930-118.445127 1796033264.634695053 Jaquez",
			"AT Jaquez +0.001401662826538086 c4 +34.068930-118.445127 1796033264.634695053"},
		{"AT\tJaquez +1.1e-05  c5 +1+1 5 Jaquez Singleton Campbell", "AT Jaquez +1.1e-05 c5 +1+1 5"},
	} {
		if out := send("127.0.0.2", c.line); out != "" {
			t.Errorf("%q from the plain peer's host: replied %q", c.line, out)
		}
		want := c.record
		if want == "" {
			want = c.line
		}
		client := fmt.Sprintf("c%d", i)
		testutil.WaitFor(t, client+"'s record", func() bool { l, _ := a.Record(client); return l == want })
		// WHATSAT serves the originating server's bytes.
		if out := send("127.0.0.2", "WHATSAT "+client+" 1 1"); !strings.HasPrefix(out, want+"\n{") {
			t.Errorf("WHATSAT %s: %q", client, out)
		}
	}
	if n := a.Metrics().Lines.Extra.Load(); n != 2 {
		t.Errorf("lines with extra fields counted: %d, want 2", n)
	}
	for _, from := range []string{"127.0.0.3", "127.0.0.4"} { // B's host, a stranger's
		for _, line := range []string{"AT B +1.1e-05 x +1+1 5", "AT B +0.5 x +1+1 5 B"} {
			if out := send(from, line); out != "? "+line+"\n" {
				t.Errorf("%q from %s: %q, want \"?\"", line, from, out)
			}
		}
	}
	if _, ok := a.Record("x"); ok {
		t.Error("a refused line was stored")
	}
	if n := a.Metrics().Lines.Extra.Load(); n != 2 {
		t.Errorf("lines with extra fields counted: %d, want still 2", n)
	}
}

// TestExtraFieldsOnHerdLinkRefused: on the link of a neighbour that is not a plain peer, an
// AT line with names after its six fields, or with a Python exponent, is refused (ignored,
// not stored), and the link goes on.
func TestExtraFieldsOnHerdLinkRefused(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B", Addr: "127.0.0.1:1", PeerAddr: "127.0.0.1:2"})
	a := startServer(t, cfg, "A")
	p := dialAsPeer(t, a.PeerAddr(), helloLine("B", "A"))
	p.until("HELLO ")
	p.send("AT B +0.5 named +1+1 5 B\nAT B +1.1e-05 exp +1+1 5\nAT B +0.5 plain +1+1 5\n")
	testutil.WaitFor(t, "the good line", func() bool { _, ok := a.Record("plain"); return ok })
	for _, c := range []string{"named", "exp"} {
		if l, ok := a.Record(c); ok {
			t.Errorf("%s stored from a herd link: %q", c, l)
		}
	}
	if n := a.Metrics().Links[0].Ups.Load(); n != 1 {
		t.Errorf("link came up %d times, want 1", n)
	}
}

// TestPlainPeerChatter: a plain peer that sends 10 KB without a newline, then
// acknowledgements without newlines, keeps its link: its text is discarded and counted, the
// link is not redialled more than once, floods reach the peer, and its AT lines after the
// chatter are applied.
func TestPlainPeerChatter(t *testing.T) {
	ln := testutil.Listen(t)
	var got sync.Map // the clients of the AT lines the peer read
	accepted := testutil.Serve(t, ln, func(c net.Conn) {
		var chatter sync.WaitGroup
		defer chatter.Wait() // it ends with the connection
		chatter.Go(func() {
			if _, err := c.Write([]byte(strings.Repeat("x", 10<<10))); err != nil {
				return
			}
			for range 200 {
				if _, err := c.Write([]byte("OK")); err != nil {
					return
				}
			}
			c.Write([]byte("\nOK\nACK\nAT P +1.1e-05 fromP +1+1 5 P\n"))
		})
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 6 && f[0] == "AT" {
				got.Store(f[3], true)
			}
		}
	})
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"P"}}, ServerConfig{Name: "P", Addr: ln.Addr().String(), Link: LinkPlain})
	a := startServer(t, cfg, "A")
	testutil.WaitFor(t, "the peer's AT line after its chatter", func() bool {
		l, _ := a.Record("fromP")
		return l == "AT P +1.1e-05 fromP +1+1 5"
	})
	c := testutil.Dial(t, a.Addr().String())
	for i := range 50 {
		c.Ask(fmt.Sprintf("IAMAT f%d +1+1 %d", i, 1000+i))
	}

	testutil.WaitFor(t, "the floods at the peer", func() bool {
		for i := range 50 {
			if _, ok := got.Load(fmt.Sprintf("f%d", i)); !ok {
				return false
			}
		}
		return true
	})
	m := &a.Metrics().Links[0]
	if n := accepted(); n > 2 {
		t.Errorf("the peer took %d connections: the link was redialled", n)
	}
	// The 10 KB (one line over the limit), then "OK", "ACK".
	if n := m.Discarded.Load(); n != 3 {
		t.Errorf("discarded %d lines, want 3", n)
	}
}

// onePerConn plays a server of the seed's design that reads one line from each connection
// and closes it (after writing reply, if any, with no newline). It returns the lines it read,
// in the order it read them, and the most connections it held at once.
type onePerConn struct {
	mu    sync.Mutex
	lines []string
	open  atomic.Int32
	most  atomic.Int32
}

func (o *onePerConn) serve(reply string) func(net.Conn) {
	return func(c net.Conn) {
		n := o.open.Add(1)
		for m := o.most.Load(); n > m && !o.most.CompareAndSwap(m, n); m = o.most.Load() {
		}
		c.SetReadDeadline(time.Now().Add(testutil.Patience))
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			o.mu.Lock()
			o.lines = append(o.lines, strings.TrimSuffix(line, "\n"))
			o.mu.Unlock()
			if reply != "" {
				c.Write([]byte(reply))
			}
		}
		o.open.Add(-1) // before the close, which lets the server open the next
		c.Close()
	}
}

// clients returns the client IDs of the lines read, counting each.
func (o *onePerConn) clients() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := make(map[string]int)
	for _, l := range o.lines {
		m[strings.Fields(l + " - - - -")[3]]++
	}
	return m
}

// TestPerMessageThousandFloods: to a plain peer that reads one line per connection and
// closes it, answering each with an acknowledgement without a newline, 1,000 floods in a
// row all arrive, each on a connection of its own, with at most msgConns connections open
// at once; the acknowledgements are discarded and counted.
func TestPerMessageThousandFloods(t *testing.T) {
	ln := testutil.Listen(t)
	var peer onePerConn
	testutil.Serve(t, ln, peer.serve("ok"))
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"P"}}, ServerConfig{Name: "P", Addr: ln.Addr().String(), Link: LinkPlainPerMessage})
	a := startServer(t, cfg, "A")
	testutil.WaitFor(t, "the link", func() bool { return a.Metrics().LinksUp.Load() == 1 })
	const n = 1000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "IAMAT m%d +34.068930-118.445127 %d.5\n", i, 1700000000+i)
	}
	c := testutil.Dial(t, a.Addr().String())
	c.Send(in.String())
	for range n {
		c.Line()
	}
	testutil.WaitFor(t, "1,000 floods at the peer", func() bool { return len(peer.clients()) == n })
	for client, k := range peer.clients() {
		if k != 1 {
			t.Errorf("%s arrived %d times", client, k)
		}
	}
	m := &a.Metrics().Links[0]
	testutil.WaitFor(t, "the acknowledgements counted", func() bool { return m.Discarded.Load() == n })
	if most := peer.most.Load(); most > msgConns {
		t.Errorf("%d connections open at once, want at most %d", most, msgConns)
	}
	if f, ups := m.SendFailures.Load(), m.Ups.Load(); f != 0 || ups != 1 {
		t.Errorf("send failures %d, link ups %d; want 0 and 1", f, ups)
	}
	t.Logf("1,000 floods: at most %d connections at once", peer.most.Load())
}

// TestPerMessageRestartResyncs: a plain-per-message peer that goes away loses nothing for
// good: the failed sends are counted, the link is redialled with its backoff, and once the
// peer is back (with nothing, as a restarted prototype) the resync sends it every record,
// one per connection.
func TestPerMessageRestartResyncs(t *testing.T) {
	ln := testutil.Listen(t)
	addr := ln.Addr().String()
	var first onePerConn
	testutil.Serve(t, ln, first.serve(""))
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"P"}}, ServerConfig{Name: "P", Addr: addr, Link: LinkPlainPerMessage})
	a := startServer(t, cfg, "A")
	c := testutil.Dial(t, a.Addr().String())
	c.Ask("IAMAT before +1+1 5")
	testutil.WaitFor(t, "the first flood", func() bool { return first.clients()["before"] == 1 })

	ln.Close() // the peer goes away
	m := &a.Metrics().Links[0]
	c.Ask("IAMAT during +1+1 6")
	testutil.WaitFor(t, "the failed send", func() bool { return m.SendFailures.Load() >= 1 && !m.Up.Load() })

	ln2, err := net.Listen("tcp", addr) // back, with an empty table
	if err != nil {
		t.Fatalf("the peer's address is taken: %v", err)
	}
	var second onePerConn
	testutil.Serve(t, ln2, second.serve(""))
	testutil.WaitFor(t, "the resync to the restarted peer", func() bool {
		got := second.clients()
		return got["before"] == 1 && got["during"] == 1
	})
	if m.Ups.Load() < 2 {
		t.Errorf("link ups %d, want a second", m.Ups.Load())
	}
}

// TestPerMessageSilentPeer: a peer that reads its line and then neither closes nor answers
// holds each connection msgWait at most; the floods still all arrive.
func TestPerMessageSilentPeer(t *testing.T) {
	ln := testutil.Listen(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	testutil.Serve(t, ln, func(c net.Conn) {
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err == nil {
			mu.Lock()
			seen[strings.Fields(line)[3]] = true
			mu.Unlock()
		}
		io.Copy(io.Discard, r) // until the server closes
	})
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"P"}}, ServerConfig{Name: "P", Addr: ln.Addr().String(), Link: LinkPlainPerMessage})
	a := startServer(t, cfg, "A")
	c := testutil.Dial(t, a.Addr().String())
	const n = 2 * msgConns
	for i := range n {
		c.Ask(fmt.Sprintf("IAMAT s%d +1+1 5", i))
	}
	testutil.WaitFor(t, "the floods", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	if f := a.Metrics().Links[0].SendFailures.Load(); f != 0 {
		t.Errorf("%d send failures", f)
	}
}
