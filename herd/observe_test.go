package herd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/internal/testutil"
)

// Every line is counted by its command, and every "?" reply by its reason.
func TestLineCounts(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n" + kiwiIAMAT + "\n")
	c.Line()
	c.Line()
	invalid := []string{
		"IAMAT kiwi +91+0 1",                  // bad_iamat
		"WHATSAT nobody 10 5",                 // unknown_client
		"WHATSAT kiwi.cs.ucla.edu 51 5",       // bad_whatsat
		"FOO bar",                             // unknown_command
		"",                                    // empty
		"x" + strings.Repeat("y", 5000),       // too_long
		"AT Jaquez +0.1 kiwi +1+1 1621464828", // not_neighbour: Hill has no neighbours
		"AT Jaquez +0.1 kiwi",                 // bad_at
		"IAMAT k\x1biwi +1+1 1",               // bad_client_id
		"IAMAT k +1+1 1721464828",             // clock_skew: years ahead of Hill's clock
	}
	for _, l := range invalid {
		c := testutil.Dial(t, s.Addr().String())
		c.Send(l + "\n")
		if got := c.ReadAll(); !strings.HasPrefix(got, "? ") {
			t.Fatalf("%.20q: got %q, want a \"?\" reply", l, got)
		}
	}
	m := s.Metrics()
	wantIn := map[string]uint64{"IAMAT": 5, "WHATSAT": 2, "AT": 2, "other": 3}
	for i, cmd := range LineCommands {
		if got := m.Lines.In[i].Load(); got != wantIn[cmd] {
			t.Errorf("lines %s = %d, want %d", cmd, got, wantIn[cmd])
		}
	}
	for i, why := range InvalidReasons {
		if i == invalidLineTimeout {
			continue // it takes the loop's clock: TestSlowlorisLineTimeout counts it
		}
		if got := m.Lines.Invalid[i].Load(); got != 1 {
			t.Errorf("invalid %s = %d, want 1", why, got)
		}
	}
	if got, want := m.Stored.Load(), uint64(1); got != want {
		t.Errorf("stored %d, want %d", got, want)
	}
	if got, want := m.Stale.Load(), uint64(1); got != want {
		t.Errorf("stale %d, want %d (the same IAMAT twice)", got, want)
	}
	if got := m.Records.Load(); got != 1 {
		t.Errorf("records %d, want 1", got)
	}
}

// Snapshot shows the links as the loop sees them and the most recent updates, newest first,
// at most RecentUpdates of them.
func TestSnapshot(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill", Peers: []string{"Jaquez"}}, ServerConfig{Name: "Jaquez"})
	h := newHerd(t, cfg)
	hill := h.Server("Hill")
	if _, err := hill.Snapshot(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Snapshot before Start: %v, want ErrNotRunning", err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the link", func() bool { return hill.Metrics().Links[0].Up.Load() })

	c := testutil.Dial(t, hill.Addr().String())
	n := RecentUpdates + 5
	for i := range n {
		c.Send(fmt.Sprintf("IAMAT c%d +1+1 %d\n", i, 1621464827+i))
		c.Line()
	}
	jc := testutil.Dial(t, h.Server("Jaquez").Addr().String())
	jc.Send("IAMAT fromjaquez +2+2 1621464900\n")
	jc.Line()
	testutil.WaitFor(t, "Jaquez's update at Hill", func() bool { _, ok := hill.Record("fromjaquez"); return ok })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := hill.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Records != n+1 {
		t.Errorf("records %d, want %d", snap.Records, n+1)
	}
	if len(snap.Links) != 1 || snap.Links[0].Peer != "Jaquez" || !snap.Links[0].Up ||
		snap.Links[0].Addr != h.Server("Jaquez").PeerAddr().String() || snap.Links[0].Since.IsZero() || snap.Links[0].Fault != "none" {
		t.Errorf("links %+v, want Jaquez up at %s", snap.Links, h.Server("Jaquez").PeerAddr())
	}
	if len(snap.Recent) != RecentUpdates {
		t.Fatalf("%d recent updates, want %d", len(snap.Recent), RecentUpdates)
	}
	if u := snap.Recent[0]; u.From != "peer" || !strings.Contains(u.Line, " fromjaquez ") {
		t.Errorf("newest update %+v, want Jaquez's, from a peer", u)
	}
	for i, u := range snap.Recent[1:] {
		want := fmt.Sprintf(" c%d ", n-1-i)
		if u.From != "client" || !strings.HasPrefix(u.Line, "AT Hill ") || !strings.Contains(u.Line, want) {
			t.Errorf("recent[%d] = %+v, want the IAMAT of%sfrom a client", i+1, u, want)
		}
	}

	lag, err := hill.LoopLag(ctx)
	if err != nil || lag < 0 {
		t.Errorf("LoopLag = %v, %v", lag, err)
	}
}

func TestPlacesErrorKind(t *testing.T) {
	tests := []struct {
		err, rejected error
		want          string
	}{
		{fmt.Errorf("%w after 5s", places.ErrTimeout), nil, "timeout"},
		{context.DeadlineExceeded, nil, "timeout"},
		{fmt.Errorf("%w: connection refused", places.ErrTransport), nil, "transport"},
		{fmt.Errorf("%w 500", places.ErrHTTP), nil, "http"},
		{&places.StatusError{Status: "OVER_QUERY_LIMIT"}, nil, "status"},
		{fmt.Errorf("%w: not JSON", places.ErrBadBody), nil, "bad_body"},
		{nil, errors.New("codec: invalid JSON"), "bad_body"},
		{context.Canceled, nil, "cancelled"},
		{errors.New("something else"), nil, "other"},
	}
	for _, tt := range tests {
		if got := PlacesErrorKinds[placesErrorKind(tt.err, tt.rejected)]; got != tt.want {
			t.Errorf("placesErrorKind(%v, %v) = %s, want %s", tt.err, tt.rejected, got, tt.want)
		}
	}
}
