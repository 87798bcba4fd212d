package herd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// alone starts server name of cfg by itself (its neighbours are down, so what it holds is
// what it loaded), and stops it when the test ends.
func alone(t *testing.T, cfg *Config, name string) *Server {
	t.Helper()
	s, err := NewServer(cfg, name, WithProvider(stubProvider{}), WithDebug(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, s.Shutdown) })
	return s
}

// TestCleanStopLosesNothing: a herd with [store] path that takes updates on every server and
// is stopped whole starts again with every record on every server: each server, started
// alone, holds them all before any neighbour could resync it.
func TestCleanStopLosesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultHerdConfig()
	cfg.Store.Path = dir
	h := startHerd(t, cfg)
	var want []string
	for i := range 200 {
		s := h.Servers()[i%5]
		want = append(want, iamat(t, s, fmt.Sprintf("c%d", i), "+1+1", fmt.Sprint(1000+i)))
	}
	// Not waiting for the floods: a stop sends what it owes its neighbours first.
	bound := h.Config()
	testutil.Stop(t, h.Shutdown)
	for _, sc := range bound.Servers {
		s := alone(t, bound, sc.Name)
		for i, line := range want {
			if got, ok := s.Record(fmt.Sprintf("c%d", i)); !ok || got != line {
				t.Fatalf("%s after a clean stop: c%d is %q, want %q", sc.Name, i, got, line)
			}
		}
		if n := s.Metrics().SnapshotLoaded.Load(); n != 200 {
			t.Errorf("%s loaded %d records, want 200", sc.Name, n)
		}
		testutil.Stop(t, s.Shutdown)
	}
}

// TestSnapshotWrittenWhileRunning: on the loop's clock, an update is in the snapshot once a
// second has passed, and no snapshot is written while no record changes.
func TestSnapshotWrittenWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "", ServerConfig{Name: "A"})
	cfg.Store.Path = dir
	clock := newFakeClock()
	s := startServer(t, cfg, "A", WithLoopClock(clock))
	path := filepath.Join(dir, "A.snap")
	writes := s.Metrics().SnapshotWrites.Load
	for i := range 3 {
		line := iamat(t, s, fmt.Sprint("kiwi", i), "+1+1", "5")
		clock.Advance(snapshotInterval)
		testutil.WaitFor(t, "a snapshot with "+line, func() bool {
			b, _ := os.ReadFile(path)
			return bytes.Contains(b, []byte(line+"\n")) && writes() == uint64(i+1)
		})
		for range 3 { // nothing changes: no snapshot
			clock.Advance(snapshotInterval)
			settle(t, s)
		}
		if n := writes(); n != uint64(i+1) {
			t.Fatalf("%d snapshots written, want %d: one was written while no record changed", n, i+1)
		}
	}
}

// writeSnapshotFile writes a snapshot of lines as a server would, and returns its bytes.
func writeSnapshotFile(t *testing.T, dir, name string, lines []string) []byte {
	t.Helper()
	w, err := createSnapFile(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.lines([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(snapshotPath(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDamagedSnapshot: a snapshot with a damaged record, and one torn in the middle of a
// record, are reported (a WARN line, the metrics) and the server starts with the records
// it could read; its neighbour's resync then gives back what was lost.
func TestDamagedSnapshot(t *testing.T) {
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf("AT A +0.000000000 c%d +1+1 %d", i, 100+i))
	}
	for _, tc := range []struct {
		name    string
		damage  func(b []byte) []byte
		lost    []int // the records not loaded
		torn    bool
		badLine uint64
	}{
		{"a flipped byte", func(b []byte) []byte {
			i := bytes.Index(b, []byte("c4 +1+1"))
			b[i+1] = '9' // c4 becomes c9 with c4's time: its checksum no longer matches
			return b
		}, []int{4}, false, 1},
		{"torn in a record", func(b []byte) []byte { return b[:bytes.Index(b, []byte("c7 +1+1"))] }, []int{7, 8, 9}, true, 1},
		{"torn after a record", func(b []byte) []byte { return b[:bytes.Index(b, []byte("END"))] }, nil, true, 0},
		{"a line too long", func(b []byte) []byte {
			i := bytes.Index(b, []byte("c2 +1+1"))
			return append(b[:i:i], append(bytes.Repeat([]byte("x"), 20000), b[i:]...)...)
		}, []int{2}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := writeSnapshotFile(t, dir, "A", lines)
			if err := os.WriteFile(snapshotPath(dir, "A"), tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
			cfg.Store.Path = dir
			h := newHerd(t, cfg)
			var log testutil.SyncBuffer
			a, err := NewServer(h.Config(), "A", WithProvider(stubProvider{}), WithLogOutput(&log))
			if err != nil {
				t.Fatal(err)
			}
			// A alone first: what it loaded.
			if err := a.listen(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { testutil.Stop(t, a.Shutdown) })
			lost := map[int]bool{}
			for _, i := range tc.lost {
				lost[i] = true
			}
			for i, l := range lines {
				got, ok := a.Record(fmt.Sprintf("c%d", i))
				if lost[i] == ok || ok && got != l {
					t.Errorf("c%d: loaded %q %v; want it lost: %v", i, got, ok, lost[i])
				}
			}
			m := a.Metrics()
			if m.SnapshotTruncated.Load() != tc.torn || m.SnapshotBadLines.Load() != tc.badLine {
				t.Errorf("truncated %v, bad lines %d; want %v and %d", m.SnapshotTruncated.Load(), m.SnapshotBadLines.Load(), tc.torn, tc.badLine)
			}
			testutil.WaitFor(t, "the WARN line", func() bool {
				return strings.Contains(log.String(), "level=WARN msg=\"snapshot damaged: starting with what could be read\"")
			})
			// B holds every record; once linked, its resync gives A what it lost.
			sb := h.Server("B")
			for _, l := range lines {
				sb.table.Apply(parseAT(t, l), []byte(l))
			}
			if err := sb.listen(); err != nil {
				t.Fatal(err)
			}
			bound := h.Config()
			bound.Server("A").Addr, bound.Server("A").PeerAddr = a.Addr().String(), a.PeerAddr().String()
			bound.Server("B").Addr, bound.Server("B").PeerAddr = sb.Addr().String(), sb.PeerAddr().String()
			if err := sb.startLinks(bound); err != nil {
				t.Fatal(err)
			}
			for i, l := range lines {
				waitRecord(t, []*Server{a}, fmt.Sprintf("c%d", i), l)
			}
		})
	}
}

// TestReadSnapshotEveryCut: a snapshot cut at any byte is read up to the cut (every record
// whole before it, none after), reported torn, and never fails otherwise.
func TestReadSnapshotEveryCut(t *testing.T) {
	var lines []string
	for i := range 5 {
		lines = append(lines, fmt.Sprintf("AT A +0.000000000 client%d +1.5-2.5 %d.5", i, 100+i))
	}
	b := writeSnapshotFile(t, t.TempDir(), "A", lines)
	for cut := range len(b) + 1 {
		var got []string
		st := readSnapshot(bytes.NewReader(b[:cut]), 4096, func(line []byte) bool {
			got = append(got, string(line))
			return true
		})
		whole := bytes.Count(b[:cut], []byte("\n")) - 1 // the header is a line too
		if whole > len(lines) {
			whole = len(lines)
		}
		if len(got) != max(whole, 0) || st.err != nil || st.ended != (cut == len(b)) {
			t.Fatalf("cut at %d of %d: read %d records (ended %v, err %v), want %d", cut, len(b), len(got), st.ended, st.err, whole)
		}
		for i, l := range got {
			if l != lines[i] {
				t.Fatalf("cut at %d: record %d is %q", cut, i, l)
			}
		}
	}
}

// TestTTLExpiredStayGone: with records.ttl, a record whose client time passes the TTL leaves
// the server (Records, the WHATSAT answer) within a second on the loop's clock; one that has
// expired but not left yet is not sent in a resync; and a neighbour's resync that carries an
// expired record does not bring it back.
func TestTTLExpiredStayGone(t *testing.T) {
	clock := newFakeClock() // 1_700_000_000
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B", PeerAddr: testutil.FreeAddr(t)})
	cfg.Records.TTL = time.Hour
	cfg.Limits.DialTimeout = 10 * time.Second
	a := startServer(t, cfg, "A", WithLoopClock(clock))
	const t0 = 1_700_000_000
	gone := iamat(t, a, "gone", "+1+1", fmt.Sprint(t0-3600+1))      // expires after a second
	stale := iamat(t, a, "stale", "+1+1", fmt.Sprint(t0-3600)+".5") // expires in half a second
	fresh := iamat(t, a, "fresh", "+1+1", fmt.Sprint(t0))
	settle(t, a) // the housekeeping is armed for t0+1s
	if got := testutil.Exchange(t, a.Addr().String(), "IAMAT old +1+1 "+fmt.Sprint(t0-3601)+"\n"); !strings.HasPrefix(got, "AT A ") {
		t.Fatalf("an IAMAT older than the TTL: %q, want its AT reply", got)
	}
	if _, ok := a.Record("old"); ok || a.Metrics().RecordCounts.TooOld.Load() != 1 {
		t.Error("an IAMAT older than the TTL was stored")
	}

	clock.Advance(700 * time.Millisecond) // stale has expired, and is still held
	settle(t, a)
	if _, ok := a.Record("stale"); ok || a.Metrics().Records.Load() != 3 {
		t.Fatalf("stale: found %v, %d records held; want it hidden and still held", ok, a.Metrics().Records.Load())
	}
	p := dialAsPeer(t, a.PeerAddr(), helloLine("B", "A"))
	parseHelloCopy(t, p.line())
	p.until("DIGEST")
	// B's bucket of "ancient" holds one record, which A's does not: B sends it whole. It is
	// older than the TTL: A does not take it.
	ancient := fmt.Sprintf("AT B +0.000000000 ancient +1+1 %d", t0-7200)
	p.send(fmt.Sprintf("DIGEST %d=1\nDIGEST\n%s\nDONE 1\n", BucketOf([]byte("ancient")), ancient))
	sent, done := p.until("DONE")
	got := strings.Join(sent, "\n")
	if !strings.Contains(got, gone) || !strings.Contains(got, fresh) || strings.Contains(got, stale) || done != "DONE 2" {
		t.Errorf("A's resync sent %q and %q; want gone and fresh, not the expired stale", got, done)
	}
	testutil.WaitFor(t, "the resync", func() bool { return a.Metrics().ResyncsDone.Load() == 1 })
	if _, ok := a.Record("ancient"); ok || a.Metrics().RecordCounts.TooOld.Load() != 2 {
		t.Error("an expired record came back through a resync")
	}

	clock.Advance(time.Second) // t0+1.7s: the housekeeping removes stale and gone
	testutil.WaitFor(t, "stale and gone to leave", func() bool { return a.Metrics().Records.Load() == 1 })
	if _, ok := a.Record("gone"); ok {
		t.Error("gone is held past the TTL")
	}
	if n := a.Metrics().RecordCounts.Expired.Load(); n != 2 {
		t.Errorf("%d records expired, want 2", n)
	}
	if got := testutil.Exchange(t, a.Addr().String(), "WHATSAT gone 10 1\n"); got != "? WHATSAT gone 10 1\n" {
		t.Errorf("WHATSAT for an expired client: %q", got)
	}
}

// TestSnapshotWriteFails: a snapshot that cannot be written is counted and logged once, the
// previous one stays, and the next second's try writes it once the disk takes it again.
func TestSnapshotWriteFails(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "", ServerConfig{Name: "A"})
	cfg.Store.Path = dir
	clock := newFakeClock()
	var log testutil.SyncBuffer
	s := startServer(t, cfg, "A", WithLoopClock(clock), WithLogOutput(&log))
	first := iamat(t, s, "first", "+1+1", "5")
	clock.Advance(snapshotInterval)
	testutil.WaitFor(t, "the first snapshot", func() bool { return s.Metrics().SnapshotWrites.Load() == 1 })

	// A folder where the temporary file goes: the file cannot be created.
	blocker := filepath.Join(dir, "A.snap.tmp")
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	second := iamat(t, s, "second", "+1+1", "6")
	for range 3 {
		n := s.Metrics().SnapshotWriteErrors.Load() // before the tick: its failure may come at once
		clock.Advance(snapshotInterval)
		testutil.WaitFor(t, "a failed snapshot", func() bool { return s.Metrics().SnapshotWriteErrors.Load() > n })
	}
	b, _ := os.ReadFile(snapshotPath(dir, "A"))
	if !bytes.Contains(b, []byte(first)) || bytes.Contains(b, []byte(second)) {
		t.Errorf("the snapshot at its name is not the first one: %q", b)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	clock.Advance(snapshotInterval)
	testutil.WaitFor(t, "the snapshot written again", func() bool {
		b, _ := os.ReadFile(snapshotPath(dir, "A"))
		return bytes.Contains(b, []byte(second)) && s.Metrics().SnapshotWrites.Load() == 2
	})
	// The log reaches its writer in batches: once the recovery's record is there, so is every
	// record before it.
	testutil.WaitFor(t, "the recovery logged", func() bool { return strings.Contains(log.String(), "snapshot written again") })
	if n := strings.Count(log.String(), "snapshot not written"); n != 1 {
		t.Errorf("%d WARN lines for three failed snapshots, want 1", n)
	}
}
