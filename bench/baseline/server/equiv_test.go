package server

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// The hosts of the equivalence test: clients connect from loopback, the neighbour "Peer"
// listens on (and its host connects from) 127.0.0.2, so that both kinds of connection reach
// the servers on one machine.
var (
	clientHost    = net.IPv4(127, 0, 0, 1)
	neighbourHost = net.IPv4(127, 0, 0, 2)
)

// sink listens for a server's link on the neighbour's host. The test accepts the link
// only once the corpus is through (the kernel has completed the handshake, so the link is
// up meanwhile) and reads the floods from it.
func sink(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(neighbourHost.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// floods accepts the link at ln and returns what was flooded on it up to the line that holds
// last.
func floods(t *testing.T, ln net.Listener, last string) string {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(c)
	var b strings.Builder
	for !strings.Contains(b.String(), last) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("floods: %v after %q", err, b.String())
		}
		b.WriteString(line)
	}
	return b.String()
}

// TestSameAnswersAsReactor runs one corpus of lines through the reactor server (package herd)
// and this baseline, with one fixed clock and one Places fake, and demands that they answer
// every input with the same bytes, flood the same lines to their neighbour and end up holding
// the same records. Both take their answers from herd.Core: this test keeps the front ends
// around it honest (framing, half-close, order, what is stored and flooded).
func TestSameAnswersAsReactor(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{})
	cfg := testConfig(t, base, "max_line = 100", testutil.Node{Name: "Hill", Peers: []string{"Peer"}}, testutil.Node{Name: "Peer"})
	prov, err := places.New(places.Config{Provider: "google", URL: base, Key: "test-key", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return time.Unix(1621464828, 223371889) }
	reactorSink, baselineSink := sink(t), sink(t)
	// The reactor server links with Peer as with a server of another implementation: bare
	// AT lines on its client address, which the test reads.
	cfg.Server("Peer").Addr = reactorSink.Addr().String()
	cfg.Server("Peer").Link = herd.LinkPlain

	rs, err := herd.NewServer(cfg, "Hill", herd.WithProvider(prov), herd.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rs.Shutdown(ctx); err != nil {
			t.Errorf("reactor server shutdown: %v", err)
		}
	}()
	bs, err := New(cfg, "Hill", prov, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	bs.SetPeerAddr(func(string) string { return baselineSink.Addr().String() })
	bs.SetClock(clock)
	bs.Start()
	defer bs.Close()
	testutil.WaitFor(t, "the reactor server's link", func() bool { return rs.Metrics().LinksUp.Load() == 1 })
	testutil.WaitFor(t, "the baseline's link", func() bool {
		bs.mu.Lock()
		defer bs.mu.Unlock()
		return bs.links[0].up
	})

	kiwi := "IAMAT kiwi +34.068930-118.445127 1621464827.959498503"
	maxID := strings.Repeat("x", 100-len("IAMAT  +1+1 1")) // makes an IAMAT of max_line bytes
	longAT := "AT Zed +0.1 " + strings.Repeat("y", 228-len("AT Zed +0.1  +1+1 5")) + " +1+1 5"
	for _, c := range []struct {
		name   string
		from   net.IP
		in     string
		reply  bool          // a reply is expected (so that two silent servers do not agree)
		places *fake.Options // set on the Places fake first
	}{
		{"IAMAT", clientHost, kiwi + "\n", true, nil},
		{"IAMAT again, not newer", clientHost, kiwi + "\n", true, nil},
		{"IAMAT older", clientHost, "IAMAT kiwi +34.068930-118.445127 1621464827.9\n", true, nil},
		{"IAMAT odd white space", clientHost, " \tIAMAT  lime\v+1-1 1621464800 \r\n", true, nil},
		{"IAMAT in the future", clientHost, "IAMAT soon +1+1 1621464900.5\n", true, nil},
		{"IAMAT past max_clock_skew", clientHost, "IAMAT zed +00+000 999999999999999999\n", true, nil},
		{"IAMAT just past max_clock_skew", clientHost, "IAMAT zed +1+1 1621468428.223371890\n", true, nil},
		{"AT past max_clock_skew", neighbourHost, "AT Zed +0.1 zed +1+1 1621468428.223371890\n", false, nil},
		{"IAMAT of max_line bytes", clientHost, "IAMAT " + maxID + " +1+1 1\n", true, nil},
		{"IAMAT of max_line+1 bytes", clientHost, "IAMAT " + maxID + "x +1+1 1\nIAMAT after +1+1 1\n", true, nil},
		{"bad location", clientHost, "IAMAT bad 34.068930-118.445127 1\n", true, nil},
		{"exponent time", clientHost, "IAMAT x +1+1 1e9\n", true, nil},
		{"lower case", clientHost, "iamat x +1+1 1\n", true, nil},
		{"too few fields", clientHost, "IAMAT x +1+1\n", true, nil},
		{"latitude range", clientHost, "IAMAT x +90.000001+0 1\n", true, nil},
		{"client ID with NUL", clientHost, "IAMAT ki\x00wi +1+1 1\n", true, nil},
		{"client ID with an escape", clientHost, "WHATSAT \x1b[2Jkiwi 10 1\n", true, nil},
		{"client ID not UTF-8", clientHost, "IAMAT ki\xffwi +1+1 1\n", true, nil},
		{"client ID in UTF-8", clientHost, "IAMAT Zürich +1+1 1\n", true, nil},
		{"AT with a control in its client ID", neighbourHost, "AT Zed +0.1 ki\x7fwi +1+1 5\n", true, nil},
		{"WHATSAT", clientHost, "WHATSAT kiwi 10 3\n", true, nil},
		{"pipelined", clientHost, "WHATSAT kiwi 10 1\nWHATSAT lime 50 20\nIAMAT pipe +2+2 5\nWHATSAT pipe 1 2\n", true, nil},
		{"WHATSAT unknown client", clientHost, "WHATSAT nobody 10 5\n", true, nil},
		{"WHATSAT radius 0", clientHost, "WHATSAT kiwi 0 5\n", true, nil},
		{"WHATSAT radius 50.1", clientHost, "WHATSAT kiwi 50.1 5\n", true, nil},
		{"WHATSAT bound 21", clientHost, "WHATSAT kiwi 10 21\n", true, nil},
		{"WHATSAT at half-close", clientHost, "IAMAT half +3+3 3\nWHATSAT half 5 2", true, nil},
		{"Places denies", clientHost, "WHATSAT kiwi 10 3\n", true, &fake.Options{Status: "REQUEST_DENIED", StatusMessage: "The provided API key is invalid."}},
		{"Places HTTP error", clientHost, "WHATSAT kiwi 10 3\n", true, &fake.Options{HTTPStatus: 500}},
		{"Places not JSON", clientHost, "WHATSAT kiwi 10 3\n", true, &fake.Options{Malformed: true}},
		{"Places back", clientHost, "WHATSAT kiwi 10 4\n", true, &fake.Options{}},
		{"nothing", clientHost, "", false, nil},
		{"empty line", clientHost, "\n", true, nil},
		{"white space line", clientHost, "  \t \n", true, nil},
		{"lines after an invalid one", clientHost, "FOO\nIAMAT after +1+1 1\n", true, nil},
		{"replies before an invalid one", clientHost, "IAMAT pre +1+1 1\nFOO\nIAMAT after +1+1 1\n", true, nil},
		{"binary garbage", clientHost, "\x00\x01\xff\xfeIA\x80\nx\n", true, nil},
		{"no newline", clientHost, "IAMAT tail +1+1 1\r", true, nil},
		{"AT from a client's host", clientHost, "AT Zed +0.1 kiwi +1+1 9999999999\n", true, nil},
		{"AT from a neighbour", neighbourHost, "AT Zed +0.000000001 fl3 +1+1 5\n", false, nil},
		{"AT odd white space", neighbourHost, " AT\tZed  +0.5 \vfl4\t\t+1+1 5 \r\n", false, nil},
		{"AT not newer", neighbourHost, "AT Old +0.1 kiwi +9+9 1\n", false, nil},
		{"AT same time, larger line", neighbourHost, "AT Zed +0.1 fl3 +1+1 5\n", false, nil},
		{"AT same time, smaller line", neighbourHost, "AT Zed +0.0 fl3 +1+1 5\n", false, nil},
		{"AT of max_line+128 bytes", neighbourHost, longAT + "\n", false, nil},
		{"AT one byte longer", neighbourHost, longAT + "5\n", true, nil},
		{"AT after much white space", neighbourHost, strings.Repeat(" ", 110) + "AT Zed +0.1 fl6 +1+1 5\n", false, nil},
		{"AT with a float skew (Peer is a plain peer)", neighbourHost, "AT Py +1.1e-05 fl5 +1+1 5\n", false, nil},
		{"AT with a name appended", neighbourHost, "AT Py +0.5 fl8 +1+1 5 Py\n", false, nil},
		{"AT at half-close", neighbourHost, "AT Zed +0.1 fl7 +1+1 5", false, nil},
		{"IAMAT from a neighbour's host", neighbourHost, "IAMAT nb +1+1 1\n", true, nil},
		{"WHATSAT from a neighbour's host", neighbourHost, "WHATSAT fl4 5 1\n", true, nil},
		{"WHATSAT for a neighbour's record", clientHost, "WHATSAT fl6 5 2\n", true, nil},
		{"marker", clientHost, "IAMAT zz-marker +1+1 1\n", true, nil},
	} {
		if c.places != nil {
			f.Set(*c.places)
		}
		got, err := testutil.TryExchangeFrom(c.from, rs.Addr().String(), c.in)
		if err != nil {
			t.Fatalf("%s: reactor server: %v (got %q)", c.name, err, got)
		}
		want, err := testutil.TryExchangeFrom(c.from, bs.Addr().String(), c.in)
		if err != nil {
			t.Fatalf("%s: baseline: %v (got %q)", c.name, err, want)
		}
		if got != want {
			t.Errorf("%s: %q\nreactor:  %q\nbaseline: %q", c.name, c.in, got, want)
		}
		if (got != "") != c.reply {
			t.Errorf("%s: %q: reply %q", c.name, c.in, got)
		}
	}

	if r, _ := rs.Record("fl8"); r != "AT Py +0.5 fl8 +1+1 5" {
		t.Errorf("a plain peer's line with a name appended is stored as %q, want its six fields", r)
	}
	// The floods: every stored record, in the order stored, the marker last.
	r, b := floods(t, reactorSink, "zz-marker"), floods(t, baselineSink, "zz-marker")
	if r != b {
		t.Errorf("floods differ:\nreactor:\n%s\nbaseline:\n%s", r, b)
	}
	if n := strings.Count(r, "\n"); n != 19 {
		t.Errorf("%d lines flooded, want 19:\n%s", n, r)
	}
	for _, id := range []string{"kiwi", "lime", "soon", maxID, maxID + "x", "pipe", "half", "Zürich", "ki\x00wi", "ki\x7fwi",
		"tail", "pre", "nb", "fl3", "fl4", "fl5", "fl6", "fl7", "fl8", strings.Repeat("y", 228-len("AT Zed +0.1  +1+1 5")),
		"after", "x", "bad", "nobody", "zed", "zz-marker"} {
		r, rok := rs.Record(id)
		b, bok := bs.Record(id)
		if r != b || rok != bok {
			t.Errorf("record of %.20q: reactor %q %v, baseline %q %v", id, r, rok, b, bok)
		}
	}
}
