package codec

import (
	"bytes"
	"testing"
)

var benchIAMAT = []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503")

func BenchmarkParseIAMAT(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchIAMAT)))
	for b.Loop() {
		if _, err := ParseLine(benchIAMAT); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAT(b *testing.B) {
	line := []byte("AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLine(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendAT(b *testing.B) {
	m, err := ParseLine(benchIAMAT)
	if err != nil {
		b.Fatal(err)
	}
	recv := Time{Sec: 1621464828, Nsec: 223371889}
	dst := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendAT(dst[:0], "Hill", recv, &m)
	}
}

// benchStream is 64 pipelined lines, as a client might send them in one write.
var benchStream = bytes.Repeat([]byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\r\nWHATSAT kiwi.cs.ucla.edu 10 5\n"), 32)

func BenchmarkDecoder(b *testing.B) {
	d := NewDecoder(DefaultMaxLine)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchStream)))
	for b.Loop() {
		d.Feed(benchStream)
		for {
			_, ok, err := d.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	}
}

func BenchmarkAppendPlacesBody(b *testing.B) {
	body := placesBody(20)
	dst := make([]byte, 0, len(body))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var err error
		if dst, err = AppendPlacesBody(dst[:0], body, 5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendStyled(b *testing.B) {
	v, err := ParseJSON(placesBody(20))
	if err != nil {
		b.Fatal(err)
	}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendStyled(dst[:0], v)
	}
}

func BenchmarkAppendErrorBody(b *testing.B) {
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendErrorBody(dst[:0], "UNKNOWN_ERROR", "places: timeout")
	}
}

func TestPlacesBodyZeroAllocs(t *testing.T) {
	body := placesBody(20)
	dst := make([]byte, 0, len(body))
	n := testing.AllocsPerRun(20, func() {
		var err error
		if dst, err = AppendPlacesBody(dst[:0], body, 5); err != nil {
			t.Fatal(err)
		}
		dst = AppendErrorBody(dst[:0], "UNKNOWN_ERROR", "places: timeout")
	})
	if n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
	d := NewDecoder(0)
	d.Feed(benchStream)
	n = testing.AllocsPerRun(20, func() {
		d.Feed(benchStream)
		for {
			if _, ok, _ := d.Next(); !ok {
				break
			}
		}
	})
	if n != 0 {
		t.Errorf("Decoder allocs = %v, want 0", n)
	}
}
