package herd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/internal/testutil"
)

// defaultHerdConfig is the default five-server herd of SPEC §1 on 127.0.0.1:0, with no logs
// and quick redials.
func defaultHerdConfig() *Config {
	cfg := DefaultConfig()
	for i := range cfg.Servers {
		cfg.Servers[i].Addr, cfg.Servers[i].PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	cfg.Log.Dir = "off"
	cfg.Limits.BackoffBase = 10 * time.Millisecond
	cfg.Limits.BackoffCap = 100 * time.Millisecond
	return cfg
}

// startDefaultHerd starts the default five-server herd of SPEC §1 on 127.0.0.1:0.
func startDefaultHerd(t *testing.T) *Herd {
	t.Helper()
	return startHerd(t, defaultHerdConfig())
}

// floodBatch sends c one write of 100 IAMATs of about 1 KB, for clients numbered from n, reads
// their replies, and returns the number after the last.
func floodBatch(c *testutil.Conn, n int) int {
	pad := paddedLocation(900)
	var batch bytes.Buffer
	for range 100 {
		fmt.Fprintf(&batch, "IAMAT p%d %s 5\n", n, pad)
		n++
	}
	c.Send(batch.String())
	for range 100 {
		c.Line()
	}
	return n
}

// waitRecord waits until every server in servers holds want for client.
func waitRecord(t *testing.T, servers []*Server, client, want string) {
	t.Helper()
	for _, s := range servers {
		testutil.WaitFor(t, fmt.Sprintf("%s to hold %q for %s", s.Name(), want, client), func() bool {
			got, _ := s.Record(client)
			return got == want
		})
	}
}

// iamat sends one IAMAT to s and returns the AT line of the reply (without "\n").
func iamat(t *testing.T, s *Server, client, loc, tm string) string {
	t.Helper()
	c := testutil.Dial(t, s.Addr().String())
	c.Send("IAMAT " + client + " " + loc + " " + tm + "\n")
	r := c.Line()
	if !strings.HasPrefix(r, "AT "+s.Name()+" ") {
		t.Fatalf("IAMAT reply %q", r)
	}
	c.TCP.Close()
	return strings.TrimSuffix(r, "\n")
}

func TestHerdUpdateReachesAll(t *testing.T) {
	h := startDefaultHerd(t)
	for i, s := range h.Servers() {
		client := fmt.Sprintf("c%d", i)
		line := iamat(t, s, client, "+1+1", fmt.Sprint(1000+i))
		waitRecord(t, h.Servers(), client, line)
	}
	for _, s := range h.Servers() {
		if up := s.Metrics().LinksUp.Load(); up != int64(len(DefaultConfig().Server(s.Name()).Peers)) {
			t.Errorf("%s: %d links up", s.Name(), up)
		}
	}
}

func TestHerdOlderNeverOverwritesNewer(t *testing.T) {
	h := startDefaultHerd(t)
	newer := iamat(t, h.Server("Hill"), "x", "+1+1", "200")
	waitRecord(t, h.Servers(), "x", newer)
	older := iamat(t, h.Server("Campbell"), "x", "+2+2", "100")
	if !strings.HasSuffix(older, " x +2+2 100") {
		t.Fatalf("the reply to an older IAMAT must describe it: %q", older)
	}
	// A marker sent after it travels the same links in order: once it is everywhere, the older
	// update would have arrived too, had it been flooded.
	marker := iamat(t, h.Server("Campbell"), "marker", "+1+1", "1")
	waitRecord(t, h.Servers(), "marker", marker)
	for _, s := range h.Servers() {
		if got, _ := s.Record("x"); got != newer {
			t.Errorf("%s holds %q, want %q", s.Name(), got, newer)
		}
	}
}

func TestHerdEqualTimesConverge(t *testing.T) {
	h := startDefaultHerd(t)
	var wg sync.WaitGroup
	lines := make([]string, len(h.Servers()))
	for i, s := range h.Servers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, s.Addr().String())
			c.Send(fmt.Sprintf("IAMAT e +%d+%d 300.5\n", i, i))
			lines[i] = strings.TrimSuffix(c.Line(), "\n")
		}()
	}
	wg.Wait()
	want := lines[0]
	for _, l := range lines[1:] {
		if l > want {
			want = l
		}
	}
	waitRecord(t, h.Servers(), "e", want)
}

// A server stopped and restarted gets every record back by resync.
func TestHerdRestartResync(t *testing.T) {
	h := startDefaultHerd(t)
	hill := h.Server("Hill")
	var want []string
	for i := range 20 {
		want = append(want, iamat(t, hill, fmt.Sprintf("r%d", i), "+1+1", "10"))
	}
	for i, l := range want {
		waitRecord(t, h.Servers(), fmt.Sprintf("r%d", i), l)
	}
	smith := h.Server("Smith")
	testutil.Stop(t, smith.Shutdown)
	late := iamat(t, hill, "late", "+3+3", "20")
	s2, err := NewServer(h.Config(), "Smith", WithProvider(stubProvider{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(); err != nil {
		t.Fatalf("restart on %s: %v", smith.Addr(), err)
	}
	defer testutil.Stop(t, s2.Shutdown)
	for i, l := range want {
		waitRecord(t, []*Server{s2}, fmt.Sprintf("r%d", i), l)
	}
	waitRecord(t, []*Server{s2}, "late", late)
}

// TestHerdPartitionHeals partitions the default herd with link faults, no server stopped:
// Hill and Jaquez on one side, Smith, Singleton and Campbell on the other (the links
// Hill-Smith and Jaquez-Singleton). Both sides take updates, some to the same clients; once
// healed, every server holds the newest record of every client. With LinkCut the links go
// down and are not redialled; with LinkDrops they stay up and lose what they carry.
func TestHerdPartitionHeals(t *testing.T) {
	for _, fault := range []LinkFault{LinkCut, LinkDrops} {
		t.Run(fault.String(), func(t *testing.T) { testPartitionHeals(t, fault) })
	}
}

func testPartitionHeals(t *testing.T, fault LinkFault) {
	h := startDefaultHerd(t)
	hill, jaquez, smith, singleton, campbell := h.Server("Hill"), h.Server("Jaquez"), h.Server("Smith"), h.Server("Singleton"), h.Server("Campbell")
	west, east := []*Server{hill, jaquez}, []*Server{smith, singleton, campbell}
	waitLinks(t, h)
	before := iamat(t, jaquez, "b", "+1+1", "5")
	waitRecord(t, h.Servers(), "b", before)
	cuts := [][2]string{{"Hill", "Smith"}, {"Jaquez", "Singleton"}}
	for _, c := range cuts {
		if err := h.SetLinkFault(c[0], c[1], fault); err != nil {
			t.Fatal(err)
		}
	}
	wantUp := map[*Server]int64{hill: 1, jaquez: 1, smith: 2, singleton: 2, campbell: 2}
	if fault == LinkDrops {
		wantUp = map[*Server]int64{hill: 2, jaquez: 2, smith: 3, singleton: 3, campbell: 2}
	}
	for s, n := range wantUp {
		testutil.WaitFor(t, s.Name()+"'s links during the partition", func() bool { return s.Metrics().LinksUp.Load() == n })
	}
	ups := hill.Metrics().LinkUps.Load() + jaquez.Metrics().LinkUps.Load()

	// Updates on both sides, each flooded on its own side only.
	w := iamat(t, hill, "w", "+1+1", "6")
	e := iamat(t, campbell, "e", "+1+1", "6")
	bWest := iamat(t, hill, "b", "+3+3", "6")     // newer than before, older than bEast
	bEast := iamat(t, campbell, "b", "+2+2", "7") // the newest for b
	cEast := iamat(t, smith, "c", "+4+4", "8")
	cWest := iamat(t, jaquez, "c", "+5+5", "9") // the newest for c
	waitRecord(t, west, "w", w)
	waitRecord(t, west, "b", bWest)
	waitRecord(t, west, "c", cWest)
	waitRecord(t, east, "e", e)
	waitRecord(t, east, "b", bEast)
	waitRecord(t, east, "c", cEast)
	for _, s := range west {
		if got, ok := s.Record("e"); ok {
			t.Errorf("%s holds %q from across the partition", s.Name(), got)
		}
	}
	for _, s := range east {
		if got, ok := s.Record("w"); ok {
			t.Errorf("%s holds %q from across the partition", s.Name(), got)
		}
	}
	if fault == LinkCut {
		if n := hill.Metrics().LinkUps.Load() + jaquez.Metrics().LinkUps.Load(); n != ups {
			t.Errorf("a cut link was redialled: %d link-ups during the partition", n-ups)
		}
	}

	for _, c := range cuts {
		if err := h.SetLinkFault(c[0], c[1], NoFault); err != nil {
			t.Fatal(err)
		}
	}
	waitRecord(t, h.Servers(), "w", w)
	waitRecord(t, h.Servers(), "e", e)
	waitRecord(t, h.Servers(), "b", bEast)
	waitRecord(t, h.Servers(), "c", cWest)
	waitLinks(t, h)
}

// waitLinks waits until every server of the default herd has all its links up.
func waitLinks(t *testing.T, h *Herd) {
	t.Helper()
	for _, s := range h.Servers() {
		n := int64(len(DefaultConfig().Server(s.Name()).Peers))
		testutil.WaitFor(t, s.Name()+"'s links", func() bool { return s.Metrics().LinksUp.Load() == n })
	}
}

// SetLinkFault names a neighbour; a link the server does not have is an error.
func TestSetLinkFaultUnknownPeer(t *testing.T) {
	h := startDefaultHerd(t)
	if err := h.Server("Hill").SetLinkFault("Campbell", LinkCut); err == nil {
		t.Error("a fault on a link Hill does not have: no error")
	}
	if err := h.SetLinkFault("Hill", "Nobody", LinkCut); err == nil {
		t.Error("a fault between Hill and a server not in the herd: no error")
	}
}

// sinkListener accepts connections and never reads from them, with a small receive buffer.
func sinkListener(t *testing.T) (ln net.Listener, accepted func() int) {
	t.Helper()
	ln, err := testutil.SmallReceiveBufferListen("127.0.0.1:0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	return ln, testutil.Serve(t, ln, nil)
}

// A neighbour that never reads its link does not make the sender hold its floods without
// bound: past max_link_unsent the link is closed (and redialled).
func TestNonReadingNeighbour(t *testing.T) {
	s, accepted := silentNeighbour(t, func(l *Limits) { l.MaxLinkUnsent = 256 << 10 })
	testutil.WaitFor(t, "the link", func() bool { return s.Metrics().LinksUp.Load() == 1 })
	c := testutil.Dial(t, s.Addr().String())
	n := 0
	for s.Metrics().LinkOverflows.Load() == 0 {
		if n > 200000 {
			t.Fatalf("no overflow after %d floods of 1 KB", n)
		}
		n = floodBatch(c, n)
	}
	testutil.WaitFor(t, "the redial", func() bool { return accepted() >= 2 })
	c.Send("IAMAT still +1+1 1\n")
	if got := c.Line(); !strings.HasPrefix(got, "AT A ") {
		t.Errorf("after the overflow: %q", got)
	}
}

// fillTable applies n records of about 600 bytes (clients <prefix><i>, padded locations, the
// same lines for every server) to s's table, which must not be running yet.
func fillTable(t testing.TB, s *Server, n int, prefix string) {
	t.Helper()
	pad := paddedLocation(600)
	for i := range n {
		line := fmt.Appendf(nil, "AT Origin +0.000000000 %s%06d %s 7", prefix, i, pad)
		m, err := codec.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		s.table.Apply(&m, line)
	}
}

// slowConn reads at most 16 KiB a millisecond: a neighbour slower than the loop can write.
type slowConn struct{ net.Conn }

func (c slowConn) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return c.Conn.Read(p[:min(len(p), 16<<10)])
}

// resyncToNeighbour starts server A with n records and a max_link_unsent of limit, linked to
// a neighbour played by the test with a small receive buffer (read slowly if slow) and an
// empty table, and checks that A's resync brings it every record on the first connection,
// its DONE last, with no overflow of the link's limit.
func resyncToNeighbour(t *testing.T, n, limit int, slow bool) {
	ln, err := testutil.SmallReceiveBufferListen("127.0.0.1:0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	conns, accepted := fakeNeighbour(t, "Peer", ln)
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"Peer"}}, ServerConfig{Name: "Peer", PeerAddr: ln.Addr().String()})
	cfg.Limits.MaxLinkUnsent = limit
	s, err := NewServer(cfg, "A", WithProvider(stubProvider{}), WithDebug(true))
	if err != nil {
		t.Fatal(err)
	}
	fillTable(t, s, n, "r")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, s.Shutdown) })
	p := testutil.Recv(t, conns, "the link")
	if slow {
		p.r = bufio.NewReaderSize(slowConn{p.c}, 64<<10)
	}
	p.send("DIGEST\n") // an empty table: A sends every record
	p.c.SetReadDeadline(time.Now().Add(testutil.Patience))
	seen := make(map[string]bool, n)
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d records: %v (%d link overflows, %d connections)", len(seen), err, s.Metrics().LinkOverflows.Load(), accepted())
		}
		switch f := strings.Fields(line); f[0] {
		case "AT":
			seen[f[3]] = true
		case "DONE":
			if len(seen) != n || f[1] != strconv.Itoa(n) {
				t.Fatalf("%q after %d records, want %d", line, len(seen), n)
			}
			if o := s.Metrics().LinkOverflows.Load(); o != 0 || accepted() != 1 {
				t.Errorf("%d link overflows and %d connections during a paced resync", o, accepted())
			}
			return
		}
	}
}

// paddedLocation returns a valid location of n bytes (n >= 8), made long by the fraction
// digits of its latitude: the way to make long valid lines, client IDs being at most
// MaxClientIDLen bytes.
func paddedLocation(n int) string { return "+1." + strings.Repeat("0", n-7) + "+1.0" }

// A resync bigger than max_link_unsent goes out paced by the link's write buffer, so it does
// not trip the limit, and the neighbour gets every record.
func TestBigResyncIsPaced(t *testing.T) {
	resyncToNeighbour(t, 20000, 1<<20, false)
}

// TestResyncUnderSmallLinkLimit: with a max_link_unsent below the old fixed pause mark of
// 256 KiB, a resync to a slow neighbour overflowed the limit, the link was dropped and the
// resync began again from the start, for ever (every connection carried a third of the
// records). The pause mark now comes from the limit.
func TestResyncUnderSmallLinkLimit(t *testing.T) {
	resyncToNeighbour(t, 12000, 200<<10, true)
}

// TestLongLineKeepsLinksUp: an IAMAT of max_line bytes makes an AT line longer than
// max_line; neighbours accept it (AT lines may be ATOverhead longer), so it crosses the herd
// and no link is closed for it.
func TestLongLineKeepsLinksUp(t *testing.T) {
	cfg := testConfig(t, "",
		ServerConfig{Name: strings.Repeat("A", MaxNameLen), Peers: []string{"B"}},
		ServerConfig{Name: "B", Peers: []string{"C"}},
		ServerConfig{Name: "C"})
	h := startHerd(t, cfg)
	all := h.Servers()
	testutil.WaitFor(t, "the links", func() bool {
		return all[0].Metrics().LinksUp.Load() == 1 && all[1].Metrics().LinksUp.Load() == 2 && all[2].Metrics().LinksUp.Load() == 1
	})
	ups := func() (n uint64) {
		for _, s := range all {
			n += s.Metrics().LinkUps.Load()
		}
		return n
	}
	before := ups()
	id, tm := strings.Repeat("k", MaxClientIDLen), "-1621464827.959498503"
	loc := paddedLocation(cfg.Limits.MaxLine - len("IAMAT   ") - len(id) - len(tm))
	c := testutil.Dial(t, all[0].Addr().String())
	c.Send("IAMAT " + id + " " + loc + " " + tm + "\n")
	at := strings.TrimSuffix(c.Line(), "\n")
	if !strings.HasPrefix(at, "AT "+all[0].Name()+" ") || len(at) <= cfg.Limits.MaxLine {
		t.Fatalf("reply of %d bytes: %.80q", len(at), at)
	}
	waitRecord(t, all, id, at)
	// A WHATSAT at the far end is answered with the long AT line.
	w := testutil.Dial(t, all[2].Addr().String())
	w.Send("WHATSAT " + id + " 10 5\n")
	if got := w.Reply(); !strings.HasPrefix(got, at+"\n{") {
		t.Errorf("WHATSAT reply %.100q", got)
	}
	if n := ups(); n != before {
		t.Errorf("links came up %d times since the IAMAT: a link was closed", n-before)
	}
	for _, s := range all {
		if n := s.Metrics().Invalid.Load(); n != 0 {
			t.Errorf("%s answered %d invalid lines", s.Name(), n)
		}
		if n := s.Metrics().LinksUp.Load(); n != int64(len(cfg.Server(s.Name()).Peers)) {
			t.Errorf("%s: %d links up", s.Name(), n)
		}
	}
}

// TestLinkOverflowCountedOnce: a link past max_link_unsent is down at once: its resync stops,
// nothing more is written to it, and each drop counts one overflow (LinkOverflows never
// exceeds the times the link went down).
func TestLinkOverflowCountedOnce(t *testing.T) {
	s, accepted := silentNeighbour(t, func(l *Limits) {
		l.MaxLinkUnsent = MinLinkUnsent(l.MaxLine)
		l.BackoffBase, l.BackoffCap = time.Millisecond, 5*time.Millisecond
	})
	c := testutil.Dial(t, s.Addr().String())
	for n := 0; s.Metrics().LinkOverflows.Load() < 3 || accepted() < 3; {
		if n > 200000 {
			t.Fatalf("%d overflows and %d connections after %d floods of 1 KB", s.Metrics().LinkOverflows.Load(), accepted(), n)
		}
		n = floodBatch(c, n)
	}
	m := s.Metrics()
	// Read LinksUp before LinkUps, LinkOverflows last: a link coming up in between only helps.
	up := m.LinksUp.Load()
	downs := m.LinkUps.Load() - uint64(up)
	if over := m.LinkOverflows.Load(); over > downs+1 { // +1: one drop may be under way
		t.Errorf("%d overflows counted for %d drops", over, downs)
	}
}

// TestATLineWhiteSpaceNormalised: an AT line with other white space inside (another
// implementation's) is stored and flooded in canonical form, so WHATSAT replies carry it.
func TestATLineWhiteSpaceNormalised(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	h := startHerd(t, cfg)
	a, b := h.Server("A"), h.Server("B")
	testutil.WaitFor(t, "the links", func() bool { return a.Metrics().LinksUp.Load() == 1 && b.Metrics().LinksUp.Load() == 1 })
	want := "AT Zed +0.000000000 fl3 +1+1 5"
	peer := testutil.Dial(t, a.Addr().String()) // loopback: a neighbour's host
	peer.Send(" AT\tZed  +0.000000000 \vfl3\t\t+1+1 5 \r\n")
	waitRecord(t, []*Server{a, b}, "fl3", want)
	c := testutil.Dial(t, b.Addr().String())
	c.Send("WHATSAT fl3 10 1\n")
	if got := c.Reply(); !strings.HasPrefix(got, want+"\n{") {
		t.Errorf("WHATSAT reply %q", got)
	}
}
