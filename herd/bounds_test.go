package herd

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// TestRecordCapUnderFlood is the regression test for a record table without a bound: one
// connection sending new client IDs grew each server by 93-167 MB in 5.5 s. Two servers with
// max_records 500, their link cut, take the same 5,000 AT lines of about 4 KB from a
// neighbour's host, each for a new client with a later time: each holds the 500 newest and
// no other, its heap grows by no more than the records' bound (max_records x the
// RecordBytes of one, and a few MiB of buffers; without the cap it grows by 44 MB), and
// both evicted alike, so that the resync of the healed link finds their digests equal and
// sends no record.
func TestRecordCapUnderFlood(t *testing.T) {
	const n, max = 5_000, 500
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	cfg.Limits.MaxRecords = max
	h := newHerd(t, cfg)
	if err := h.SetLinkFault("A", "B", LinkCut); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	a, b := h.Server("A"), h.Server("B")
	pad := paddedLocation(cfg.Limits.MaxLine - len("AT Z +0.000000000 f00000  1000000"))
	line := func(i int) string { return fmt.Sprintf("AT Z +0.000000000 f%05d %s %d", i, pad, 1_000_000+i) }
	if l := len(line(0)); l != cfg.Limits.MaxLine {
		t.Fatalf("AT line of %d bytes, want max_line", l)
	}
	before := heapInUse()
	for _, s := range []*Server{a, b} {
		c := testutil.Dial(t, s.Addr().String()) // loopback: a neighbour's host
		for i := 0; i < n; i += 100 {
			var batch strings.Builder
			for j := i; j < i+100; j++ {
				batch.WriteString(line(j) + "\n")
			}
			c.Send(batch.String())
		}
		last := line(n - 1)
		waitRecord(t, []*Server{s}, fmt.Sprintf("f%05d", n-1), last)
	}
	after := heapInUse()
	const slack = 4 << 20 // the connections' buffers, the recent updates
	one := recordBytes(len(line(0)), len("f00000"))
	bound := 2*max*one + slack
	t.Logf("heap %d -> %d bytes: %d for two tables of %d records, bound %d", before, after, int64(after)-int64(before), max, bound)
	if grew := int64(after) - int64(before); grew > bound {
		t.Errorf("heap grew by %d bytes, over the bound of %d", grew, bound)
	}
	for _, s := range []*Server{a, b} {
		if got := s.Metrics().Records.Load(); got != max {
			t.Errorf("%s holds %d records, want %d", s.Name(), got, max)
		}
		if e := s.Metrics().RecordCounts.Evicted.Load(); e != n-max {
			t.Errorf("%s evicted %d, want %d", s.Name(), e, n-max)
		}
		for _, i := range []int{0, n - max - 1, n - max, n - 1} {
			if _, ok := s.Record(fmt.Sprintf("f%05d", i)); ok != (i >= n-max) {
				t.Errorf("%s: f%05d held %v: the oldest client times go first", s.Name(), i, ok)
			}
		}
	}
	if err := h.SetLinkFault("A", "B", NoFault); err != nil {
		t.Fatal(err)
	}
	// Both dial at once when healed: a duplicate link may come and go, with a resync of its own.
	testutil.WaitFor(t, "the resync", func() bool {
		return a.Metrics().ResyncsDone.Load() >= 1 && b.Metrics().ResyncsDone.Load() >= 1 && a.Metrics().LinksUp.Load() == 1
	})
	if n := a.Metrics().ResyncRecords.Load() + b.Metrics().ResyncRecords.Load(); n != 0 {
		t.Errorf("the resync of two tables at their cap sent %d records, want 0: their digests differ", n)
	}
}

// TestMaxUnsentTotal: the clients of a server together may leave max_unsent_total reply
// bytes unsent. Two clients each hold replies behind a WHATSAT waiting for Places, each under
// max_unsent; when the second takes the total past max_unsent_total, the one with the most
// unsent bytes, the first, is cut off (aborted), and the second is not: it gets every reply
// once Places answers.
func TestMaxUnsentTotal(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Limits.MaxUnsent = 1 << 20
	cfg.Limits.MaxUnsentTotal = 1 << 20
	cfg.Places.Timeout = time.Minute
	gate := make(chan struct{})
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	s := startServer(t, cfg, "Hill", hillClock, WithProvider(gateProvider{gate}))
	t.Cleanup(release) // before the server's stop, which waits for the WHATSATs

	pad := strings.Repeat("p", 140)
	// held sends a WHATSAT that waits, then n IAMATs of client prefix whose replies (185 bytes
	// each) wait behind it, and waits until the server has read them all, or cut the
	// client off.
	held := func(prefix string, n int) *testutil.Conn {
		c := testutil.Dial(t, s.Addr().String())
		c.Send("IAMAT " + prefix + " +1+1 1621464828\n")
		c.Line()
		var b strings.Builder
		b.WriteString("WHATSAT " + prefix + " 10 1\n")
		for i := range n {
			fmt.Fprintf(&b, "IAMAT %s%05d-%s +1+1 1621464828\n", prefix, i, pad)
		}
		c.Send(b.String())
		last := fmt.Sprintf("%s%05d-%s", prefix, n-1, pad)
		testutil.WaitFor(t, prefix+"'s IAMATs read", func() bool {
			_, ok := s.Record(last)
			return ok || s.Metrics().ClientsCut.Load() > 0
		})
		return c
	}
	a := held("a", 3400) // replies of 185 bytes: 629 KB unsent
	if n := s.Metrics().ClientsCut.Load(); n != 0 {
		t.Fatalf("%d clients cut off under the limits", n)
	}
	// 536 KB: past 1 MiB in all, and less than a however much of it one read takes.
	b := held("b", 2900)
	testutil.WaitFor(t, "a cut-off", func() bool { return s.Metrics().Cut[cutMaxUnsentTotal].Load() == 1 })
	if n := s.Metrics().ClientsCut.Load(); n != 1 {
		t.Errorf("%d clients cut off, want 1", n)
	}
	if rest, err := a.ReadRest(); err == nil && rest != "" || err != nil && !testutil.IsReset(err) {
		t.Errorf("a, cut off, read %.60q, %v", rest, err)
	}
	release()
	if got := b.Reply(); !strings.HasPrefix(got, "AT Hill ") {
		t.Fatalf("b's WHATSAT reply %.60q", got)
	}
	for i := range 2900 {
		if got, want := b.Line(), fmt.Sprintf(" b%05d-", i); !strings.Contains(got, want) {
			t.Fatalf("b's reply %d: %.60q", i, got)
		}
	}
}
