package asyncio_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// oneScript starts one Python server "A" of script (server.py or best.py) with no neighbours
// and returns its address.
func oneScript(t *testing.T, script string, cfg testutil.Config, extra ...string) string {
	t.Helper()
	needPython(t)
	addr := testutil.FreeAddr(t)
	cfg.Nodes = []testutil.Node{{Name: "A", Addr: addr}}
	startScript(t, script, cfg.Write(t), "A", extra...)
	return addr
}

// eachDesign runs test once for each Python design, as a subtest named after its script.
func eachDesign(t *testing.T, test func(t *testing.T, script string)) {
	for _, d := range designs {
		t.Run(d, func(t *testing.T) { test(t, d) })
	}
}

func TestIAMATReply(t *testing.T) {
	eachDesign(t, testIAMATReply)
}

func testIAMATReply(t *testing.T, script string) {
	for _, loop := range []string{"asyncio", "uvloop"} {
		t.Run(loop, func(t *testing.T) {
			var extra []string
			if loop == "uvloop" {
				needPython(t, "uvloop")
				extra = []string{"--uvloop"}
			}
			addr := oneScript(t, script, testutil.Config{}, extra...)
			for _, c := range []struct {
				name  string
				ctime func(now time.Time) string
			}{
				{"past", func(now time.Time) string { return posix(now.Add(-time.Second)) }},
				{"future", func(now time.Time) string { return posix(now.Add(time.Hour)) }},
				{"whole seconds", func(now time.Time) string { return strconv.FormatInt(now.Unix()-5, 10) }},
				{"one digit", func(now time.Time) string { return posix(now)[:12] }},
			} {
				ctime := c.ctime(time.Now())
				before := time.Now()
				got := testutil.Exchange(t, addr, "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 "+ctime+"\n")
				after := time.Now()
				if err := checkAT(got, "A", "kiwi.cs.ucla.edu", "+34.068930-118.445127", ctime, before, after); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	eachDesign(t, testInvalid)
}

func testInvalid(t *testing.T, script string) {
	addr := oneScript(t, script, testutil.Config{Limits: "max_line = 100"})
	testutil.Exchange(t, addr, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n")
	long := "IAMAT " + strings.Repeat("x", 200)
	for _, c := range []struct{ in, want string }{
		{"FOO bar\n", "? FOO bar\n"},
		{"iamat kiwi +34.068930-118.445127 1\n", "? iamat kiwi +34.068930-118.445127 1\n"},
		{"IAMAT kiwi +34.068930-118.445127\n", "? IAMAT kiwi +34.068930-118.445127\n"},
		{"IAMAT kiwi +34.068930-118.445127 1 2\n", "? IAMAT kiwi +34.068930-118.445127 1 2\n"},
		{"IAMAT kiwi 34.068930-118.445127 1\n", "? IAMAT kiwi 34.068930-118.445127 1\n"},
		{"IAMAT kiwi +90.000001+0 1\n", "? IAMAT kiwi +90.000001+0 1\n"},
		{"IAMAT kiwi +0-180.5 1\n", "? IAMAT kiwi +0-180.5 1\n"},
		{"IAMAT kiwi +1+1x 1\n", "? IAMAT kiwi +1+1x 1\n"},
		{"IAMAT kiwi +1+1 1.0123456789\n", "? IAMAT kiwi +1+1 1.0123456789\n"},
		{"IAMAT kiwi +1+1 1e9\n", "? IAMAT kiwi +1+1 1e9\n"},
		{"IAMAT kiwi +1+1 1000000000000000000\n", "? IAMAT kiwi +1+1 1000000000000000000\n"},
		{"WHATSAT nobody 10 5\n", "? WHATSAT nobody 10 5\n"},
		{"WHATSAT kiwi 0 5\n", "? WHATSAT kiwi 0 5\n"},
		{"WHATSAT kiwi 50.1 5\n", "? WHATSAT kiwi 50.1 5\n"},
		{"WHATSAT kiwi 1e1 5\n", "? WHATSAT kiwi 1e1 5\n"},
		{"WHATSAT kiwi 10 0\n", "? WHATSAT kiwi 10 0\n"},
		{"WHATSAT kiwi 10 21\n", "? WHATSAT kiwi 10 21\n"},
		{"WHATSAT kiwi 10\n", "? WHATSAT kiwi 10\n"},
		{"AT A +0.1 kiwi\n", "? AT A +0.1 kiwi\n"},
		// Client IDs: as herd.ValidClientID.
		{"IAMAT ki\x00wi +1+1 1\n", "? IAMAT ki\x00wi +1+1 1\n"},
		{"IAMAT \x1b[2Jkiwi +1+1 1\n", "? IAMAT \x1b[2Jkiwi +1+1 1\n"},
		{"IAMAT del\x7f +1+1 1\n", "? IAMAT del\x7f +1+1 1\n"},
		{"IAMAT c1\u0085 +1+1 1\n", "? IAMAT c1\u0085 +1+1 1\n"},
		{"IAMAT ki\xffwi +1+1 1\n", "? IAMAT ki\xffwi +1+1 1\n"},
		{"WHATSAT ki\x00wi 10 5\n", "? WHATSAT ki\x00wi 10 5\n"},
		{"AT A +0.1 ki\x01wi +1+1 1\n", "? AT A +0.1 ki\x01wi +1+1 1\n"},
		{"\n", "? \n"},
		{"FOO\r\n", "? FOO\n"},
		{"FOO", "? FOO\n"},
		// Lines pipelined after an invalid one are not processed.
		{"FOO\nIAMAT kiwi +1+1 1\n", "? FOO\n"},
		{long + "\n", "? " + long[:64] + "\n"},
		{long, "? " + long[:64] + "\n"},
	} {
		if got := testutil.Exchange(t, addr, c.in); got != c.want {
			t.Errorf("reply to %q = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPipelinedHalfClose(t *testing.T) {
	eachDesign(t, testPipelinedHalfClose)
}

func testPipelinedHalfClose(t *testing.T, script string) {
	addr := oneScript(t, script, testutil.Config{})
	// Several commands on one connection, white space runs and a CRLF, and a last line
	// without "\n" before the half-close: every reply comes back, in order.
	in := "IAMAT a +1+1 100\r\n  IAMAT\tb  +2+2   200 \nWHATSAT a 1 1\nIAMAT c +3+3 300"
	got := testutil.Exchange(t, addr, in)
	lines := strings.SplitAfter(got, "\n")
	want := []string{"AT A ", "AT A ", "AT A ", "{", "   \"html_attributions\"", "   \"results\"", "   \"status\"", "}", "\n", "AT A "}
	if len(lines) < len(want) {
		t.Fatalf("got %q", got)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d of %q: want prefix %q", i, got, w)
		}
	}
	for i, client := range []string{"a +1+1 100", "b +2+2 200", "a +1+1 100", "", "", "", "", "", "", "c +3+3 300"} {
		if client != "" && !strings.HasSuffix(lines[i], " "+client+"\n") {
			t.Errorf("line %d = %q, want it to end with %q", i, lines[i], client)
		}
	}
	if !strings.Contains(got, `"ZERO_RESULTS"`) {
		t.Errorf("offline WHATSAT body is not ZERO_RESULTS: %q", got)
	}
}

// TestNewerRule feeds AT lines straight in (every loopback connection may carry AT lines)
// and checks the record kept: larger time first, compared exactly, then the larger line.
func TestNewerRule(t *testing.T) {
	eachDesign(t, testNewerRule)
}

func testNewerRule(t *testing.T, script string) {
	needPython(t)
	// AT lines are accepted from a neighbour's host: give A a neighbour on loopback, one
	// that is not running (A's floods to it fail, which is fine).
	addr := testutil.FreeAddr(t)
	cfg := testutil.Config{Nodes: []testutil.Node{
		{Name: "A", Addr: addr, Peers: []string{"B"}},
		{Name: "B", Addr: testutil.FreeAddr(t)},
	}}
	startScript(t, script, cfg.Write(t), "A")
	testutil.CheckNewerRule(t, addr)
}

// TestFlooding runs a chain A - B - C of Python servers and checks that updates made at either
// end reach the other, and that an older update does not replace a newer one.
func TestFlooding(t *testing.T) {
	eachDesign(t, testFlooding)
}

func testFlooding(t *testing.T, script string) {
	needPython(t)
	a, b, c := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := testutil.Config{Nodes: []testutil.Node{
		{Name: "A", Addr: a, Peers: []string{"B"}},
		{Name: "B", Addr: b, Peers: []string{"C"}},
		{Name: "C", Addr: c},
	}}
	path := cfg.Write(t)
	for _, n := range cfg.Nodes {
		startScript(t, script, path, n.Name)
	}
	at := strings.TrimSuffix(testutil.Exchange(t, a, "IAMAT kiwi +34.068930-118.445127 1000.5\n"), "\n")
	testutil.WaitFor(t, "A's update at C", func() bool { return testutil.Knows(c, "kiwi", at) })
	at2 := strings.TrimSuffix(testutil.Exchange(t, c, "IAMAT kiwi +1-1 1000.6\n"), "\n")
	testutil.WaitFor(t, "C's update at A", func() bool { return testutil.Knows(a, "kiwi", at2) })
	testutil.Exchange(t, b, "IAMAT kiwi +2-2 999\n")
	for _, addr := range []string{a, b, c} {
		if !testutil.Knows(addr, "kiwi", at2) {
			t.Errorf("an older update replaced %q at %s", at2, addr)
		}
	}
}
