package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// testConfig returns a herd config whose servers listen on 127.0.0.1:0, with Places at url
// ("" for the offline provider) and extra TOML for [limits].
func testConfig(t testing.TB, url, limits string, nodes ...testutil.Node) *herd.Config {
	t.Helper()
	c := testutil.Config{PlacesURL: url, Limits: limits, Nodes: nodes}
	if url != "" {
		c.PlacesTimeout = "2s"
	}
	cfg, err := herd.ParseConfig([]byte(c.TOML()), "test.toml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, c.TOML())
	}
	return cfg
}

// startHill starts a herd of one server, Hill, with the offline Places provider and limits
// (TOML lines for [limits]), and returns its address.
func startHill(t testing.TB, limits string) string {
	t.Helper()
	return newHerd(t, testConfig(t, "", limits, testutil.Node{Name: "Hill"})).start("Hill")
}

// testHerd is a herd of baseline servers in this process.
type testHerd struct {
	t       testing.TB
	cfg     *herd.Config
	prov    places.Provider
	mu      sync.Mutex
	addrs   map[string]string // where each server listens (fixed once first bound)
	servers map[string]*Server
	// writeWait, if set, replaces the servers' cut-off for unread output.
	writeWait time.Duration
}

func newHerd(t testing.TB, cfg *herd.Config) *testHerd {
	t.Helper()
	prov, err := places.New(places.Config{
		Provider: cfg.Places.Provider, URL: cfg.Places.URL, Key: cfg.Places.Key, Timeout: cfg.Places.Timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &testHerd{t: t, cfg: cfg, prov: prov, addrs: map[string]string{}, servers: map[string]*Server{}}
	t.Cleanup(func() {
		// Not under h.mu: the links of a closing server look addresses up with h.addr.
		h.mu.Lock()
		var servers []*Server
		for _, s := range h.servers {
			servers = append(servers, s)
		}
		h.mu.Unlock()
		for _, s := range servers {
			s.Close()
		}
	})
	return h
}

// reserve binds each named server's port (and frees it) so neighbours know where to dial
// before the server starts.
func (h *testHerd) reserve(names ...string) {
	for _, n := range names {
		addr := testutil.FreeAddr(h.t)
		h.mu.Lock()
		h.addrs[n] = addr
		h.mu.Unlock()
	}
}

// start starts the named servers and returns the address of the first.
func (h *testHerd) start(names ...string) string {
	h.t.Helper()
	for _, n := range names {
		s, err := New(h.cfg, n, h.prov, nil)
		if err != nil {
			h.t.Fatal(err)
		}
		h.mu.Lock()
		addr, ok := h.addrs[n]
		h.mu.Unlock()
		if !ok {
			addr = "127.0.0.1:0"
		}
		if err := s.Listen(addr); err != nil {
			h.t.Fatal(err)
		}
		s.SetPeerAddr(h.addr)
		if h.writeWait > 0 {
			s.writeWait = h.writeWait
		}
		h.mu.Lock()
		h.addrs[n] = s.Addr().String()
		h.servers[n] = s
		h.mu.Unlock()
		s.Start()
	}
	return h.addr(names[0])
}

// stop closes the named server; its address stays reserved for a restart.
func (h *testHerd) stop(name string) {
	h.mu.Lock()
	s := h.servers[name]
	delete(h.servers, name)
	h.mu.Unlock()
	s.Close()
}

func (h *testHerd) addr(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.addrs[name]; ok {
		return a
	}
	return "127.0.0.1:1" // not started yet: the dial fails and is retried
}

func posix(tm time.Time) string { return fmt.Sprintf("%d.%09d", tm.Unix(), tm.Nanosecond()) }

func TestIAMATReply(t *testing.T) {
	addr := startHill(t, "")
	for _, ctime := range []string{
		posix(time.Now().Add(-time.Second)), posix(time.Now().Add(time.Hour)), "1621464827.959498503", "-5.5", "7",
	} {
		before := codec.FromTime(time.Now())
		got := testutil.Exchange(t, addr, "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 "+ctime+"\n")
		after := codec.FromTime(time.Now())
		f := strings.Fields(got)
		if len(f) != 6 || got != strings.Join(f, " ")+"\n" || f[0] != "AT" || f[1] != "Hill" ||
			f[3] != "kiwi.cs.ucla.edu" || f[4] != "+34.068930-118.445127" || f[5] != ctime {
			t.Errorf("reply %q is not AT Hill <skew> kiwi.cs.ucla.edu +34.068930-118.445127 %s", got, ctime)
			continue
		}
		// The skew is exact: client time + skew is the receive time, inside the exchange.
		ct, _ := codec.ParseTime([]byte(ctime))
		lo := codec.AppendSkew(nil, before, ct)
		hi := codec.AppendSkew(nil, after, ct)
		skew, err := codec.ParseTime([]byte(f[2]))
		loT, _ := codec.ParseTime(lo)
		hiT, _ := codec.ParseTime(hi)
		if err != nil || len(f[2]) < 12 || f[2][len(f[2])-10] != '.' || skew.Compare(loT) < 0 || skew.Compare(hiT) > 0 {
			t.Errorf("skew %q: want a signed 9-digit value in [%s, %s]", f[2], lo, hi)
		}
	}
}

// TestProtocol is the table of protocol cases: each is one connection's input and the exact
// output, after a setup that stores kiwi (whose AT line replaces {at}).
func TestProtocol(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{})
	h := newHerd(t, testConfig(t, base, "max_line = 100", testutil.Node{Name: "Hill"}))
	addr := h.start("Hill")
	at := strings.TrimSuffix(testutil.Exchange(t, addr, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"), "\n")
	if rec, ok := h.servers["Hill"].Record("kiwi"); !ok || rec != at {
		t.Errorf("Record(kiwi) = %q, %v; want %q", rec, ok, at)
	}
	places := func(bound int) string {
		body, err := codec.AppendPlacesBody(nil, fake.LegacyBody(34.068930, -118.445127, 10000, 20), bound)
		if err != nil {
			t.Fatal(err)
		}
		return at + "\n" + string(body) + "\n\n"
	}
	long := "IAMAT " + strings.Repeat("x", 200)
	for _, c := range []struct{ name, in, want string }{
		{"whatsat", "WHATSAT kiwi 10 3\n", places(3)},
		{"whatsat bound 20", "WHATSAT kiwi 10 20\n", places(20)},
		{"whatsat white space", " WHATSAT\tkiwi  10 1 \r\n", places(1)},
		{"whatsat at half-close", "WHATSAT kiwi 10 2", places(2)},
		{"pipelined", "WHATSAT kiwi 10 1\nWHATSAT kiwi 10 2\n", places(1) + places(2)},
		{"unknown command", "FOO bar\n", "? FOO bar\n"},
		{"lower case", "iamat kiwi +1+1 1\n", "? iamat kiwi +1+1 1\n"},
		{"too few fields", "IAMAT kiwi +1+1\n", "? IAMAT kiwi +1+1\n"},
		{"too many fields", "IAMAT kiwi +1+1 1 2\n", "? IAMAT kiwi +1+1 1 2\n"},
		{"unsigned location", "IAMAT kiwi 34.068930-118.445127 1\n", "? IAMAT kiwi 34.068930-118.445127 1\n"},
		{"latitude range", "IAMAT kiwi +90.000001+0 1\n", "? IAMAT kiwi +90.000001+0 1\n"},
		{"longitude range", "IAMAT kiwi +0-180.5 1\n", "? IAMAT kiwi +0-180.5 1\n"},
		{"10 fraction digits", "IAMAT kiwi +1+1 1.0123456789\n", "? IAMAT kiwi +1+1 1.0123456789\n"},
		{"exponent", "IAMAT kiwi +1+1 1e9\n", "? IAMAT kiwi +1+1 1e9\n"},
		{"unknown client", "WHATSAT nobody 10 5\n", "? WHATSAT nobody 10 5\n"},
		{"radius 0", "WHATSAT kiwi 0 5\n", "? WHATSAT kiwi 0 5\n"},
		{"radius 50.1", "WHATSAT kiwi 50.1 5\n", "? WHATSAT kiwi 50.1 5\n"},
		{"bound 21", "WHATSAT kiwi 10 21\n", "? WHATSAT kiwi 10 21\n"},
		{"bound 0", "WHATSAT kiwi 10 0\n", "? WHATSAT kiwi 10 0\n"},
		{"AT from a non-neighbour", "AT Hill +0.1 kiwi +1+1 1\n", "? AT Hill +0.1 kiwi +1+1 1\n"},
		{"empty line", "\n", "? \n"},
		{"white space only", "   \n", "?    \n"},
		{"fractional bound", "WHATSAT kiwi 10 2.5\n", "? WHATSAT kiwi 10 2.5\n"},
		{"binary garbage", "\x00\x01\x02\xff\xfeIA\x80\nx\n", "? \x00\x01\x02\xff\xfeIA\x80\n"},
		{"CRLF", "FOO\r\n", "? FOO\n"},
		{"no newline", "FOO", "? FOO\n"},
		{"lines after an invalid one", "FOO\nIAMAT kiwi +1+1 1\n", "? FOO\n"},
		{"replies before an invalid one", "WHATSAT kiwi 10 1\nFOO\nWHATSAT kiwi 10 1\n", places(1) + "? FOO\n"},
		{"line too long", long + "\nIAMAT kiwi +1+1 1\n", "? " + long[:64] + "\n"},
		{"line too long, no newline", long, "? " + long[:64] + "\n"},
	} {
		if got := testutil.Exchange(t, addr, c.in); got != c.want {
			t.Errorf("%s: reply to %q =\n%q\nwant\n%q", c.name, c.in, got, c.want)
		}
	}
	if reqs := f.Requests(); len(reqs) == 0 || !reqs[0].AsksNearby("34.068930,-118.445127", "10000", "test-key") {
		t.Errorf("Places asked %+v, want a search near UCLA within 10000 m with the key", reqs)
	}
}

// TestPipelinedOrder: a WHATSAT waiting on a slow Places holds the replies after it.
func TestPipelinedOrder(t *testing.T) {
	_, base := fake.StartTest(t, fake.Options{Delay: 200 * time.Millisecond, Results: 1})
	addr := newHerd(t, testConfig(t, base, "", testutil.Node{Name: "Hill"})).start("Hill")
	testutil.Exchange(t, addr, "IAMAT a +1+1 1\n")
	got := testutil.Exchange(t, addr, "IAMAT b +2+2 2\nWHATSAT a 5 1\nIAMAT c +3+3 3\nWHATSAT b 5 1\nIAMAT d +4+4 4")
	var order []string
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "AT ") {
			order = append(order, strings.Fields(line)[3])
		}
	}
	if want := "b a c b d"; strings.Join(order, " ") != want {
		t.Errorf("AT lines for %v, want %s; reply:\n%s", order, want, got)
	}
	if !strings.HasSuffix(got, " d +4+4 4\n") {
		t.Errorf("the last line (sent without a newline before the half-close) was not answered last: %q", got)
	}
}

func TestPlacesFailures(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{})
	addr := newHerd(t, testConfig(t, base, "", testutil.Node{Name: "Hill"})).start("Hill")
	at := strings.TrimSuffix(testutil.Exchange(t, addr, "IAMAT kiwi +34.068930-118.445127 1\n"), "\n")
	for _, c := range []struct {
		name   string
		opts   fake.Options
		status string
	}{
		{"denied passes through", fake.Options{Status: "REQUEST_DENIED", StatusMessage: "The provided API key is invalid."}, `"status" : "REQUEST_DENIED"`},
		{"HTTP error", fake.Options{HTTPStatus: 500}, `"status" : "UNKNOWN_ERROR"`},
		{"not JSON", fake.Options{Malformed: true}, `"status" : "UNKNOWN_ERROR"`},
		{"timeout", fake.Options{Hang: true}, `"status" : "UNKNOWN_ERROR"`},
	} {
		f.Set(c.opts)
		got := testutil.Exchange(t, addr, "WHATSAT kiwi 1.5 3\n")
		body, ok := strings.CutPrefix(got, at+"\n")
		if !ok || !strings.HasSuffix(body, "}\n\n") || strings.Count(body, "\n\n") != 1 || !strings.Contains(body, c.status) {
			t.Errorf("%s: reply %q, want the AT line, a body with %s, and a blank line", c.name, got, c.status)
		}
	}
}

func TestFlooding(t *testing.T) {
	// A chain Hill - Jaquez - Smith, plus Campbell that starts late.
	h := newHerd(t, testConfig(t, "", "backoff_base = \"20ms\"\nbackoff_cap = \"200ms\"",
		testutil.Node{Name: "Hill", Peers: []string{"Jaquez"}}, testutil.Node{Name: "Jaquez", Peers: []string{"Smith"}}, testutil.Node{Name: "Smith", Peers: []string{"Campbell"}}, testutil.Node{Name: "Campbell"}))
	h.reserve("Hill", "Jaquez", "Smith", "Campbell")
	hill, smith := h.start("Hill"), h.start("Smith")
	jaquez := h.start("Jaquez")
	at := strings.TrimSuffix(testutil.Exchange(t, hill, "IAMAT kiwi +34.068930-118.445127 1000.5\n"), "\n")
	testutil.WaitFor(t, "Hill's update at Smith", func() bool { return testutil.Knows(smith, "kiwi", at) })
	at2 := strings.TrimSuffix(testutil.Exchange(t, smith, "IAMAT kiwi +1-1 1000.6\n"), "\n")
	testutil.WaitFor(t, "Smith's update at Hill", func() bool { return testutil.Knows(hill, "kiwi", at2) })
	testutil.Exchange(t, jaquez, "IAMAT kiwi +2-2 999\n") // older: dropped, not flooded
	for _, a := range []string{hill, jaquez, smith} {
		if !testutil.Knows(a, "kiwi", at2) {
			t.Errorf("an older update replaced %q at %s", at2, a)
		}
	}
	// A server that comes up later gets what its neighbour holds by the resync, with no
	// new update; so does one that restarts.
	campbell := h.start("Campbell")
	testutil.WaitFor(t, "the resync to Campbell", func() bool { return testutil.Knows(campbell, "kiwi", at2) })
	h.stop("Jaquez")
	at3 := strings.TrimSuffix(testutil.Exchange(t, hill, "IAMAT other +3-3 5\n"), "\n")
	jaquez = h.start("Jaquez")
	testutil.WaitFor(t, "the resync to the restarted Jaquez", func() bool { return testutil.Knows(jaquez, "other", at3) && testutil.Knows(jaquez, "kiwi", at2) })
	testutil.WaitFor(t, "Hill's update through the restarted Jaquez", func() bool { return testutil.Knows(campbell, "other", at3) })
}

// TestLinkAcceptsAT: AT lines from a neighbour's host are applied with no reply, by the
// newer rule (exact times, then the larger line).
func TestLinkAcceptsAT(t *testing.T) {
	h := newHerd(t, testConfig(t, "", "", testutil.Node{Name: "Hill", Peers: []string{"Jaquez"}}, testutil.Node{Name: "Jaquez"}))
	h.reserve("Jaquez") // never started: Hill's link keeps redialling, which is fine
	hill := h.start("Hill")
	testutil.CheckNewerRule(t, hill)
}

func TestMaxClients(t *testing.T) {
	addr := startHill(t, "max_clients = 1")
	first := testutil.Dial(t, addr)
	// The first client is served...
	first.Send("IAMAT a +1+1 1\n")
	first.Line()
	// ...and a second one at the same time is closed without a reply.
	if got, err := testutil.TryExchange(addr, "IAMAT b +1+1 1\n"); got != "" {
		t.Errorf("a client over max_clients got %q (%v)", got, err)
	}
	first.TCP.Close()
	testutil.WaitFor(t, "a client slot to free up", func() bool {
		got, _ := testutil.TryExchange(addr, "IAMAT b +1+1 1\n")
		return strings.HasPrefix(got, "AT Hill ")
	})
}

// waitingOnPlaces starts Hill with a Places fake of options o, and returns a client whose
// WHATSAT has reached Places.
func waitingOnPlaces(t *testing.T, o fake.Options) (*testHerd, *testutil.Conn) {
	t.Helper()
	f, base := fake.StartTest(t, o)
	h := newHerd(t, testConfig(t, base, "", testutil.Node{Name: "Hill"}))
	addr := h.start("Hill")
	testutil.Exchange(t, addr, "IAMAT a +1+1 1\n")
	c := testutil.Dial(t, addr)
	c.Send("WHATSAT a 1 1\n")
	testutil.WaitFor(t, "the WHATSAT to reach Places", func() bool { return f.Count() > 0 })
	return h, c
}

func TestCloseAnswersWhatIsOwed(t *testing.T) {
	h, c := waitingOnPlaces(t, fake.Options{Delay: 300 * time.Millisecond, Results: 1})
	h.stop("Hill")
	got, err := c.ReadRest()
	if err != nil || !strings.HasPrefix(got, "AT Hill ") || !strings.HasSuffix(got, "}\n\n") {
		t.Errorf("after Close: %q, %v; want the whole WHATSAT reply", got, err)
	}
}

func TestLineLimit(t *testing.T) {
	addr := startHill(t, "")
	// A line of exactly max_line (4096) bytes is served; one byte more is not. (Client IDs
	// are at most 256 bytes: the location's fraction digits make the length.)
	line := "IAMAT x +1." + strings.Repeat("0", 4096-len("IAMAT x +1.+1.0 1")) + "+1.0 1"
	if got := testutil.Exchange(t, addr, line+"\n"); !strings.HasPrefix(got, "AT Hill ") {
		t.Errorf("line of 4096 bytes: %.40q", got)
	}
	if got := testutil.Exchange(t, addr, line+"x\n"); got != "? "+line[:64]+"\n" {
		t.Errorf("line of 4097 bytes: %q", got)
	}
	// A 1 MiB line: the server answers and closes without reading it all.
	c := testutil.Dial(t, addr)
	big := bytes.Repeat([]byte("A"), 1<<20)
	go c.TCP.Write(append(big, '\n'))
	got, _ := c.ReadRest() // a reset may follow: the rest of the line was never read
	if want := "? " + string(big[:64]) + "\n"; got != want {
		t.Errorf("1 MiB line: %.80q", got)
	}
}

// Every way of cutting a stream into two writes gives the same replies.
func TestSplitWrites(t *testing.T) {
	addr := startHill(t, "")
	stream := "IAMAT a +1+1 1\r\nIAMAT b +2+2 2\n"
	for cut := 1; cut < len(stream); cut++ {
		c := testutil.Dial(t, addr)
		c.Send(stream[:cut])
		c.Send(stream[cut:])
		c.TCP.CloseWrite()
		got, err := c.ReadRest()
		c.TCP.Close()
		lines := strings.Split(got, "\n")
		if err != nil || len(lines) != 3 || !strings.HasSuffix(lines[0], " a +1+1 1") || !strings.HasSuffix(lines[1], " b +2+2 2") || lines[2] != "" {
			t.Errorf("cut %d: %q, %v", cut, got, err)
		}
	}
}

// AT lines are accepted only from a neighbour's host.
func TestATFromNeighbourHostOnly(t *testing.T) {
	at := "AT Other +0.500000000 z +1+1 1621464827"
	far := testConfig(t, "", "", testutil.Node{Name: "Hill", Peers: []string{"Far"}}, testutil.Node{Name: "Far"})
	far.Server("Far").Addr = "192.0.2.1:9" // TEST-NET-1: never dialled successfully
	s, err := New(far, "Hill", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Close()
	if got := testutil.Exchange(t, s.Addr().String(), at+"\n"); got != "? "+at+"\n" {
		t.Errorf("AT from a stranger: %q", got)
	}
}

// A client that sends and never reads is cut off once its replies stay unwritten; others are
// served meanwhile.
func TestNonReadingClientCutOff(t *testing.T) {
	h := newHerd(t, testConfig(t, "", "max_unsent = 65536", testutil.Node{Name: "Hill"}))
	h.writeWait = 200 * time.Millisecond
	addr := h.start("Hill")
	c := testutil.Dial(t, addr).TCP
	// Large replies (offline Places, 20 results each) fill the socket buffers fast.
	testutil.Exchange(t, addr, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n")
	chunk := []byte(strings.Repeat("WHATSAT kiwi 50 20\n", 100))
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
	}()
	if got := testutil.Exchange(t, addr, "IAMAT other +1+1 1\n"); !strings.HasPrefix(got, "AT Hill ") {
		t.Errorf("another client got %q", got)
	}
	testutil.Recv(t, errc, "a client that never reads to be cut off")
}

// A neighbour that stops reading does not grow the server's memory: its link is closed at
// max_link_unsent (or when its output stays unwritten) and redialled.
func TestNonReadingNeighbour(t *testing.T) {
	ln := testutil.Listen(t)
	accepted := testutil.Accepted(t, ln) // never read
	h := newHerd(t, testConfig(t, "", "max_link_unsent = 262144\nbackoff_base = \"10ms\"\nbackoff_cap = \"50ms\"",
		testutil.Node{Name: "Hill", Peers: []string{"Far"}}, testutil.Node{Name: "Far"}))
	h.writeWait = 200 * time.Millisecond
	h.addrs["Far"] = ln.Addr().String()
	addr := h.start("Hill")
	first := <-accepted
	defer first.Close()
	// 12 MB of updates, more than loopback's socket buffers hold (client IDs of 250 bytes:
	// the longest are 256).
	id := strings.Repeat("k", 245)
	var b strings.Builder
	for i := range 42000 {
		fmt.Fprintf(&b, "IAMAT %s%d +1+1 1\n", id, i)
	}
	c := testutil.Dial(t, addr).TCP
	go func() {
		io.WriteString(c, b.String())
		c.CloseWrite()
	}()
	go io.Copy(io.Discard, c)
	testutil.Recv(t, accepted, "the link to a neighbour that never reads to be closed and redialled").Close()
}

// Shutdown with a grace time that runs out closes the clients still owed a reply.
func TestShutdownGraceRunsOut(t *testing.T) {
	h, c := waitingOnPlaces(t, fake.Options{Hang: true})
	h.mu.Lock()
	s := h.servers["Hill"]
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want a deadline error", err)
	}
	if got, err := c.ReadRest(); len(got) != 0 {
		t.Errorf("a client cut off at shutdown got %q (%v)", got, err)
	}
}
