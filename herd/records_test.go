package herd

import (
	"fmt"
	"testing"

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
