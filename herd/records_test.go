package herd

import (
	"fmt"
	"testing"

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
