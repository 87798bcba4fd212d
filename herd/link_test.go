package herd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/internal/testutil"
	"github.com/herd-project/herd/reactor"
	"golang.org/x/sys/unix"
)

// Tests of the links between servers: the peer port and its hello, one link per pair,
// authentication, the digest resync, instant relink, and floods before replies.

// onLoop runs fn on s's loop and returns once it has run.
func onLoop(t testing.TB, s *Server, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := s.loop.CallSoonThreadsafe(func() { fn(); close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
}

// startPair starts the herd of cfg (servers A and B, linked) with opts and waits until both
// have their link up and no other link connection.
func startPair(t *testing.T, cfg *Config, opts ...Option) (h *Herd, a, b *Server) {
	t.Helper()
	h = startHerd(t, cfg, opts...)
	a, b = h.Server("A"), h.Server("B")
	waitOneLink(t, a, b)
	return h, a, b
}

// waitOneLink waits until a and b each have one link up over one connection.
func waitOneLink(t testing.TB, servers ...*Server) {
	t.Helper()
	for _, s := range servers {
		testutil.WaitFor(t, s.Name()+"'s one link", func() bool {
			return s.Metrics().LinksUp.Load() == 1 && s.Metrics().LinkConns.Load() == 1
		})
	}
}

// linkEnds returns the local and remote addresses of s's link with peer.
func linkEnds(t testing.TB, s *Server, peer string) (local, remote string) {
	t.Helper()
	onLoop(t, s, func() {
		if c := s.linkByName[peer].c; c != nil {
			local, remote = addrString(c.t.(*reactor.Transport).LocalAddr()), addrString(c.t.RemoteAddr())
		}
	})
	return local, remote
}

// TestSimultaneousDialsKeepOneLink: two servers that start together dial each other at once;
// each keeps the same one of the two connections, and the other is closed.
func TestSimultaneousDialsKeepOneLink(t *testing.T) {
	for range 10 {
		cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
		h, a, b := startPair(t, cfg)
		// Each side may hold its own dial for a moment, until the other's hello arrives and
		// the rule closes one; then both must settle on the same connection and stay there.
		var aLocal, aRemote, bLocal, bRemote string
		same := func() bool {
			aLocal, aRemote = linkEnds(t, a, "B")
			bLocal, bRemote = linkEnds(t, b, "A")
			return aLocal != "" && aLocal == bRemote && aRemote == bLocal
		}
		if !testutil.Eventually(same) {
			t.Fatalf("A's link %s -> %s, B's link %s -> %s: not one connection", aLocal, aRemote, bLocal, bRemote)
		}
		waitOneLink(t, a, b)
		if !same() {
			t.Fatalf("after settling: A's link %s -> %s, B's link %s -> %s: not one connection", aLocal, aRemote, bLocal, bRemote)
		}
		if ups := a.Metrics().LinkUps.Load() + b.Metrics().LinkUps.Load(); ups > 4 {
			t.Errorf("%d link-ups to settle two dials", ups)
		}
		testutil.Stop(t, h.Shutdown)
	}
}

// TestDuplicateLinkRule: of two connections between the same two processes, both sides keep
// the one dialled by the server whose name sorts lower, whichever finished its hello first.
// The neighbour (A, before M, or Z, after it) is played by the test: it answers M's dial and
// dials M itself. Z's dial made while M's own is under way is not answered at all (link.park):
// M closes it once its own dial is up, or answers and keeps it if its own dial fails.
func TestDuplicateLinkRule(t *testing.T) {
	for _, tc := range []struct {
		peer, first string
	}{{"A", "dialled by M"}, {"A", "dialled by A"}, {"Z", "dialled by M"}, {"Z", "dialled by Z"}, {"Z", "dialled by Z, M's dial fails"}} {
		t.Run(tc.peer+" first "+tc.first, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cfg := testConfig(t, "", ServerConfig{Name: "M", Peers: []string{tc.peer}}, ServerConfig{Name: tc.peer, PeerAddr: ln.Addr().String()})
			cfg.Limits.DialTimeout = 10 * time.Second // M's hello waits for the test
			s := startServer(t, cfg, "M")
			out := acceptOne(t, ln)
			parseHelloCopy(t, out.line()) // M's HELLO
			var in *peerConn
			answerOut := func() { out.send(helloLine(tc.peer, "M")) }
			dialIn := func() {
				in = dialAsPeer(t, s.PeerAddr(), helloLine(tc.peer, "M"))
				parseHelloCopy(t, in.line()) // M's answer
			}
			kept, dropped := out, in
			switch {
			case tc.first == "dialled by M":
				answerOut()
				testutil.WaitFor(t, "the link", func() bool { return s.Metrics().LinksUp.Load() == 1 })
				dialIn()
			case tc.peer < "M":
				dialIn()
				testutil.WaitFor(t, "the link", func() bool { return s.Metrics().LinksUp.Load() == 1 })
				answerOut()
			default:
				// M's dial is the one both keep, and it is under way: M holds Z's hello.
				in = dialAsPeer(t, s.PeerAddr(), helloLine(tc.peer, "M"))
				testutil.WaitFor(t, "M to hold Z's hello", func() bool { return s.Metrics().LinkHelloHolds.Load() == 1 })
				if tc.first == "dialled by Z" {
					answerOut()
					break
				}
				out.c.Close() // M's dial fails: Z's connection is answered and kept
				parseHelloCopy(t, in.line())
				kept, dropped = in, nil
			}
			if tc.peer < "M" {
				kept, dropped = in, out
			} else if tc.first == "dialled by M" || tc.first == "dialled by Z" {
				dropped = in
			}
			if dropped != nil {
				dropped.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				rest, err := io.ReadAll(dropped.r)
				if err != nil && !testutil.IsReset(err) {
					t.Fatalf("the dropped connection: %v after %q", err, rest)
				}
				if tc.first == "dialled by Z" && len(rest) > 0 {
					t.Errorf("M answered the hello it held with %q", rest)
				}
			}
			testutil.WaitFor(t, "one link connection", func() bool { return s.Metrics().LinkConns.Load() == 1 })
			kept.until("DIGEST") // M's resync on the connection it kept...
			kept.send("DIGEST\nDONE 0\n")
			if _, done := kept.until("DONE"); done != "DONE 0" { // ...which ends, in sync
				t.Errorf("M's resync ends with %q", done)
			}
			testutil.WaitFor(t, "the resync", func() bool { return s.Metrics().ResyncsDone.Load() == 1 })
			if n := s.Metrics().LinksUp.Load(); n != 1 {
				t.Errorf("%d links up", n)
			}
			if n := s.Metrics().LinkUps.Load(); n != 1 {
				t.Errorf("the link came up %d times, want once", n)
			}
		})
	}
}

// TestHelloRefused: a HELLO from a server that is not a neighbour, of another version, meant
// for another server, or a line that is not a HELLO, gets an ERR line that says why and the
// connection is closed; nothing it sent is applied.
func TestHelloRefused(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill", Peers: []string{"Jaquez"}}, ServerConfig{Name: "Jaquez", PeerAddr: "127.0.0.1:1"})
	s := startServer(t, cfg, "Hill")
	proof := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, send, want string }{
		{"stranger", helloLine("Bob", "Hill"), `Hill has no neighbour "Bob"`},
		{"version", "HELLO 2 Jaquez Hill " + testInstance + " " + testNonce + "\n", "link protocol version 2 is not supported (Hill speaks 1)"},
		{"other server", helloLine("Jaquez", "Smith"), "this is Hill, not Smith"},
		{"AT first", "AT Jaquez +0.000000000 early +1+1 5\n", "expected HELLO"},
		{"IAMAT first", "IAMAT early +1+1 5\n", "expected HELLO"},
		{"binary", "\x00\x01\x02\n", "expected HELLO"},
		{"proof without a secret", strings.TrimSuffix(helloLine("Jaquez", "Hill"), "\n") + " " + proof + "\n", "a dialler's HELLO carries no proof"},
	} {
		p := dialAsPeer(t, s.PeerAddr(), tc.send)
		if got := p.line(); !strings.HasPrefix(got, "ERR ") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want an ERR line with %q", tc.name, got, tc.want)
		}
		p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if rest, err := io.ReadAll(p.r); err != nil || len(rest) > 0 {
			t.Errorf("%s: after the ERR line: %q, %v", tc.name, rest, err)
		}
	}
	if _, ok := s.Record("early"); ok {
		t.Error("a line sent before the hello was applied")
	}
	if n := s.Metrics().LinkRefusals.Load(); n != 7 {
		t.Errorf("%d refusals counted, want 7", n)
	}
}

const testSecret = "a secret of the herd's links"

// TestLinkAuthentication: with links.secret set, a neighbour that proves it knows it links
// and its AT lines are applied; a replayed hello, a reflected proof, a wrong secret and an AT
// line before the handshake are refused. On the client port AT lines are refused, and
// clients are served as ever.
func TestLinkAuthentication(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill", Peers: []string{"Jaquez"}}, ServerConfig{Name: "Jaquez", PeerAddr: "127.0.0.1:1"})
	cfg.Links.Secret = testSecret
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfg, "Hill", hillClock)
	inst, nonce := []byte(testInstance), []byte(testNonce)

	// A good handshake: Hill proves itself in its HELLO, Jaquez with AUTH.
	p := dialAsPeer(t, s.PeerAddr(), helloLine("Jaquez", "Hill"))
	hs := parseHelloCopy(t, p.line())
	if want := s.proof("accept", "Jaquez", "Hill", inst, hs.Instance, nonce, hs.Nonce); string(hs.Proof) != string(want) {
		t.Fatalf("Hill's proof %q, want %q", hs.Proof, want)
	}
	auth := string(codec.AppendAuth(nil, s.proof("dial", "Jaquez", "Hill", inst, hs.Instance, nonce, hs.Nonce)))
	p.send(auth)
	testutil.WaitFor(t, "the link", func() bool { return s.Metrics().LinksUp.Load() == 1 })
	p.send("AT Jaquez +0.000000000 linked +1+1 5\n")
	testutil.WaitFor(t, "the AT line on the link", func() bool { _, ok := s.Record("linked"); return ok })
	p.c.Close()
	testutil.WaitFor(t, "the link to go down", func() bool { return s.Metrics().LinksUp.Load() == 0 })

	// refused dials as Jaquez again and answers Hill's HELLO with what send makes of it.
	refused := func(what string, send func(h codec.Hello) string, want string) {
		t.Helper()
		q := dialAsPeer(t, s.PeerAddr(), helloLine("Jaquez", "Hill"))
		q.send(send(parseHelloCopy(t, q.line())))
		if got := q.line(); got != "ERR "+want {
			t.Errorf("%s: %q, want %q", what, got, "ERR "+want)
		}
	}
	refused("a replayed hello", func(codec.Hello) string { return auth }, "authentication failed")
	refused("a reflected proof", func(h codec.Hello) string { return "AUTH " + string(h.Proof) + "\n" }, "authentication failed")
	other := &Server{secret: []byte("another secret, not the herd's")}
	refused("a wrong secret", func(h codec.Hello) string {
		return string(codec.AppendAuth(nil, other.proof("dial", "Jaquez", "Hill", inst, h.Instance, nonce, h.Nonce)))
	}, "authentication failed")
	refused("an AT line before the handshake", func(codec.Hello) string { return "AT Jaquez +0.000000000 early +1+1 5\n" },
		`expected AUTH, got "AT Jaquez +0.000000000 early +1+1 5"`)
	if _, ok := s.Record("early"); ok {
		t.Error("an AT line sent before AUTH was applied")
	}
	if n := s.Metrics().LinksUp.Load(); n != 0 {
		t.Errorf("%d links up after refusals", n)
	}

	// The client port: an AT line from loopback (the neighbour's host) is invalid now.
	c := testutil.Dial(t, s.Addr().String())
	c.Send("AT Jaquez +0.000000000 port +1+1 5\n")
	if got := c.ReadAll(); got != "? AT Jaquez +0.000000000 port +1+1 5\n" {
		t.Errorf("AT line on the client port: %q", got)
	}
	c = testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	if got := c.Line(); got != kiwiAT+"\n" {
		t.Errorf("IAMAT with a secret set: %q", got)
	}
}

// TestLinkWrongSecret: two servers with different secrets never link; each says why.
func TestLinkWrongSecret(t *testing.T) {
	cfgB := testConfig(t, "", ServerConfig{Name: "A", PeerAddr: "127.0.0.1:1", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	cfgB.Links.Secret = "the secret of B, not A's"
	b := startServer(t, cfgB, "B")
	cfgA := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}},
		ServerConfig{Name: "B", Addr: b.Addr().String(), PeerAddr: b.PeerAddr().String()})
	cfgA.Links.Secret = testSecret
	a := startServer(t, cfgA, "A")
	testutil.WaitFor(t, "refusals on both sides", func() bool {
		return a.Metrics().LinkRefusals.Load() >= 2 && b.Metrics().LinkRefusals.Load() >= 2
	})
	if n := a.Metrics().LinkUps.Load() + b.Metrics().LinkUps.Load(); n != 0 {
		t.Errorf("links came up %d times", n)
	}
}

// TestLinkSecretOnOneSide: a server with a secret and one without refuse each other, both
// ways, and say why.
func TestLinkSecretOnOneSide(t *testing.T) {
	for _, secretAt := range []string{"dialler", "acceptor"} {
		t.Run(secretAt, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			// B, the server, dials A, played by the test.
			cfg := testConfig(t, "", ServerConfig{Name: "A", PeerAddr: ln.Addr().String()}, ServerConfig{Name: "B", Peers: []string{"A"}})
			want := "ERR A asks for authentication and B has no links.secret"
			if secretAt == "dialler" {
				cfg.Links.Secret = testSecret
				want = "ERR no proof in the HELLO: is links.secret set there?"
			}
			s := startServer(t, cfg, "B")
			p := acceptOne(t, ln)
			h := parseHelloCopy(t, p.line())
			ans := strings.TrimSuffix(helloLine("A", string(h.From)), "\n")
			if secretAt == "acceptor" {
				ans += " " + strings.Repeat("0", codec.ProofLen)
			}
			p.send(ans + "\n")
			if got := p.line(); got != want {
				t.Errorf("%q, want %q", got, want)
			}
			if s.Metrics().LinkUps.Load() != 0 {
				t.Error("the link came up")
			}
		})
	}
}

// TestResyncSendsOnlyWhatDiffers: two servers that hold the same 5000 records link without
// sending one; after a partition in which one record changed on one side, the resync of the
// healed link sends that record alone.
func TestResyncSendsOnlyWhatDiffers(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	h := newHerd(t, cfg)
	a, b := h.Server("A"), h.Server("B")
	fillTable(t, a, 5000, "s")
	fillTable(t, b, 5000, "s")
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	resynced := func(n uint64) {
		t.Helper()
		for _, s := range []*Server{a, b} {
			testutil.WaitFor(t, fmt.Sprintf("%s's resync %d", s.Name(), n), func() bool { return s.Metrics().ResyncsDone.Load() >= n })
		}
	}
	resynced(1)
	if n := a.Metrics().ResyncRecords.Load() + b.Metrics().ResyncRecords.Load(); n != 0 {
		t.Errorf("servers in sync: the resync sent %d records", n)
	}
	t.Logf("a resync in sync, 5000 records: %d bytes from A", a.Metrics().ResyncBytes.Load())

	if err := h.SetLinkFault("A", "B", LinkCut); err != nil {
		t.Fatal(err)
	}
	changed := iamat(t, a, fmt.Sprintf("s%06d", 4242), "+2+2", "8")
	if err := h.SetLinkFault("A", "B", NoFault); err != nil {
		t.Fatal(err)
	}
	resynced(2)
	waitRecord(t, []*Server{b}, fmt.Sprintf("s%06d", 4242), changed)
	if n := a.Metrics().ResyncRecords.Load(); n != 1 {
		t.Errorf("A sent %d records, want the one that changed", n)
	}
	if n := b.Metrics().ResyncRecords.Load(); n != 0 {
		t.Errorf("B sent %d records, want none (A's is newer)", n)
	}
}

// TestRestartRelinksWithoutTimers: a restarted server dials its neighbours as it starts
// listening, and they take the link at once: on a loop clock that never moves (no backoff
// timer can fire), its links come up and its resyncs finish.
func TestRestartRelinksWithoutTimers(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B", "C"}}, ServerConfig{Name: "B"}, ServerConfig{Name: "C"})
	h := startHerd(t, cfg, WithLoopClock(clock))
	a, b, c := h.Server("A"), h.Server("B"), h.Server("C")
	testutil.WaitFor(t, "the links", func() bool { return a.Metrics().LinksUp.Load() == 2 })
	testutil.Stop(t, a.Shutdown)
	testutil.WaitFor(t, "the neighbours to see A go", func() bool { return b.Metrics().LinksUp.Load() == 0 && c.Metrics().LinksUp.Load() == 0 })
	missed := iamat(t, b, "missed", "+1+1", "5")

	a2, err := NewServer(h.Config(), "A", WithProvider(stubProvider{}), WithDebug(true), WithLoopClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, a2.Shutdown) })
	testutil.WaitFor(t, "A's links and resyncs", func() bool {
		return a2.Metrics().LinksUp.Load() == 2 && a2.Metrics().ResyncsDone.Load() == 2
	})
	waitRecord(t, []*Server{a2, c}, "missed", missed)
}

// inQueue returns the bytes waiting to be read on c's socket.
func inQueue(t testing.TB, c net.Conn) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
		t.Fatal(errors.Join(err, ierr))
	}
	return n
}

// TestFloodBeforeReply: the flood of an update is written to the link before the reply is
// written to the client, so when the client has its reply the flood is already waiting in
// the neighbour's socket; the floods of all the lines of one read are there too. Checked on
// the wire, 100 times.
func TestFloodBeforeReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := fakeNeighbour(t, "N", ln)
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"N"}}, ServerConfig{Name: "N", PeerAddr: ln.Addr().String()})
	s := startServer(t, cfg, "A")
	n := testutil.Recv(t, conns, "the link")
	n.send("DIGEST\nDONE 0\n")
	n.until("DONE")
	testutil.WaitFor(t, "the resync", func() bool { return s.Metrics().ResyncsDone.Load() == 1 })
	c := testutil.Dial(t, s.Addr().String())
	for i := range 100 {
		lines := 1 + i%3
		var in strings.Builder
		for j := range lines {
			fmt.Fprintf(&in, "IAMAT f%d.%d +1+1 5\n", i, j)
		}
		c.Send(in.String())
		var want int
		for range lines {
			want += len(c.Line()) // the flood is the reply
		}
		if got := inQueue(t, n.c); got != want {
			t.Fatalf("try %d: the client has its %d replies and %d bytes wait on the link, want %d", i, lines, got, want)
		}
		for range lines {
			n.line()
		}
	}
}

// TestWHATSATAfterReplyFindsUpdate: a client that reads its IAMAT reply and asks a neighbour
// at once finds its update there, 100 times out of 100.
func TestWHATSATAfterReplyFindsUpdate(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	_, a, b := startPair(t, cfg)
	for i := range 100 {
		at := iamat(t, a, fmt.Sprint("w", i), "+1+1", "5")
		w := testutil.Dial(t, b.Addr().String())
		w.Send(fmt.Sprintf("WHATSAT w%d 10 1\n", i))
		if got := w.Reply(); !strings.HasPrefix(got, at+"\n") {
			t.Fatalf("try %d: %q, want the record %q", i, got, at)
		}
		w.TCP.Close()
	}
}

// TestNeighbourByHostName: a neighbour named by a host name is dialled at what the name
// resolves to, and those addresses are its host for AT lines on the client port.
func TestNeighbourByHostName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns, _ := fakeNeighbour(t, "N", ln)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"N"}},
		ServerConfig{Name: "N", Addr: "localhost:9", PeerAddr: net.JoinHostPort("localhost", port)})
	s := startServer(t, cfg, "A")
	testutil.Recv(t, conns, "the link dialled by name")
	var ips []string
	onLoop(t, s, func() {
		for ip := range s.peerIPs {
			ips = append(ips, ip.String())
		}
	})
	if !contains(ips, "127.0.0.1") {
		t.Errorf("neighbour hosts %v: no 127.0.0.1 for localhost", ips)
	}
	c := testutil.Dial(t, s.Addr().String())
	c.Send("AT N +0.000000000 named +1+1 5\n")
	testutil.WaitFor(t, "the AT line from the neighbour's host", func() bool { _, ok := s.Record("named"); return ok })
}

// BenchmarkRestartRelink restarts Smith in the default herd (real clocks, the default
// backoff) and measures the time from the restarted server listening (Start returned) to its
// three links up and their resyncs done, with 1000 records in the herd.
func BenchmarkRestartRelink(b *testing.B) {
	cfg := DefaultConfig()
	for i := range cfg.Servers {
		cfg.Servers[i].Addr, cfg.Servers[i].PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	cfg.Log.Dir = "off"
	h, err := NewHerd(cfg, WithProvider(stubProvider{}))
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Start(); err != nil {
		b.Fatal(err)
	}
	defer testutil.Stop(b, h.Shutdown)
	for i := range 1000 {
		c := testutil.Dial(b, h.Server("Hill").Addr().String())
		c.Send(fmt.Sprintf("IAMAT b%d +1+1 5\n", i))
		c.Line()
		c.TCP.Close()
	}
	smith := h.Server("Smith")
	testutil.WaitFor(b, "the records at Smith", func() bool { _, ok := smith.Record("b999"); return ok })
	var up, synced time.Duration
	for b.Loop() {
		testutil.Stop(b, smith.Shutdown)
		s, err := NewServer(h.Config(), "Smith", WithProvider(stubProvider{}))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for s.Metrics().LinksUp.Load() < 3 {
			time.Sleep(20 * time.Microsecond)
		}
		up += time.Since(start)
		for s.Metrics().ResyncsDone.Load() < 3 {
			time.Sleep(20 * time.Microsecond)
		}
		synced += time.Since(start)
		smith = s
	}
	defer testutil.Stop(b, smith.Shutdown)
	b.ReportMetric(float64(up.Microseconds())/float64(b.N), "µs-to-links")
	b.ReportMetric(float64(synced.Microseconds())/float64(b.N), "µs-to-resynced")
}

// BenchmarkResyncMillion links two servers that hold the same million records but one, and
// measures the time from the link's start to both resyncs done, with the bytes and records
// each sent (run it with -benchtime 1x: each run builds the tables).
func BenchmarkResyncMillion(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		b.StopTimer()
		cfg := testConfig(b, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
		h, err := NewHerd(cfg, WithProvider(stubProvider{}))
		if err != nil {
			b.Fatal(err)
		}
		a, bs := h.Server("A"), h.Server("B")
		for _, s := range []*Server{a, bs} {
			for i := range n {
				line := fmt.Appendf(nil, "AT Origin +0.000000000 client%07d +34.068930-118.445127 1621464827.%09d", i, i)
				m, err := codec.ParseLine(line)
				if err != nil {
					b.Fatal(err)
				}
				s.table.Apply(&m, line)
			}
		}
		m, _ := codec.ParseLine([]byte("AT Origin +0.000000000 client0424242 +1+1 1700000000"))
		a.table.Apply(&m, []byte("AT Origin +0.000000000 client0424242 +1+1 1700000000"))
		b.StartTimer()
		start := time.Now()
		if err := h.Start(); err != nil {
			b.Fatal(err)
		}
		for a.Metrics().ResyncsDone.Load() < 1 || bs.Metrics().ResyncsDone.Load() < 1 {
			time.Sleep(50 * time.Microsecond)
		}
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(took.Milliseconds()), "ms-to-resynced")
		b.ReportMetric(float64(a.Metrics().ResyncBytes.Load()+bs.Metrics().ResyncBytes.Load()), "resync-bytes")
		b.ReportMetric(float64(a.Metrics().ResyncRecords.Load()+bs.Metrics().ResyncRecords.Load()), "resync-records")
		testutil.Stop(b, h.Shutdown)
		b.StartTimer()
	}
}
