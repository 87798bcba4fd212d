package codec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestDecoderNext is the table of what Next makes of a stream fed in one chunk: the first
// line and whether it was complete, or the error and its echo.
func TestDecoderNext(t *testing.T) {
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
		d := Decoder{Max: tc.max}
		d.Feed([]byte(tc.buf))
		line, ok, err := d.Next()
		if string(line) != tc.line || ok != (tc.n > 0) || err != tc.err {
			t.Errorf("Next of %q, max %d = %q, %v, %v; want %q, %v, %v", tc.buf, tc.max, line, ok, err, tc.line, tc.n > 0, tc.err)
		}
		if tc.n > 0 && tc.n < len(tc.buf) {
			// What follows the line is framed next, starting where the line ended.
			want := Decoder{Max: tc.max}
			want.Feed([]byte(tc.buf[tc.n:]))
			l1, ok1, err1 := d.Next()
			l2, ok2, err2 := want.Next()
			if string(l1) != string(l2) || ok1 != ok2 || err1 != err2 {
				t.Errorf("after the first line of %q: %q, %v, %v; want %q, %v, %v", tc.buf, l1, ok1, err1, l2, ok2, err2)
			}
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
	d.Feed([]byte("ee\r"))
	if got, err := d.Final(); string(got) != "three" || err != nil {
		t.Fatalf("Final = %q, %v; want %q", got, err, "three")
	}
	if got, err := d.Final(); got != nil || err != nil {
		t.Fatalf("second Final = %q, %v; want nil", got, err)
	}
	d.Feed([]byte("\r"))
	if got, err := d.Final(); got == nil || len(got) != 0 || err != nil {
		t.Fatalf("Final of a lone \\r = %q, %v; want empty non-nil", got, err)
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
	if line, err := d.Final(); line != nil || err != nil {
		t.Fatal("Final after the error")
	}
	d.Reset()
	d.Feed([]byte("ok\n"))
	if line, ok, err := d.Next(); !ok || err != nil || string(line) != "ok" {
		t.Fatalf("after Reset: %q, %v, %v", line, ok, err)
	}
	huge := NewDecoder(math.MaxInt)
	huge.Feed([]byte("a\nb"))
	if line, ok, err := huge.Next(); !ok || err != nil || string(line) != "a" {
		t.Fatalf("Decoder(MaxInt): %q, %v, %v", line, ok, err)
	}
	if line, ok, err := huge.Next(); ok || err != nil || line != nil {
		t.Fatalf("Decoder(MaxInt): %q, %v, %v", line, ok, err)
	}
	hugeAT := Decoder{Max: math.MaxInt, AT: true}
	hugeAT.Feed([]byte("AT a\nb"))
	if line, ok, err := hugeAT.Next(); !ok || err != nil || string(line) != "AT a" {
		t.Fatalf("Decoder(MaxInt, AT): %q, %v, %v", line, ok, err)
	}
	if line, ok, err := hugeAT.Next(); ok || err != nil || line != nil {
		t.Fatalf("Decoder(MaxInt, AT): %q, %v, %v", line, ok, err)
	}
	if got := LineLimit([]byte("AT"), math.MaxInt); got != math.MaxInt {
		t.Errorf("LineLimit(AT, MaxInt) = %d", got)
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
		cuts := [][]string{{stream}, {body, ending + "next\n"}}
		if ending == "\r\n" {
			cuts = append(cuts, []string{body + "\r", "\nnext\n"}, []string{body, "\r", "\n", "next\n"})
		}
		for _, parts := range cuts {
			var chunks [][]byte
			for _, p := range parts {
				chunks = append(chunks, []byte(p))
			}
			want := frame{Lines: []string{body, "next"}}
			if got := decodeChunks(chunks, 0); !reflect.DeepEqual(got, want) {
				t.Errorf("Decoder, %q ending, cut %d ways: %d lines, err %.80s", ending, len(parts), len(got.Lines), got.Err)
			}
		}
	}
	// One byte more is too long with either ending, and so is max+1 bytes held whose last
	// byte is not "\r".
	for _, s := range []string{body + "y\n", body + "y\r\n", body + "\r\r\n", body + "\ry", body + "y"} {
		d := NewDecoder(0)
		d.Feed([]byte(s))
		if _, _, err := d.Next(); err != ErrLineTooLong {
			t.Errorf("Decoder on %d bytes ending %q: %v, want ErrLineTooLong", len(s), s[len(s)-3:], err)
		}
	}
}

// modelFrame is the framing rule written plainly, to check the Decoder against: each
// "\n" ends a line, one "\r" before it is dropped, and a line of more than max bytes is
// too long; an unterminated tail is too long past max bytes, or max+1 bytes not ending in
// "\r" (at EOF, the "\r" is dropped and the tail is a line).
func modelFrame(stream string, max int) frame { return modelFrameAT(stream, max, false) }

// modelFrameAT is modelFrame for a Decoder with AT set (at true): a line whose first field is
// "AT" may be ATOverhead bytes longer, and so may the bytes held of a tail whose first field
// has not fully arrived (only white space, maybe then "A" or "AT"); at EOF the tail is judged
// as a line.
func modelFrameAT(stream string, max int, at bool) frame {
	return modelFrameSkip(stream, max, at, false)
}

// modelFrameSkip is modelFrameAT, and with skip the rule of a Decoder whose user calls
// SkipLine after each ErrLineTooLong: a too-long line is an entry "!" and the error in
// Lines, and framing goes on after its "\n"; a too-long tail is the last entry.
func modelFrameSkip(stream string, max int, at, skip bool) frame {
	var f frame
	tooLong := func(line string) frame {
		f.Err = fmt.Sprintf("%v: %q", ErrLineTooLong, line[:min(len(line), TooLongEcho, max+1)])
		if skip {
			f.Lines = append(f.Lines, "!"+f.Err)
			f.Err = ""
		}
		return f
	}
	white := func(r rune) bool { return strings.ContainsRune(" \t\r\v\f", r) }
	lineLimit := func(line string) int {
		if fs := strings.FieldsFunc(line, white); at && len(fs) > 0 && fs[0] == "AT" {
			return max + ATOverhead
		}
		return max
	}
	for {
		i := strings.IndexByte(stream, '\n')
		if i < 0 {
			break
		}
		raw := stream[:i]
		if line := strings.TrimSuffix(raw, "\r"); len(line) <= lineLimit(line) {
			f.Lines = append(f.Lines, line)
		} else if f = tooLong(raw); !skip {
			return f
		}
		stream = stream[i+1:]
	}
	if stream == "" {
		return f
	}
	held := max
	if first := strings.TrimLeftFunc(stream, white); at && (strings.HasPrefix("AT", first) ||
		len(first) > 2 && first[:2] == "AT" && white(rune(first[2]))) {
		held = max + ATOverhead
	}
	line := strings.TrimSuffix(stream, "\r")
	if len(stream) > held+1 || len(stream) == held+1 && stream[held] != '\r' || len(line) > lineLimit(line) {
		return tooLong(stream)
	}
	f.Tail = "<" + line + ">"
	return f
}

// frame is what a framer made of a stream: the lines, then either the EOF tail or an error.
type frame struct {
	Lines []string
	Tail  string
	Err   string
}

func decodeChunks(chunks [][]byte, max int) frame {
	return decodeWith(&Decoder{Max: max}, chunks, false)
}

// decodeWith frames chunks with d, scribbling over each chunk once d has returned its lines:
// d must have copied what it keeps of it. With skip, it calls SkipLine after each error
// and goes on, as modelFrameSkip.
func decodeWith(d *Decoder, chunks [][]byte, skip bool) frame {
	var f frame
	for _, c := range chunks {
		d.Feed(c)
		for {
			line, ok, err := d.Next()
			if err != nil && skip {
				f.Lines = append(f.Lines, fmt.Sprintf("!%v: %q", err, line))
				d.SkipLine()
				continue
			}
			if err != nil {
				f.Err = fmt.Sprintf("%v: %q", err, line)
				return f
			}
			if !ok {
				break
			}
			f.Lines = append(f.Lines, string(line))
		}
		for i := range c {
			c[i] = '#'
		}
	}
	tail, err := d.Final()
	if err != nil && skip {
		f.Lines = append(f.Lines, fmt.Sprintf("!%v: %q", err, tail))
		return f
	}
	if err != nil {
		f.Err = fmt.Sprintf("%v: %q", err, tail)
		return f
	}
	if tail != nil {
		f.Tail = "<" + string(tail) + ">"
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
// demands the lines, tail and errors of modelFrame from the Decoder.
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
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				mk := func() [][]byte {
					return [][]byte{[]byte(s[:i]), []byte(s[i:j]), []byte(s[j:])}
				}
				if got := decodeChunks(mk(), max); !reflect.DeepEqual(got, want) {
					t.Fatalf("stream %q cut at %d,%d: Decoder %+v, want %+v", s, i, j, got, want)
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

// atStreams exercise the AT allowance with max 32: AT lines up to 32+ATOverhead bytes, and
// white space before the first field, which must not make the result depend on the cut.
// Each comes with what modelFrameAT makes of it (lines, tail, error), to check the model.
var atStreams = []struct {
	stream string
	lines  int
	tail   string // without the <> around it
	err    bool
}{
	{"AT " + strings.Repeat("a", 40) + "\nIAMAT x\n", 2, "", false},                                 // an AT line past max
	{"AT " + strings.Repeat("b", 157) + "\r\nnext\n", 2, "", false},                                 // exactly 32+128
	{"AT " + strings.Repeat("c", 158) + "\nnext\n", 0, "", true},                                    // one more: too long
	{"IAMAT " + strings.Repeat("d", 40) + "\n", 0, "", true},                                        // not AT: too long
	{strings.Repeat(" ", 40) + "AT x\n", 1, "", false},                                              // white space, then AT
	{strings.Repeat("\t", 40) + "IAMAT x\n", 0, "", true},                                           // white space, then not AT
	{strings.Repeat(" ", 40) + "\n", 0, "", true},                                                   // white space only
	{strings.Repeat(" ", 40) + "AT", 0, strings.Repeat(" ", 40) + "AT", false},                      // a tail that is an AT line
	{strings.Repeat(" ", 40) + "A", 0, "", true},                                                    // a tail that is not
	{strings.Repeat(" ", 40), 0, "", true},                                                          // a tail of white space
	{strings.Repeat(" ", 170) + "AT x\n", 0, "", true},                                              // too much white space
	{"ATX" + strings.Repeat("e", 40) + "\n", 0, "", true},                                           // "AT" is not the field
	{"A" + strings.Repeat("T", 40) + "\n", 0, "", true},                                             // nor is "ATTT..."
	{strings.Repeat(" ", 40) + "AT\r\n", 1, "", false},                                              // "AT" alone, then "\r\n"
	{"ok\n\vAT\f" + strings.Repeat("f", 100) + "\r", 1, "\vAT\f" + strings.Repeat("f", 100), false}, // an AT tail with "\r"
	{"AT " + strings.Repeat("g", 157) + "\r\r\n", 0, "", true},                                      // 32+129 after one "\r"
}

// TestEverySplitAT is TestEverySplit for a Decoder with AT set: every cut into three gives
// modelFrameAT's lines, tail and error.
func TestEverySplitAT(t *testing.T) {
	const max = 32
	streams := splitStreams
	for _, c := range atStreams {
		f := modelFrameAT(c.stream, max, true)
		if len(f.Lines) != c.lines || (f.Tail != "") != (c.tail != "") || f.Tail != "" && f.Tail != "<"+c.tail+">" || (f.Err != "") != c.err {
			t.Errorf("model of %q: %+v", c.stream, f)
		}
		streams = append(streams, c.stream)
	}
	for _, s := range streams {
		want := modelFrameAT(s, max, true)
		decode := func(chunks ...string) frame {
			var cs [][]byte
			for _, c := range chunks {
				cs = append(cs, []byte(c))
			}
			return decodeWith(&Decoder{Max: max, AT: true}, cs, false)
		}
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				if got := decode(s[:i], s[i:j], s[j:]); !reflect.DeepEqual(got, want) {
					t.Fatalf("stream %q cut at %d,%d: %+v, want %+v", s, i, j, got, want)
				}
			}
		}
	}
}

// TestEverySplitSkip checks SkipLine: with it called after each ErrLineTooLong, every cut
// into three of every stream gives modelFrameSkip's lines, too-long lines and tail, with
// AT set and not.
func TestEverySplitSkip(t *testing.T) {
	const max = 32
	streams := append([]string(nil), splitStreams...)
	for _, c := range atStreams {
		streams = append(streams, c.stream)
	}
	long := strings.Repeat("L", 40)
	streams = append(streams,
		long+"\n"+long+"\nok\n"+long,                          // two in a row, then a line, then a long tail
		long+long+long+"\r\nAT x\n\n",                         // longer than three windows
		"a\n"+long+"\r\r\nb\r\n"+strings.Repeat("c", 33)+"\r", // "\r" endings around them
	)
	for _, s := range streams {
		for _, at := range []bool{false, true} {
			want := modelFrameSkip(s, max, at, true)
			for i := 0; i <= len(s); i++ {
				for j := i; j <= len(s); j++ {
					cs := [][]byte{[]byte(s[:i]), []byte(s[i:j]), []byte(s[j:])}
					if got := decodeWith(&Decoder{Max: max, AT: at}, cs, true); !reflect.DeepEqual(got, want) {
						t.Fatalf("stream %q (AT %v) cut at %d,%d: %+v, want %+v", s, at, i, j, got, want)
					}
				}
			}
		}
	}
	// Spot-check the model: the lines after a skipped one are there.
	if f := modelFrameSkip(streams[len(streams)-3], max, false, true); len(f.Lines) != 4 || f.Lines[2] != "ok" || f.Tail != "" {
		t.Fatalf("model: %+v", f)
	}
}

func TestLineLimit(t *testing.T) {
	for _, c := range []struct {
		b    string
		want int
	}{
		{"AT Hill +0.1 c +1+1 1", 100 + ATOverhead},
		{" \tAT\vx", 100 + ATOverhead},
		{"AT\n", 100 + ATOverhead}, // the field "AT", ended by the line's end
		{"  AT\r\n", 100 + ATOverhead},
		{"", 100 + ATOverhead}, // the first field may still be "AT"
		{"   ", 100 + ATOverhead},
		{"  A", 100 + ATOverhead},
		{"AT", 100 + ATOverhead},
		{"ATX y", 100},
		{"ATTT", 100},
		{"IAMAT x", 100},
		{"AX", 100},
		{"a", 100},
		{"\n", 100}, // an empty line
		{"  A\n", 100},
		{"\nAT x", 100}, // the line ends before "AT"
	} {
		if got := LineLimit([]byte(c.b), 100); got != c.want {
			t.Errorf("LineLimit(%q, 100) = %d, want %d", c.b, got, c.want)
		}
	}
}

// A Decoder returns lines framed within one chunk in place, and copies only the start of a
// line split across chunks.
func TestDecoderFramesInPlace(t *testing.T) {
	chunk := []byte("IAMAT a +1+1 1\nIAMAT b")
	var d Decoder
	d.Feed(chunk)
	line, ok, _ := d.Next()
	if !ok || &line[0] != &chunk[0] {
		t.Fatalf("the first line %q is not in the chunk fed", line)
	}
	if _, ok, _ := d.Next(); ok {
		t.Fatal("a line without its newline")
	}
	copy(chunk, "################")
	d.Feed([]byte(" +2+2 2\n"))
	if line, ok, err := d.Next(); !ok || err != nil || string(line) != "IAMAT b +2+2 2" {
		t.Fatalf("the split line: %q, %v, %v", line, ok, err)
	}
	if n := testing.AllocsPerRun(100, func() {
		d.Feed(chunk[:15])
		for {
			if _, ok, _ := d.Next(); !ok {
				break
			}
		}
	}); n != 0 {
		t.Errorf("framing whole lines: %v allocations, want 0", n)
	}
}
