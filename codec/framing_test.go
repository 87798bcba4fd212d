package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestScanLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	cases := []struct {
		buf  string
		max  int
		line string
		n    int
		err  error
	}{
		{"", 10, "", 0, nil},
		{"abc", 10, "", 0, nil},
		{"abc\n", 10, "abc", 4, nil},
		{"abc\r\n", 10, "abc", 5, nil},
		{"abc\r\r\n", 10, "abc\r", 6, nil},
		{"\n", 10, "", 1, nil},
		{"\r\n", 10, "", 2, nil},
		{"a\rb\nc\n", 10, "a\rb", 4, nil},
		{"0123456789\n", 10, "0123456789", 11, nil}, // exactly max before "\n"
		{"012345678\r\n", 10, "012345678", 11, nil},
		{"0123456789\r\n", 10, "0123456789", 12, nil}, // exactly max before "\r\n"
		{"0123456789", 10, "", 0, nil},                // max bytes held, no "\n" yet
		{"0123456789\r", 10, "", 0, nil},              // max+1 held: the "\r" may end it
		{"0123456789\rx", 10, "0123456789\r", 0, ErrLineTooLong},
		{"0123456789\r\r", 10, "0123456789\r", 0, ErrLineTooLong},
		{"0123456789\r\r\n", 10, "0123456789\r", 0, ErrLineTooLong}, // one "\r" dropped
		{"012345678\r\r\n", 10, "012345678\r", 12, nil},
		{"01234567890", 10, "01234567890", 0, ErrLineTooLong},
		{"01234567890\n", 10, "01234567890", 0, ErrLineTooLong},
		{"01234567890\r\n", 10, "01234567890", 0, ErrLineTooLong},
		{"012345678901\n", 10, "01234567890", 0, ErrLineTooLong},
		{"\r\n", 1, "", 2, nil},
		{"x\r\n", 1, "x", 3, nil},
		{"x\r", 1, "", 0, nil},
		{"\r\r", 1, "", 0, nil}, // "\r" then "\r\n", maybe
		{"\r\r\n", 1, "\r", 3, nil},
		{"\r\rx", 1, "\r\r", 0, ErrLineTooLong},
		{"xy", 1, "xy", 0, ErrLineTooLong},
		{long, 10, long[:11], 0, ErrLineTooLong},
		{long, 70, long[:TooLongEcho], 0, ErrLineTooLong},
		{long + "\nnext\n", 70, long[:TooLongEcho], 0, ErrLineTooLong},
		{"0123456789ab\nnext", 10, "0123456789a", 0, ErrLineTooLong},
		{long + "\n", 0, long, len(long) + 1, nil}, // 0: DefaultMaxLine
		{long + "\n", math.MaxInt, long, len(long) + 1, nil},
		{long, math.MaxInt, "", 0, nil},
	}
	for _, tc := range cases {
		line, n, err := ScanLine([]byte(tc.buf), tc.max)
		if string(line) != tc.line || n != tc.n || err != tc.err {
			t.Errorf("ScanLine(%q, %d) = %q, %d, %v; want %q, %d, %v", tc.buf, tc.max, line, n, err, tc.line, tc.n, tc.err)
		}
	}
}

func TestDecoder(t *testing.T) {
	d := NewDecoder(8)
	d.Feed([]byte("one\r\ntwo\nthr"))
	for _, want := range []string{"one", "two"} {
		line, ok, err := d.Next()
		if !ok || err != nil || string(line) != want {
			t.Fatalf("Next = %q, %v, %v; want %q", line, ok, err, want)
		}
	}
	if line, ok, err := d.Next(); ok || err != nil || line != nil {
		t.Fatalf("Next = %q, %v, %v; want nothing", line, ok, err)
	}
	if d.Buffered() != 3 {
		t.Fatalf("Buffered = %d, want 3", d.Buffered())
	}
	d.Feed([]byte("ee\r"))
	if got := d.Final(); string(got) != "three" {
		t.Fatalf("Final = %q, want %q", got, "three")
	}
	if got := d.Final(); got != nil {
		t.Fatalf("second Final = %q, want nil", got)
	}
	d.Feed([]byte("\r"))
	if got := d.Final(); got == nil || len(got) != 0 {
		t.Fatalf("Final of a lone \\r = %q, want empty non-nil", got)
	}
	d.Feed([]byte("123456789"))
	line, ok, err := d.Next()
	if ok || !errors.Is(err, ErrLineTooLong) || string(line) != "123456789" {
		t.Fatalf("Next = %q, %v, %v; want too long", line, ok, err)
	}
	d.Feed([]byte("x\n"))
	if line2, _, err := d.Next(); err != ErrLineTooLong || string(line2) != "123456789" {
		t.Fatalf("error not sticky: %q, %v", line2, err)
	}
	if d.Final() != nil || d.Buffered() != 0 {
		t.Fatal("Final or Buffered after the error")
	}
	huge := NewDecoder(math.MaxInt)
	huge.Feed([]byte("a\nb"))
	if line, ok, err := huge.Next(); !ok || err != nil || string(line) != "a" {
		t.Fatalf("Decoder(MaxInt): %q, %v, %v", line, ok, err)
	}
	if line, ok, err := huge.Next(); ok || err != nil || line != nil {
		t.Fatalf("Decoder(MaxInt): %q, %v, %v", line, ok, err)
	}
	var zero Decoder
	zero.Feed([]byte(strings.Repeat("y", DefaultMaxLine) + "\n"))
	if line, ok, err := zero.Next(); !ok || err != nil || len(line) != DefaultMaxLine {
		t.Fatalf("zero Decoder: %d, %v, %v", len(line), ok, err)
	}
}

// TestLineOfMaxBytesEndingInCRLFIsAccepted: a line of exactly the limit (4096 bytes by
// default) ending in "\r\n" was rejected as too long while the same line ending in "\n"
// was accepted; the "\r" of "\r\n" is not part of the line (SPEC §2). It checks both
// framers, the line in one piece and with the "\r" and "\n" arriving apart.
func TestLineOfMaxBytesEndingInCRLFIsAccepted(t *testing.T) {
	body := strings.Repeat("y", DefaultMaxLine)
	for _, ending := range []string{"\n", "\r\n"} {
		stream := body + ending + "next\n"
		line, n, err := ScanLine([]byte(stream), 0)
		if err != nil || string(line) != body || n != len(body+ending) {
			t.Errorf("ScanLine(%d bytes + %q) = %d bytes, %d, %v; want the %d bytes", len(body), ending, len(line), n, err, len(body))
		}
		cuts := [][]string{{stream}, {body, ending + "next\n"}}
		if ending == "\r\n" {
			cuts = append(cuts, []string{body + "\r", "\nnext\n"}, []string{body, "\r", "\n", "next\n"})
		}
		for _, parts := range cuts {
			var chunks, chunks2 [][]byte
			for _, p := range parts {
				chunks = append(chunks, []byte(p))
				chunks2 = append(chunks2, []byte(p))
			}
			want := frame{Lines: []string{body, "next"}}
			if got := decodeChunks(chunks, 0); !reflect.DeepEqual(got, want) {
				t.Errorf("Decoder, %q ending, cut %d ways: %d lines, err %.80s", ending, len(parts), len(got.Lines), got.Err)
			}
			if got := scanChunks(chunks2, 0); !reflect.DeepEqual(got, want) {
				t.Errorf("ScanLine, %q ending, cut %d ways: %d lines, err %.80s", ending, len(parts), len(got.Lines), got.Err)
			}
		}
	}
	// One byte more is too long with either ending, and so is max+1 bytes held whose last
	// byte is not "\r".
	for _, s := range []string{body + "y\n", body + "y\r\n", body + "\r\r\n", body + "\ry", body + "y"} {
		if _, _, err := ScanLine([]byte(s), 0); err != ErrLineTooLong {
			t.Errorf("ScanLine(%d bytes ending %q) = %v, want ErrLineTooLong", len(s), s[len(s)-3:], err)
		}
		d := NewDecoder(0)
		d.Feed([]byte(s))
		if _, _, err := d.Next(); err != ErrLineTooLong {
			t.Errorf("Decoder on %d bytes ending %q: %v, want ErrLineTooLong", len(s), s[len(s)-3:], err)
		}
	}
}

// modelFrame is the framing rule written plainly, to check both framers against: each
// "\n" ends a line, one "\r" before it is dropped, and a line of more than max bytes is
// too long; an unterminated tail is too long past max bytes, or max+1 bytes not ending in
// "\r" (at EOF, the "\r" is dropped and the tail is a line).
func modelFrame(stream string, max int) frame {
	var f frame
	tooLong := func(line string) frame {
		f.Err = fmt.Sprintf("%v: %q", ErrLineTooLong, line[:min(len(line), TooLongEcho, max+1)])
		return f
	}
	for {
		i := strings.IndexByte(stream, '\n')
		if i < 0 {
			break
		}
		raw := stream[:i]
		if line := strings.TrimSuffix(raw, "\r"); len(line) <= max {
			f.Lines = append(f.Lines, line)
		} else {
			return tooLong(raw)
		}
		stream = stream[i+1:]
	}
	if stream == "" {
		return f
	}
	if len(stream) > max+1 || len(stream) == max+1 && stream[max] != '\r' {
		return tooLong(stream)
	}
	f.Tail = "<" + strings.TrimSuffix(stream, "\r") + ">"
	return f
}

// frame is what a framer made of a stream: the lines, then either the EOF tail or an error.
type frame struct {
	Lines []string
	Tail  string
	Err   string
}

func decodeChunks(chunks [][]byte, max int) frame {
	var f frame
	d := NewDecoder(max)
	for _, c := range chunks {
		d.Feed(c)
		// Scribble over the chunk: the Decoder must have copied it.
		for i := range c {
			c[i] = '#'
		}
		for {
			line, ok, err := d.Next()
			if err != nil {
				f.Err = fmt.Sprintf("%v: %q", err, line)
				return f
			}
			if !ok {
				break
			}
			f.Lines = append(f.Lines, string(line))
		}
	}
	if tail := d.Final(); tail != nil {
		f.Tail = "<" + string(tail) + ">"
	}
	return f
}

// scanChunks frames like a gnet handler: the bytes not consumed stay buffered
// (gnet's inbound buffer) and ScanLine runs on all of them when more arrive.
func scanChunks(chunks [][]byte, max int) frame {
	var f frame
	var held []byte
	for _, c := range chunks {
		held = append(held, c...)
		for {
			line, n, err := ScanLine(held, max)
			if err != nil {
				f.Err = fmt.Sprintf("%v: %q", err, line)
				return f
			}
			if n == 0 {
				break
			}
			f.Lines = append(f.Lines, string(line))
			held = held[n:]
		}
	}
	if len(held) > 0 {
		f.Tail = "<" + string(trimCR(held)) + ">"
	}
	return f
}

var splitStreams = []string{
	"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\nWHATSAT kiwi.cs.ucla.edu 10 5\r\n",
	"a\r\n\r\nb\r\r\n\n\nc\rd\ntail\r",
	"short\n" + strings.Repeat("L", 40) + "\nafter\n",        // too long with max 32
	"short\n" + strings.Repeat("L", 40),                      // too long, no "\n"
	"ok\n" + strings.Repeat("M", 32) + "\r\nmore\n",          // 32 before "\r\n": fits
	"ok\n" + strings.Repeat("M", 31) + "\r\nmore\n",          // 31: fits
	strings.Repeat("N", 32) + "\n" + strings.Repeat("O", 32), // a full line, then a full tail
	"x\n" + strings.Repeat("P", 100) + "\ny\n",               // too long for both limits
	"ok\n" + strings.Repeat("Q", 33) + "\r\nmore\n",          // 33 before "\r\n": too long
	"ok\n" + strings.Repeat("R", 32) + "\r\r\nmore\n",        // 33 after dropping one "\r"
	"ok\n" + strings.Repeat("S", 32) + "\rT\n",               // a "\r" at max+1 not followed by "\n"
	"ok\n" + strings.Repeat("U", 32) + "\r",                  // max+1 with "\r" last, at EOF
	"ok\n" + strings.Repeat("V", 33),                         // max+1 without "\r", at EOF
	strings.Repeat("W", 70) + "\r\n" + strings.Repeat("X", 71) + "\r\n",
}

// TestEverySplit cuts each stream at every offset (and every pair of offsets) and
// demands the lines, tail and errors of modelFrame from the Decoder and from ScanLine.
func TestEverySplit(t *testing.T) {
	for _, max := range []int{32, 70} {
		testEverySplit(t, max)
	}
}

func testEverySplit(t *testing.T, max int) {
	for _, s := range splitStreams {
		want := modelFrame(s, max)
		if got := decodeChunks([][]byte{[]byte(s)}, max); !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %q: Decoder %+v, model %+v", s, got, want)
		}
		if got := scanChunks([][]byte{[]byte(s)}, max); !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %q: ScanLine %+v, model %+v", s, got, want)
		}
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				mk := func() [][]byte {
					return [][]byte{[]byte(s[:i]), []byte(s[i:j]), []byte(s[j:])}
				}
				if got := decodeChunks(mk(), max); !reflect.DeepEqual(got, want) {
					t.Fatalf("stream %q cut at %d,%d: Decoder %+v, want %+v", s, i, j, got, want)
				}
				if got := scanChunks(mk(), max); !reflect.DeepEqual(got, want) {
					t.Fatalf("stream %q cut at %d,%d: ScanLine %+v, want %+v", s, i, j, got, want)
				}
			}
		}
		// Byte by byte.
		var bytesOne [][]byte
		for k := range len(s) {
			bytesOne = append(bytesOne, []byte{s[k]})
		}
		if got := decodeChunks(bytesOne, max); !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %q byte by byte: Decoder %+v, want %+v", s, got, want)
		}
	}
	if max != 32 {
		return
	}
	// Spot-check the expectations themselves.
	if f := decodeChunks([][]byte{[]byte(splitStreams[1])}, max); !reflect.DeepEqual(f.Lines, []string{"a", "", "b\r", "", "", "c\rd"}) || f.Tail != "<tail>" {
		t.Fatalf("stream 1: %+v", f)
	}
	if f := decodeChunks([][]byte{[]byte(splitStreams[2])}, max); f.Err == "" || !reflect.DeepEqual(f.Lines, []string{"short"}) {
		t.Fatalf("stream 2: %+v", f)
	}
	if f := decodeChunks([][]byte{[]byte(splitStreams[5])}, max); f.Err != "" || len(f.Lines) != 3 {
		t.Fatalf("stream 5: %+v", f)
	}
}

func TestAppendTooLong(t *testing.T) {
	long := bytes.Repeat([]byte("z"), 100)
	if got := string(AppendTooLong(nil, long)); got != "? "+string(long[:64])+"\n" {
		t.Errorf("AppendTooLong = %q", got)
	}
	if got := string(AppendTooLong(nil, []byte("abc\ndef"))); got != "? abc\n" {
		t.Errorf("AppendTooLong = %q", got)
	}
}
