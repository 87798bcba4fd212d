package herd

// Tests of what the server does over time (idle_timeout, the redial backoff, the lingering
// close), on a reactor.FakeClock handed to the loop with WithLoopClock: time moves only when the
// test advances it, so each test is a timeline that checks what happened at every step.

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
	"github.com/herd-project/herd/reactor"
)

// newFakeClock returns a fake clock for a server's loop, at a time no test line is ahead of.
func newFakeClock() *reactor.FakeClock { return reactor.NewFakeClock(time.Unix(1_700_000_000, 0)) }

// settle returns once s's loop has run the timers that were due when it was called and the
// callbacks those scheduled: each Record runs in a later pass than the one before.
func settle(t testing.TB, s *Server) {
	t.Helper()
	for range 3 {
		s.Record("")
	}
}

// TestIdleTimeoutClosesQuietClients: with idle_timeout set, a client quiet for that long on
// the loop's clock is closed, and not a moment before; one owed a reply is not, however long
// it waits, until it has its reply; neighbours' links stay up.
func TestIdleTimeoutClosesQuietClients(t *testing.T) {
	const idle = time.Minute
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	cfg.Limits.IdleTimeout = idle
	cfg.Places.Timeout = time.Hour // the WHATSAT stays owed until released, not answered at its deadline
	clock := newFakeClock()
	a, b, release := gatedPair(t, cfg, WithLoopClock(clock))
	ups := a.Metrics().LinkUps.Load() + b.Metrics().LinkUps.Load()

	waiting := testutil.Dial(t, a.Addr().String())
	waiting.Send("IAMAT w +1+1 5\nWHATSAT w 10 1\n")
	waiting.Line()
	quiet := testutil.Dial(t, a.Addr().String())
	quiet.Send("IAMAT q +1+1 5\n")
	quiet.Line()
	const open = 2 // waiting and quiet (B's link is on A's peer port)
	testutil.WaitFor(t, "both clients on A", func() bool { return a.Metrics().ClientsOpen.Load() == open })

	clock.Advance(idle - time.Nanosecond)
	settle(t, a)
	if n := a.Metrics().ClientsOpen.Load(); n != open {
		t.Fatalf("%d connections closed before idle_timeout", open-n)
	}
	clock.Advance(time.Nanosecond)
	quiet.EOF() // closed by the idle timeout

	for range 3 {
		clock.Advance(idle)
		settle(t, a)
	}
	if n := a.Metrics().ClientsOpen.Load(); n != open-1 {
		t.Fatalf("%d connections open after three more timeouts, want %d: the client owed a reply stays", n, open-1)
	}
	release()
	if got := waiting.Reply(); !strings.HasPrefix(got, "AT A ") {
		t.Errorf("WHATSAT reply %q", got)
	}
	clock.Advance(idle) // quiet and owed nothing now
	waiting.EOF()
	if n := a.Metrics().LinkUps.Load() + b.Metrics().LinkUps.Load(); n != ups {
		t.Errorf("links came up %d more times: the idle timeout closed a link", n-ups)
	}
	if n := a.Metrics().LinksUp.Load() + b.Metrics().LinksUp.Load(); n != 2 {
		t.Errorf("%d links up, want 2", n)
	}
}

// TestSlowlorisLineTimeout is the regression test for a client that kept a connection by
// sending one byte every 2 s: each byte reset the idle timer, and nothing bounded how long a
// line could take. Now the line has line_timeout from its first byte: at 28 s the connection
// is open, at 30 s it gets "? " and what arrived of the line, and is closed. A line finished in
// time is answered, and the next line has its own deadline.
func TestSlowlorisLineTimeout(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	if cfg.Limits.LineTimeout != 30*time.Second || cfg.Limits.IdleTimeout != 5*time.Minute {
		t.Fatalf("default line_timeout %v, idle_timeout %v; want 30s and 5m", cfg.Limits.LineTimeout, cfg.Limits.IdleTimeout)
	}
	clock := newFakeClock()
	s := startServer(t, cfg, "Hill", WithLoopClock(clock))
	// armedIn waits until the loop's next timer is d away: the way to know that the server has
	// read the first byte of a line (its deadline is armed) before the clock moves on. Passes
	// are run meanwhile, so that timers cancelled since are dropped.
	armedIn := func(what string, d time.Duration) {
		t.Helper()
		testutil.WaitFor(t, what, func() bool {
			settle(t, s)
			next, ok := clock.Next()
			return ok && next.Sub(clock.Now()) == d
		})
	}

	// A line finished in time (in two parts, 20 s apart) is answered.
	ok := testutil.Dial(t, s.Addr().String())
	armedIn("the idle deadline", 5*time.Minute)
	ok.Send("IAMAT kiwi +34.068930-118.445127")
	armedIn("the line's deadline", 30*time.Second)
	clock.Advance(20 * time.Second)
	ok.Send(" 1621464827.959498503\n")
	if got := ok.Line(); !strings.HasPrefix(got, "AT Hill ") {
		t.Fatalf("reply %q to a line finished in time", got)
	}
	// The next line, begun at 30 s, has 30 s of its own.
	clock.Advance(10 * time.Second)
	armedIn("the idle deadline after the reply", 5*time.Minute-10*time.Second)
	ok.Send("IAM")
	armedIn("the next line's deadline", 30*time.Second)
	clock.Advance(30*time.Second - time.Nanosecond)
	settle(t, s)
	if n := s.Metrics().Cut[cutLineTimeout].Load(); n != 0 {
		t.Fatalf("%d line timeouts just before a line's deadline", n)
	}
	clock.Advance(time.Nanosecond)
	if got := ok.ReadAll(); got != "? IAM\n" {
		t.Fatalf("after 30 s on a line, read %q, want %q and the end of the stream", got, "? IAM\n")
	}
	ok.TCP.Close() // ends the server's lingering close

	// Slowloris: one byte every 2 s, each of which resets the idle timer.
	slow := testutil.Dial(t, s.Addr().String())
	armedIn("the idle deadline", 5*time.Minute)
	const line = "IAMAT slowloris +1+1 1700000000"
	slow.Send(line[:1])
	armedIn("the slow line's deadline", 30*time.Second)
	for i := 1; i < 15; i++ {
		clock.Advance(2 * time.Second)
		slow.Send(line[i : i+1])
		settle(t, s)
	}
	// 28 s
	if n := s.Metrics().Cut[cutLineTimeout].Load(); n != 1 {
		t.Fatalf("%d line timeouts 28 s into the slow line, want only the first client's", n)
	}
	clock.Advance(2 * time.Second) // 30 s
	got := slow.ReadAll()
	if !strings.HasPrefix(got, "? I") || !strings.HasSuffix(got, "\n") || !strings.HasPrefix(line, got[2:len(got)-1]) {
		t.Fatalf("slowloris read %q, want \"? \", the start of %q, and the end of the stream", got, line)
	}
	if n := s.Metrics().Lines.Invalid[invalidLineTimeout].Load(); n != 2 {
		t.Errorf("%d \"?\" replies counted as line_timeout, want 2", n)
	}
}

// TestNeighbourHostNotExempt is the regression test for connections exempt from idle_timeout
// only because they came from a neighbour's host (on a loopback herd: any local connection):
// now only a connection that has sent AT lines is exempt. A silent connection is closed at
// idle_timeout; a neighbour's link that floods AT lines is not, however long it stays quiet.
func TestNeighbourHostNotExempt(t *testing.T) {
	const idle = time.Minute
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	cfg.Limits.IdleTimeout = idle
	clock := newFakeClock()
	s := startServer(t, cfg, "A", WithLoopClock(clock))
	silent := testutil.Dial(t, s.Addr().String())
	link := testutil.Dial(t, s.Addr().String()) // posing as B's link: B's host is loopback too
	link.Send("AT B +0.000000001 kiwi +34.068930-118.445127 1621464827.959498503\n")
	testutil.WaitFor(t, "the AT line applied", func() bool { return s.Metrics().PeerUpdates.Load() == 1 })
	clock.Advance(idle)
	silent.EOF()
	for range 3 {
		clock.Advance(idle)
		settle(t, s)
	}
	link.Send("AT B +0.000000001 kiwi +34.068930-118.445127 1621464828.959498503\n")
	testutil.WaitFor(t, "the second AT line applied", func() bool { return s.Metrics().PeerUpdates.Load() == 2 })
	if n := s.Metrics().Cut[cutIdle].Load(); n != 1 {
		t.Errorf("%d connections closed by idle_timeout, want the silent one only", n)
	}
}

// TestRedialBackoff: a link that drops is redialled after a delay on the loop's clock drawn from
// (0, min(backoff_cap, backoff_base*2^n)] for the n-th retry in a row, and not before; a link
// that stayed up longer than backoff_cap starts again from backoff_base.
func TestRedialBackoff(t *testing.T) {
	const base, cap = 10 * time.Millisecond, time.Second
	ln := testutil.Listen(t)
	accepted, _ := fakeNeighbour(t, "Sink", ln) // answers each dial's hello
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"Sink"}}, ServerConfig{Name: "Sink", PeerAddr: ln.Addr().String()})
	cfg.Limits.BackoffBase, cfg.Limits.BackoffCap = base, cap
	// Each link's hello arms a timer of dial_timeout, cancelled when the hello is done but
	// left armed on the clock: make it too late to be taken for the redial.
	cfg.Limits.DialTimeout = time.Hour
	clock := newFakeClock()
	s := startServer(t, cfg, "A", WithLoopClock(clock))
	conn := testutil.Recv(t, accepted, "the first dial") // at once, no backoff

	// drop closes the link's connection and returns the redial delay the loop armed, after
	// checking that nothing dials before it.
	drop := func() time.Duration {
		t.Helper()
		testutil.WaitFor(t, "the link", func() bool { return s.Metrics().LinksUp.Load() == 1 })
		conn.c.Close()
		testutil.WaitFor(t, "the link to go down", func() bool { return s.Metrics().LinksUp.Load() == 0 })
		settle(t, s)
		next, _ := clock.Next()
		settle(t, s)
		select {
		case <-accepted:
			t.Fatal("redialled before the backoff delay")
		default:
		}
		return next.Sub(clock.Now())
	}
	for n := range 12 { // the bound doubles from base and reaches cap at n = 7
		d := drop()
		if bound := min(cap, base<<n); d <= 0 || d > bound {
			t.Fatalf("retry %d after %v, want within (0, %v]", n, d, bound)
		}
		clock.Advance(d)
		conn = testutil.Recv(t, accepted, "the redial")
	}
	// Three times, the link stays up longer than backoff_cap: each drop starts from base again.
	// (Were the count not reset, each delay would be drawn up to cap: all three within base
	// by chance once in a million runs.)
	for range 3 {
		testutil.WaitFor(t, "the link", func() bool { return s.Metrics().LinksUp.Load() == 1 })
		clock.Advance(cap + time.Nanosecond)
		if d := drop(); d <= 0 || d > base {
			t.Fatalf("retry after a long-lived link after %v, want within (0, %v]", d, base)
		}
		clock.Advance(base)
		conn = testutil.Recv(t, accepted, "the redial")
	}
}

// TestInvalidLineLingers: a client that goes on sending after an invalid line gets the "?"
// reply and a clean end of stream, not a reset that would destroy it; the server keeps reading
// and discarding until the lingering close times out on the loop's clock, then closes.
func TestInvalidLineLingers(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, testConfig(t, "", ServerConfig{Name: "Hill"}), "Hill", WithLoopClock(clock))
	c := testutil.Dial(t, s.Addr().String())
	more := bytes.Repeat([]byte(kiwiIAMAT+"\n"), 256<<10/len(kiwiIAMAT))
	c.Send("BOGUS line\n")
	if _, err := c.TCP.Write(more); err != nil { // before reading: unread when the server closes
		t.Fatalf("writing after the invalid line: %v", err)
	}
	got, err := c.ReadRest()
	if err != nil || got != "? BOGUS line\n" {
		t.Fatalf("read %q, %v; want %q and a clean EOF", got, err, "? BOGUS line\n")
	}
	// Lingering: the server reads on. (A closed socket answers the first write with a reset,
	// which the second write reports.)
	for range 2 {
		if _, err := c.TCP.Write(more[:64<<10]); err != nil {
			t.Fatalf("the server closed the socket before the linger timed out: %v", err)
		}
		settle(t, s)
	}
	// The reactor's default LingerTimeout is a second; LingerBytes (4 MiB) is not reached
	// below, so only the timeout can end the linger.
	clock.Advance(time.Second)
	settle(t, s)
	sent := 0
	chunk := make([]byte, 16<<10)
	c.TCP.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for {
		if sent > 2<<20 {
			t.Fatalf("the server still reads %d bytes after the linger timed out", sent)
		}
		n, err := c.TCP.Write(chunk)
		sent += n
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("write timed out: the server stopped reading without closing")
		}
		if err != nil {
			break
		}
	}
}
