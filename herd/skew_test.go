package herd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// TestFarFutureTimeRefused is the regression test for a poisoned record: one IAMAT with a
// time far in the future ("IAMAT zed +00+000 999999999999999999") was stored herd-wide, and
// every later update of zed, with the real time, was dropped as older, while its sender got
// a normal AT reply. Now such an IAMAT gets "?" and is stored nowhere; the real client's
// updates are stored everywhere; an AT line from a neighbour beyond max_clock_skew is
// dropped, counted and not flooded, on a link as on the client port.
func TestFarFutureTimeRefused(t *testing.T) {
	h := startDefaultHerd(t)
	campbell := h.Server("Campbell")
	const poison = "IAMAT zed +00+000 999999999999999999"
	for _, s := range h.Servers() {
		if got := testutil.Exchange(t, s.Addr().String(), poison+"\n"); got != "? "+poison+"\n" {
			t.Fatalf("far-future IAMAT to %s: got %q, want \"? \" and the line", s.Name(), got)
		}
		if n := s.Metrics().Lines.Invalid[invalidClockSkew].Load(); n != 1 {
			t.Errorf("%s: clock_skew \"?\" replies counted: %d, want 1", s.Name(), n)
		}
	}
	now := time.Now()
	real := iamat(t, campbell, "zed", "+34.068930-118.445127", fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()))
	waitRecord(t, h.Servers(), "zed", real)

	// A neighbour's AT line from the future, on Campbell's client port (Campbell's
	// neighbours are on loopback, so a local connection is a neighbour's host): no reply,
	// not stored, not flooded, counted.
	future := fmt.Sprintf("AT Zed +0.000000000 zed +1+1 %d", now.Add(2*time.Hour).Unix())
	if got := testutil.Exchange(t, campbell.Addr().String(), future+"\n"); got != "" {
		t.Fatalf("future AT line got a reply %q", got)
	}
	testutil.WaitFor(t, "the future AT line counted", func() bool {
		return campbell.Metrics().Lines.SkewDropped.Load() == 1
	})
	// Within the skew, an AT line a few minutes ahead is taken (clocks differ a little).
	ahead := fmt.Sprintf("AT Zed +0.000000000 zed +5+5 %d", now.Add(5*time.Minute).Unix())
	if got := testutil.Exchange(t, campbell.Addr().String(), ahead+"\n"); got != "" {
		t.Fatalf("AT line got a reply %q", got)
	}
	waitRecord(t, h.Servers(), "zed", ahead)
	for _, s := range h.Servers() {
		if n := s.Metrics().Lines.SkewDropped.Load(); s != campbell && n != 0 {
			t.Errorf("%s dropped %d AT lines for skew: the future one was flooded", s.Name(), n)
		}
		if got, _ := s.Record("zed"); strings.Contains(got, "999999999999999999") {
			t.Errorf("%s holds the poisoned record %q", s.Name(), got)
		}
	}
}

// TestFutureATOnLinkDropped: an AT line beyond max_clock_skew from a neighbour on its link
// is dropped and counted by the server that receives it; the link stays up.
func TestFutureATOnLinkDropped(t *testing.T) {
	ln := testutil.Listen(t)
	conns, _ := fakeNeighbour(t, "B", ln)
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B", PeerAddr: ln.Addr().String()})
	cfg.Limits.MaxClockSkew = time.Minute
	a := startServer(t, cfg, "A", WithClock(fixedClock(1_700_000_000, 0)))
	b := testutil.Recv(t, conns, "A's link to B")
	testutil.WaitFor(t, "the link up", func() bool { return a.Metrics().LinksUp.Load() == 1 })
	b.send("AT B +0.000000000 f +1+1 1700000060.000000001\nAT B +0.000000000 g +1+1 1700000060\n")
	waitRecord(t, []*Server{a}, "g", "AT B +0.000000000 g +1+1 1700000060")
	if _, ok := a.Record("f"); ok {
		t.Error("the AT line a minute and a nanosecond ahead (max_clock_skew 1m) was stored")
	}
	if n := a.Metrics().Lines.SkewDropped.Load(); n != 1 {
		t.Errorf("SkewDropped = %d, want 1", n)
	}
	if a.Metrics().LinkUps.Load() != 1 || a.Metrics().LinksUp.Load() != 1 {
		t.Error("the link went down")
	}
}
