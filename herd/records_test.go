package herd

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/herd-project/herd/codec"
)

func parseAT(t testing.TB, line string) *codec.Message {
	t.Helper()
	m, err := codec.ParseLine([]byte(line))
	if err != nil {
		t.Fatalf("ParseLine(%q): %v", line, err)
	}
	return &m
}

func TestTableApply(t *testing.T) {
	const (
		base  = "AT Hill +0.500000000 kiwi +34.068930-118.445127 1621464827.959498503"
		older = "AT Hill +0.500000000 kiwi +34.068930-118.445127 1621464827.959498502"
		newer = "AT Smith -1.000000000 kiwi +1-2 1621464828"
		tieLo = "AT Alpha +0.000000000 kiwi +1-2 1621464828"
		tieHi = "AT Zulu +0.000000000 kiwi +1-2 1621464828"
	)
	steps := []struct {
		line    string
		changed bool
		stored  string
	}{
		{base, true, base},
		{base, false, base}, // a repeat stops the flood
		{older, false, base},
		{newer, true, newer},
		{tieLo, false, newer}, // "AT Smith" > "AT Alpha" byte-wise
		{tieHi, true, tieHi},
		{newer, false, tieHi},
	}
	tab := NewTable()
	for i, s := range steps {
		got := tab.Apply(parseAT(t, s.line), []byte(s.line+"\n"))
		if got != s.changed {
			t.Errorf("step %d: Apply(%q) = %v, want %v", i, s.line, got, s.changed)
		}
		r := tab.Get([]byte("kiwi"))
		if r == nil || string(r.Line) != s.stored {
			t.Fatalf("step %d: stored %q, want %q", i, r.Line, s.stored)
		}
		m := parseAT(t, s.stored)
		if string(r.Lat) != string(m.LatText) || string(r.Lng) != string(m.LngText) || string(r.Client) != "kiwi" || r.Time != m.Time {
			t.Errorf("step %d: record %q lat %q lng %q client %q", i, r.Line, r.Lat, r.Lng, r.Client)
		}
	}
	if tab.Len() != 1 {
		t.Errorf("Len = %d, want 1", tab.Len())
	}
}

// Every order of the same updates converges on the same record.
func TestTableConvergesInAnyOrder(t *testing.T) {
	lines := []string{
		"AT A +0.000000000 c +1+1 5",
		"AT B +0.000000000 c +1+1 5",
		"AT A +0.000000000 c +2+2 4.999999999",
		"AT C -3.000000000 c +3+3 5.000000000",
	}
	var want string
	perm := func(p []int) {
		tab := NewTable()
		for _, i := range p {
			tab.Apply(parseAT(t, lines[i]), []byte(lines[i]))
		}
		got := string(tab.Get([]byte("c")).Line)
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("order %v: %q, want %q", p, got, want)
		}
	}
	var rec func(p []int, used int)
	rec = func(p []int, used int) {
		if len(p) == len(lines) {
			perm(p)
			return
		}
		for i := range lines {
			if used&(1<<i) == 0 {
				rec(append(p, i), used|1<<i)
			}
		}
	}
	rec(nil, 0)
}

func TestTableSteadyStateDoesNotAllocate(t *testing.T) {
	tab := NewTable()
	msgs := make([]*codec.Message, 100)
	lines := make([][]byte, 100)
	for i := range msgs {
		lines[i] = fmt.Appendf(nil, "AT Hill +0.000000000 kiwi +34.068930-118.445127 %d", 1000+i)
		msgs[i] = parseAT(t, string(lines[i]))
	}
	i := 0
	allocs := testing.AllocsPerRun(99, func() {
		tab.Apply(msgs[i], lines[i])
		i++
	})
	if allocs > 0 {
		t.Errorf("Apply allocates %.1f times per newer record of a known client, want 0", allocs)
	}
}

func BenchmarkTableApply(b *testing.B) {
	tab := NewTable()
	line := []byte("AT Hill +0.000000000 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503")
	m := parseAT(b, string(line))
	b.ReportAllocs()
	for b.Loop() {
		m.Time.Nsec++
		if m.Time.Nsec >= 1e9 {
			m.Time.Nsec = 0
			m.Time.Sec++
		}
		tab.Apply(m, line)
	}
}

// at returns an AT line for client at time tm, from server, with its message.
func at(t testing.TB, server, client string, tm int) (*codec.Message, []byte) {
	line := fmt.Sprintf("AT %s +0.000000000 %s +1+1 %d", server, client, tm)
	return parseAT(t, line), []byte(line)
}

// TestTableDigest: a bucket's digest is the sum of its records' hashes, whatever order the
// updates came in, kept up to date as records are replaced.
func TestTableDigest(t *testing.T) {
	a, b := NewTable(), NewTable()
	const n = 3000
	for i := range n {
		a.Apply(at(t, "A", fmt.Sprint("c", i), 1))
	}
	for i := n - 1; i >= 0; i-- { // the same records, newest first, with older ones after
		b.Apply(at(t, "B", fmt.Sprint("c", i), 2))
		b.Apply(at(t, "A", fmt.Sprint("c", i), 0))
	}
	for i := range n {
		b.Apply(at(t, "A", fmt.Sprint("c", i), 1)) // not newer: kept out
		a.Apply(at(t, "B", fmt.Sprint("c", i), 2)) // newer: replaces
	}
	nonEmpty, total := 0, 0
	for k := range DigestBuckets {
		if a.Digest(k) != b.Digest(k) {
			t.Fatalf("bucket %d: digests %x and %x for the same records", k, a.Digest(k), b.Digest(k))
		}
		var sum uint64
		for _, r := range a.Bucket(k) {
			if BucketOf(r.Client) != k || r.Hash != xxhash.Sum64(r.Line) {
				t.Fatalf("record %q in bucket %d (BucketOf %d), hash %x", r.Line, k, BucketOf(r.Client), r.Hash)
			}
			sum += r.Hash
		}
		if sum != a.Digest(k) {
			t.Fatalf("bucket %d: digest %x, sum of its records %x", k, a.Digest(k), sum)
		}
		if len(a.Bucket(k)) > 0 {
			nonEmpty++
		}
		total += len(a.Bucket(k))
	}
	if total != n || nonEmpty < DigestBuckets/2 {
		t.Errorf("%d records in %d buckets, want %d records spread out", total, nonEmpty, n)
	}
	if NewTable().Digest(7) != 0 {
		t.Error("an empty bucket's digest is not 0")
	}
}

// TestTableDigestFindsOneRecord: two tables that differ in one record differ in the digest
// of that record's bucket only.
func TestTableDigestFindsOneRecord(t *testing.T) {
	a, b := NewTable(), NewTable()
	for i := range 10000 {
		a.Apply(at(t, "A", fmt.Sprint("c", i), 1))
		b.Apply(at(t, "A", fmt.Sprint("c", i), 1))
	}
	b.Apply(at(t, "B", "c4242", 2))
	var differ []int
	for k := range DigestBuckets {
		if a.Digest(k) != b.Digest(k) {
			differ = append(differ, k)
		}
	}
	if want := BucketOf([]byte("c4242")); len(differ) != 1 || differ[0] != want {
		t.Errorf("buckets %v differ, want [%d]", differ, want)
	}
}

// checkTable fails t unless every bucket's digest is the sum of its records' hashes, every
// record is in the right bucket and in the map, and the heap holds exactly the records.
func checkTable(t testing.TB, tab *Table) {
	t.Helper()
	n := 0
	for k := range DigestBuckets {
		var sum uint64
		for i, r := range tab.Bucket(k) {
			if !r.Live() || BucketOf(r.Client) != k || int(r.bidx) != i || tab.m[string(r.Client)] != r {
				t.Fatalf("bucket %d holds %q (live %v, index %d of %d)", k, r.Line, r.Live(), r.bidx, i)
			}
			sum += r.Hash
			n++
		}
		if sum != tab.Digest(k) {
			t.Fatalf("bucket %d: digest %x, sum of its records %x", k, tab.Digest(k), sum)
		}
	}
	var bytes int64
	for _, r := range tab.heap {
		bytes += RecordBytes(r)
	}
	if bytes != tab.Bytes() {
		t.Fatalf("Bytes = %d, the records' RecordBytes sum to %d", tab.Bytes(), bytes)
	}
	if n != tab.Len() || len(tab.heap) != tab.Len() {
		t.Fatalf("%d records in buckets, %d in the heap, Len %d", n, len(tab.heap), tab.Len())
	}
	for i, r := range tab.heap {
		if int(r.hidx) != i || i > 0 && tab.heap.Less(i, (i-1)/2) {
			t.Fatalf("heap entry %d (%q) out of order", i, r.Line)
		}
	}
}

// TestTableMaxRecords: at max_records a new client's record evicts the one with the oldest
// client time (at equal times, the smaller line, as codec.Newer ranks them); a new client
// not newer than every record held is not stored; clients already held move as before. The
// digest and the heap hold exactly what is held.
func TestTableMaxRecords(t *testing.T) {
	var counts RecordCounts
	tab := NewTable()
	tab.SetLimits(TableLimits{MaxRecords: 3, Counts: &counts})
	for _, step := range []struct {
		server, client string
		tm             int
		stored         bool
		held           string // the clients held after it
	}{
		{"A", "a", 10, true, "a"},
		{"A", "b", 20, true, "a b"},
		{"A", "c", 30, true, "a b c"},
		{"A", "a", 40, true, "a b c"},   // a known client moves: nothing evicted
		{"A", "d", 5, false, "a b c"},   // older than every record held: table_full
		{"A", "e", 25, true, "a c e"},   // evicts b, the oldest (20)
		{"B", "f", 30, true, "a c f"},   // evicts e (25)
		{"A", "g", 30, true, "a f g"},   // c and f are both at 30: c's line is the smaller, so c goes
		{"A", "ab", 30, false, "a f g"}, // at 30 too, but its line is smaller than g's, the oldest now
	} {
		if got := tab.Apply(at(t, step.server, step.client, step.tm)); got != step.stored {
			t.Errorf("%s at %d: stored %v, want %v", step.client, step.tm, got, step.stored)
		}
		var held []string
		for _, c := range []string{"a", "ab", "b", "c", "d", "e", "f", "g"} {
			if tab.Get([]byte(c)) != nil {
				held = append(held, c)
			}
		}
		if got := strings.Join(held, " "); got != step.held {
			t.Fatalf("after %s at %d: holds %q, want %q", step.client, step.tm, got, step.held)
		}
		checkTable(t, tab)
	}
	if e, f := counts.Evicted.Load(), counts.TableFull.Load(); e != 3 || f != 2 {
		t.Errorf("evicted %d, table_full %d; want 3 and 2", e, f)
	}
}

// TestTableMaxBytes: past max_record_bytes the oldest records are evicted, for a new client
// and for a known client whose record grows; a record that would be the oldest itself and
// does not fit is not stored.
func TestTableMaxBytes(t *testing.T) {
	rec := func(client string, tm, locLen int) (*codec.Message, []byte) {
		line := fmt.Sprintf("AT A +0 %s %s %d", client, paddedLocation(locLen), tm)
		return parseAT(t, line), []byte(line)
	}
	m, l := rec("a", 1, 1000)
	one := recordBytes(len(l), len(m.Client)) // about 1.5 KB
	var counts RecordCounts
	tab := NewTable()
	tab.SetLimits(TableLimits{MaxBytes: 3 * one, Counts: &counts})
	tab.Apply(m, l)
	tab.Apply(rec("b", 2, 1000))
	tab.Apply(rec("c", 3, 1000))
	if tab.Bytes() != 3*one {
		t.Fatalf("Bytes = %d, want %d", tab.Bytes(), 3*one)
	}
	if !tab.Apply(rec("d", 4, 1000)) || tab.Get([]byte("a")) != nil {
		t.Fatal("d did not evict a, the oldest")
	}
	if !tab.Apply(rec("c", 5, 2000)) || tab.Get([]byte("b")) != nil || tab.Get([]byte("d")) == nil {
		t.Fatal("c, grown to about twice its size, did not evict b alone")
	}
	checkTable(t, tab)
	if tab.Bytes() > 3*one {
		t.Errorf("Bytes = %d, over the limit %d", tab.Bytes(), 3*one)
	}
	// d at 4 is the oldest; grown (at the same time, a larger line: newer), it would not
	// fit beside c without evicting c, which is newer: it is not stored, and d keeps its
	// record.
	if tab.Apply(rec("d", 4, 2000)) || tab.Get([]byte("d")).Time.Sec != 4 || len(tab.Get([]byte("d")).Line) > 1100 {
		t.Error("an update that would be the oldest record and does not fit was stored")
	}
	if counts.Evicted.Load() != 2 || counts.TableFull.Load() != 1 {
		t.Errorf("evicted %d, table_full %d; want 2 and 1", counts.Evicted.Load(), counts.TableFull.Load())
	}
	checkTable(t, tab)
}

// TestTableEvictionLeavesDigest: two tables capped alike that were given the same records,
// in different orders and with more clients than the cap, hold the same records and the
// same digests: what is evicted leaves the digest, and every server evicts alike.
func TestTableEvictionLeavesDigest(t *testing.T) {
	const n, max = 5000, 1000
	a, b := NewTable(), NewTable()
	a.SetLimits(TableLimits{MaxRecords: max})
	b.SetLimits(TableLimits{MaxRecords: max})
	for i := range n {
		a.Apply(at(t, "A", fmt.Sprint("c", i), i%2500))
	}
	for i := n - 1; i >= 0; i-- {
		b.Apply(at(t, "A", fmt.Sprint("c", i), i%2500))
	}
	checkTable(t, a)
	checkTable(t, b)
	if a.Len() != max || b.Len() != max {
		t.Fatalf("Len %d and %d, want %d", a.Len(), b.Len(), max)
	}
	for k := range DigestBuckets {
		if a.Digest(k) != b.Digest(k) {
			t.Fatalf("bucket %d: digests %x and %x", k, a.Digest(k), b.Digest(k))
		}
	}
	if old := a.Oldest(); old.Time.Sec != 2000 {
		t.Errorf("oldest record held %q, want one at 2000: the 1000 newest of times 0-2499, each twice", old.Line)
	}
}

// TestTableTTL: with a TTL, a record older than it is not stored, is not returned once it
// has aged past it, and leaves the table (and its digest) at Expire, oldest first, a bounded
// batch at a time; records within it stay.
func TestTableTTL(t *testing.T) {
	var counts RecordCounts
	now := time.Unix(10_000, 0)
	tab := NewTable()
	tab.SetLimits(TableLimits{TTL: time.Hour, Now: func() time.Time { return now }, Counts: &counts})
	if tab.Apply(at(t, "A", "old", 10_000-3601)) {
		t.Error("a record older than the TTL was stored")
	}
	for i := range 10 {
		tab.Apply(at(t, "A", fmt.Sprint("c", i), 7000+100*i)) // 7000 ... 7900
	}
	checkTable(t, tab)
	now = now.Add(1000 * time.Second) // cutoff 7400: c0 to c3 expired
	if tab.Get([]byte("c3")) != nil || tab.Get([]byte("c4")) == nil {
		t.Error("Get: an expired record returned, or a live one not")
	}
	if n := tab.Expire(3); n != 3 {
		t.Errorf("Expire(3) = %d", n)
	}
	if n := tab.Expire(100); n != 1 {
		t.Errorf("Expire(100) = %d, want 1 (c3)", n)
	}
	checkTable(t, tab)
	if tab.Len() != 6 || tab.Oldest().Time.Sec != 7400 {
		t.Errorf("Len %d, oldest %q; want 6 from c4 (7400)", tab.Len(), tab.Oldest().Line)
	}
	if e, o := counts.Expired.Load(), counts.TooOld.Load(); e != 4 || o != 1 {
		t.Errorf("expired %d, too old %d; want 4 and 1", e, o)
	}
	// Apply expires a few as it goes, so the expired leave as fast as records come.
	now = now.Add(2000 * time.Second)
	tab.Apply(at(t, "A", "new", 11_500))
	if tab.Len() != 5 {
		t.Errorf("Len %d after an Apply with every old record expired, want 5 (two fewer, one more)", tab.Len())
	}
	checkTable(t, tab)
}

// fillRecords applies n records to tab: client IDs of 24 bytes and AT lines of 98, like
// "kiwi0000042.cs.ucla.edu" at "+34.068930-118.445127", or, with long, of max_line (4096)
// bytes with client IDs of 256 bytes, the most a client can make a server hold.
func fillRecords(t testing.TB, tab *Table, n int, long bool) {
	pad := paddedLocation(4096 - 256 - len("AT "+strings.Repeat("H", 64)+" +0.263873386   1621464827.959498503"))
	for i := range n {
		var line []byte
		if long {
			line = fmt.Appendf(nil, "AT %s +0.263873386 %0256d %s 1621464827.959498503", strings.Repeat("H", 64), i, pad)
		} else {
			line = fmt.Appendf(nil, "AT Hill +0.263873386 kiwi%07d.cs.ucla.edu +34.068930-118.445127 1621464827.959498503", i)
		}
		m, err := codec.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		tab.Apply(&m, line)
	}
}

// TestRecordBytesBoundsHeap: what RecordBytes counts for a record is at least the heap it
// holds, for the usual short records and for the longest a client can make, so that
// max_record_bytes bounds the table's memory.
func TestRecordBytesBoundsHeap(t *testing.T) {
	for _, long := range []bool{false, true} {
		n := 50_000
		if long {
			n = 5_000
		}
		before := heapInUse()
		tab := NewTable()
		fillRecords(t, tab, n, long)
		held := float64(int64(heapInUse())-int64(before)) / float64(n)
		counted := float64(tab.Bytes()) / float64(n)
		t.Logf("long %v: %.0f bytes held and %.0f counted per record", long, held, counted)
		if held > counted {
			t.Errorf("long %v: a record holds %.0f bytes of heap, more than the %.0f RecordBytes counts", long, held, counted)
		}
		runtime.KeepAlive(tab)
	}
}

// BenchmarkRecordMemory reports the heap a record holds, after a collection, with 10,000,
// 100,000 and a million records held (go test -run '^$' -bench RecordMemory -benchtime 1x).
func BenchmarkRecordMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				before := heapInUse()
				tab := NewTable()
				fillRecords(b, tab, n, false)
				b.ReportMetric(float64(int64(heapInUse())-int64(before))/float64(n), "heap-B/record")
				b.ReportMetric(float64(tab.Bytes())/float64(n), "counted-B/record")
				runtime.KeepAlive(tab)
			}
		})
	}
}
