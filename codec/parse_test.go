package codec

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	type want struct {
		kind                       Kind
		server, skew, client, loc  string
		lat, lng, timeText, radius string
		latF, lngF, km             float64
		tm                         Time
		bound                      int
	}
	good := []struct {
		line string
		w    want
	}{
		// SPEC §3 and §5 examples.
		{"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503", want{
			kind: IAMAT, client: "kiwi.cs.ucla.edu", loc: "+34.068930-118.445127",
			lat: "+34.068930", lng: "-118.445127", latF: 34.06893, lngF: -118.445127,
			timeText: "1621464827.959498503", tm: Time{1621464827, 959498503}}},
		{"AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503", want{
			kind: AT, server: "Hill", skew: "+0.263873386", client: "kiwi.cs.ucla.edu",
			loc: "+34.068930-118.445127", lat: "+34.068930", lng: "-118.445127",
			latF: 34.06893, lngF: -118.445127,
			timeText: "1621464827.959498503", tm: Time{1621464827, 959498503}}},
		{"WHATSAT kiwi.cs.ucla.edu 10 5", want{kind: WHATSAT, client: "kiwi.cs.ucla.edu", radius: "10", km: 10, bound: 5}},
		// White space of every kind, runs, and at both ends.
		{" \t\r\v\fIAMAT\t\tc\v+1-2\f\r5 \t", want{kind: IAMAT, client: "c", loc: "+1-2", lat: "+1", lng: "-2", latF: 1, lngF: -2, timeText: "5", tm: Time{5, 0}}},
		{"WHATSAT\rc\v0.5\f20", want{kind: WHATSAT, client: "c", radius: "0.5", km: 0.5, bound: 20}},
		// Location limits.
		{"IAMAT c +90-180 0", want{kind: IAMAT, client: "c", loc: "+90-180", lat: "+90", lng: "-180", latF: 90, lngF: -180, timeText: "0"}},
		{"IAMAT c -90.000+180.0000 0", want{kind: IAMAT, client: "c", loc: "-90.000+180.0000", lat: "-90.000", lng: "+180.0000", latF: -90, lngF: 180, timeText: "0"}},
		{"IAMAT c +89.999999999+179.999999999 0", want{kind: IAMAT, client: "c", loc: "+89.999999999+179.999999999", lat: "+89.999999999", lng: "+179.999999999", latF: 89.999999999, lngF: 179.999999999, timeText: "0"}},
		{"IAMAT c -0+0 0", want{kind: IAMAT, client: "c", loc: "-0+0", lat: "-0", lng: "+0", timeText: "0"}},
		// Times: signs, fractions, normalisation.
		{"IAMAT c +1+1 -0.5", want{kind: IAMAT, client: "c", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "-0.5", tm: Time{-1, 500000000}}},
		{"IAMAT c +1+1 +7.000000001", want{kind: IAMAT, client: "c", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "+7.000000001", tm: Time{7, 1}}},
		{"IAMAT c +1+1 -12.000000001", want{kind: IAMAT, client: "c", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "-12.000000001", tm: Time{-13, 999999999}}},
		{"IAMAT c +1+1 999999999999999999.999999999", want{kind: IAMAT, client: "c", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "999999999999999999.999999999", tm: Time{999999999999999999, 999999999}}},
		{"IAMAT c +1+1 -0000999999999999999999", want{kind: IAMAT, client: "c", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "-0000999999999999999999", tm: Time{-999999999999999999, 0}}},
		{"IAMAT c +1+1 -0.0", want{kind: IAMAT, client: "c", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "-0.0"}},
		// Radius and bound limits; leading zeros allowed.
		{"WHATSAT c 50 1", want{kind: WHATSAT, client: "c", radius: "50", km: 50, bound: 1}},
		{"WHATSAT c 50.000 01", want{kind: WHATSAT, client: "c", radius: "50.000", km: 50, bound: 1}},
		{"WHATSAT c 0.001 020", want{kind: WHATSAT, client: "c", radius: "0.001", km: 0.001, bound: 20}},
		{"WHATSAT c 049.9 7", want{kind: WHATSAT, client: "c", radius: "049.9", km: 49.9, bound: 7}},
		// AT skews of other forms; names are any non-space bytes.
		{"AT Clark -3 a +1+1 1", want{kind: AT, server: "Clark", skew: "-3", client: "a", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "1", tm: Time{1, 0}}},
		{"AT é 0.5 ?\x00 +1+1 1", want{kind: AT, server: "é", skew: "0.5", client: "?\x00", loc: "+1+1", lat: "+1", lng: "+1", latF: 1, lngF: 1, timeText: "1", tm: Time{1, 0}}},
	}
	for _, tc := range good {
		m, err := ParseLine([]byte(tc.line))
		if err != nil {
			t.Errorf("ParseLine(%q) error %v, want nil", tc.line, err)
			continue
		}
		got := want{kind: m.Kind, server: string(m.Server), skew: string(m.Skew), client: string(m.Client),
			loc: string(m.Location), lat: string(m.LatText), lng: string(m.LngText), timeText: string(m.TimeText),
			radius: string(m.Radius), latF: m.Lat, lngF: m.Lng, km: m.RadiusKm, tm: m.Time, bound: m.Bound}
		if got != tc.w {
			t.Errorf("ParseLine(%q) = %+v, want %+v", tc.line, got, tc.w)
		}
	}

	bad := []struct {
		line string
		err  error
	}{
		{"", errEmpty},
		{" \t\r\v\f", errEmpty},
		{"iamat c +1+1 1", errCommand},
		{"Iamat c +1+1 1", errCommand},
		{"whatsat c 1 1", errCommand},
		{"at S +0 c +1+1 1", errCommand},
		{"? IAMAT c +1+1 1", errCommand},
		{"IAMAT c +1+1", errFields},
		{"IAMAT c +1+1 1 x", errFields},
		{"IAMAT", errFields},
		{"WHATSAT c 10", errFields},
		{"WHATSAT c 10 5 5", errFields},
		{"AT S +0 c +1+1", errFields},
		{"AT S +0 c +1+1 1 x", errFields},
		{"AT S +0 c +1+1 1 x y z", errFields},
		{"IAMAT c\n +1+1 1", errNewline},
		{"IAMAT c +1+1 1\n", errNewline},
		// Locations.
		{"IAMAT c 34.068930-118.445127 1", errLocation},
		{"IAMAT c +34.068930118.445127 1", errLocation},
		{"IAMAT c +34.068930-118.445127x 1", errLocation},
		{"IAMAT c +34.068930 1", errLocation},
		{"IAMAT c +100-1 1", errLocation},
		{"IAMAT c +1-1000 1", errLocation},
		{"IAMAT c +1.-1 1", errLocation},
		{"IAMAT c +.5-1 1", errLocation},
		{"IAMAT c +1-1. 1", errLocation},
		{"IAMAT c ++1-1 1", errLocation},
		{"IAMAT c +1--1 1", errLocation},
		{"IAMAT c +1e1-1 1", errLocation},
		{"IAMAT c +1,5-1 1", errLocation},
		{"IAMAT c +1-1/ 1", errLocation},
		{"IAMAT c +90.000000001-1 1", errLatRange},
		{"IAMAT c -91-1 1", errLatRange},
		{"IAMAT c +99+1 1", errLatRange},
		{"IAMAT c +1+180.0000001 1", errLngRange},
		{"IAMAT c +1-181 1", errLngRange},
		{"IAMAT c +1+999 1", errLngRange},
		// Times.
		{"IAMAT c +1+1 1.", errTime},
		{"IAMAT c +1+1 .5", errTime},
		{"IAMAT c +1+1 1.0000000001", errTime},
		{"IAMAT c +1+1 1e9", errTime},
		{"IAMAT c +1+1 +-1", errTime},
		{"IAMAT c +1+1 ++1", errTime},
		{"IAMAT c +1+1 -", errTime},
		{"IAMAT c +1+1 1.5.5", errTime},
		{"IAMAT c +1+1 0x10", errTime},
		{"IAMAT c +1+1 1000000000000000000", errTimeRange},
		{"AT S +0 c +1+1 x", errTime},
		// Radius.
		{"WHATSAT c 1e1 5", errRadius},
		{"WHATSAT c .5 5", errRadius},
		{"WHATSAT c 5. 5", errRadius},
		{"WHATSAT c +5 5", errRadius},
		{"WHATSAT c -5 5", errRadius},
		{"WHATSAT c 5km 5", errRadius},
		{"WHATSAT c 0 5", errRadiusZero},
		{"WHATSAT c 0.000 5", errRadiusZero},
		{"WHATSAT c 000 5", errRadiusZero},
		{"WHATSAT c 50.000001 5", errRadiusMax},
		{"WHATSAT c 51 5", errRadiusMax},
		{"WHATSAT c 60 5", errRadiusMax},
		{"WHATSAT c 100 5", errRadiusMax},
		{"WHATSAT c 0050.1 5", errRadiusMax},
		// Bound.
		{"WHATSAT c 10 0", errBound},
		{"WHATSAT c 10 21", errBound},
		{"WHATSAT c 10 +5", errBound},
		{"WHATSAT c 10 -5", errBound},
		{"WHATSAT c 10 5.0", errBound},
		{"WHATSAT c 10 99999999999999999999999", errBound},
		{"WHATSAT c 10 x", errBound},
		// AT fields.
		{"AT S 0.263873386s c +1+1 1", errSkew},
		{"AT S +.5 c +1+1 1", errSkew},
		{"AT S 1e-05 c +1+1 1", errSkew},
		{"AT S + c +1+1 1", errSkew},
		{"AT S +0 c +1 1", errLocation},
	}
	for _, tc := range bad {
		m, err := ParseLine([]byte(tc.line))
		if err != tc.err || !errors.Is(err, ErrInvalid) || m.Kind != Invalid {
			t.Errorf("ParseLine(%q) = %v, %v; want Invalid, %v", tc.line, m.Kind, err, tc.err)
		}
	}
}

func TestParseErrorText(t *testing.T) {
	_, err := ParseLine([]byte("WHATSAT c 51 5"))
	var pe *ParseError
	if !errors.As(err, &pe) || err.Error() != "codec: invalid command: radius must be at most 50 km" {
		t.Fatalf("error = %v", err)
	}
}

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want Time
	}{
		{"1621464827.959498503", Time{1621464827, 959498503}},
		{"0", Time{}},
		{"-0", Time{}},
		{"+0.000000000", Time{}},
		{"-0.5", Time{-1, 500000000}},
		{"-1.000000001", Time{-2, 999999999}},
		{"1.1", Time{1, 100000000}},
		{"-999999999999999999.999999999", Time{-1000000000000000000, 1}},
	}
	for _, tc := range cases {
		got, err := ParseTime([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestTimeCompare(t *testing.T) {
	ts := []Time{{-2, 999999999}, {-1, 0}, {-1, 500000000}, {0, 0}, {0, 1}, {1, 0}, {1621464827, 959498503}}
	for i, a := range ts {
		for j, b := range ts {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestKindString(t *testing.T) {
	for k, s := range map[Kind]string{Invalid: "Invalid", IAMAT: "IAMAT", WHATSAT: "WHATSAT", AT: "AT", 9: "Invalid"} {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}

func TestDecimalFloat(t *testing.T) {
	for _, s := range []string{"+34.068930", "-118.445127", "0", "-0", "+90", "0.0015", "50", "1.23456789012345",
		"1.234567890123456", "0.000000000000000000000001", "12345678901234567890.5", "-87.64432069999999",
		"00000000000000000000001.5", "+89.999999999999999999", "+0.1", "0.3", "9007199254740993"} {
		want, _ := strconv.ParseFloat(s, 64)
		if got := decimalFloat([]byte(s)); got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("decimalFloat(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestIsSpace(t *testing.T) {
	for c := range 256 {
		want := c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		if got := IsSpace(byte(c)); got != want {
			t.Errorf("IsSpace(%q) = %v, want %v", byte(c), got, want)
		}
	}
}

func TestField(t *testing.T) {
	line := "  AT\tHill +0.1  kiwi\v+1+1 5 \r"
	for _, c := range []struct {
		line string
		n    int
		want string
		ok   bool
	}{
		{line, 0, "AT", true},
		{line, 1, "Hill", true},
		{line, 3, "kiwi", true},
		{line, 5, "5", true},
		{line, 6, "", false},
		{"", 0, "", false},
		{" \t ", 0, "", false},
		{"one", 0, "one", true},
		{"a\nb c", 1, "c", true}, // "\n" is not white space: lines never hold one
	} {
		got := Field([]byte(c.line), c.n)
		if string(got) != c.want || (got != nil) != c.ok {
			t.Errorf("Field(%q, %d) = %q, want %q", c.line, c.n, got, c.want)
		}
		if got != nil && cap(got) != len(got) {
			t.Errorf("Field(%q, %d) has room to append into the line", c.line, c.n)
		}
	}
}

func TestAppendFields(t *testing.T) {
	for _, c := range []struct{ dst, line, want string }{
		{"", "AT Hill +0.1 kiwi +1+1 5", "AT Hill +0.1 kiwi +1+1 5"},
		{"", " \tAT\tZed  +0.000000000 \vfl3\t\t+1+1 5 \r", "AT Zed +0.000000000 fl3 +1+1 5"},
		{"", "   ", ""},
		{"", "", ""},
		{"x:", "a  b", "x:a b"}, // appends: no space before the first field
	} {
		if got := string(AppendFields([]byte(c.dst), []byte(c.line))); got != c.want {
			t.Errorf("AppendFields(%q, %q) = %q, want %q", c.dst, c.line, got, c.want)
		}
	}
	// The canonical form parses to the same message.
	line := []byte(" \tAT\tZed  +0.000000000 \vfl3\t\t+1+1 5 \r")
	m, err1 := ParseLine(line)
	c, err2 := ParseLine(AppendFields(nil, line))
	if err1 != nil || err2 != nil || !bytes.Equal(m.Client, c.Client) || m.Time != c.Time || !bytes.Equal(m.Location, c.Location) {
		t.Errorf("canonical form parses differently: %v %v", err1, err2)
	}
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { dst = AppendFields(dst[:0], line) }); n != 0 {
		t.Errorf("AppendFields into a slice with room: %v allocations", n)
	}
}

// TestParseLinePython checks the Python dialect: AT time differences in every form Python
// prints a float in, and fields after the sixth, which the record (AppendATLine) leaves
// out; what it still refuses; and that the strict dialect refuses both.
func TestParseLinePython(t *testing.T) {
	for _, c := range []struct {
		line, skew, record string
		extra              bool
	}{
		{"AT Hill +1.1e-05 c +1+1 1", "+1.1e-05", "", false},
		{"AT Hill 0.5 c +1+1 1", "0.5", "", false},
		{"AT Hill +0.001401662826538086 c +1+1 1", "+0.001401662826538086", "", false},
		{"AT Hill -3.0 c +1+1 1", "-3.0", "", false},
		{"AT Hill 1e-05 c +1+1 1", "1e-05", "", false},
		{"AT Hill +1.0000001796033264e+16 c +1+1 1", "+1.0000001796033264e+16", "", false},
		{"AT Hill 2E5 c +1+1 1", "2E5", "", false},
		{"AT Jaquez +0.001401662826538086 c_Jaquez +34.068930-118.445127 1796033264.634695053 Jaquez",
			"+0.001401662826538086", "AT Jaquez +0.001401662826538086 c_Jaquez +34.068930-118.445127 1796033264.634695053", true},
		{"AT\tJaquez  +0.5 c +1+1 1 Jaquez Hill\tSmith ", "+0.5", "AT Jaquez +0.5 c +1+1 1", true},
	} {
		// The strict dialect takes the decimals, and neither exponents nor extra fields.
		decimal := !c.extra && !strings.ContainsAny(c.skew, "eE")
		if _, err := ParseLine([]byte(c.line)); (err == nil) != decimal || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseLine(%q) = %v; want an error: %v", c.line, err, !decimal)
		}
		m, err := ParseLineIn([]byte(c.line), Python)
		if err != nil || m.Kind != AT || string(m.Skew) != c.skew || m.Extra != c.extra || string(m.Client) == "" {
			t.Errorf("ParseLineIn(%q, Python) = %+v, %v; want skew %q, extra %v", c.line, m, err, c.skew, c.extra)
			continue
		}
		want := c.record
		if want == "" {
			want = c.line
		}
		if got := string(AppendATLine(nil, &m)); got != want {
			t.Errorf("AppendATLine(%q) = %q, want %q", c.line, got, want)
		}
	}
	for _, line := range []string{
		"AT Hill 1. c +1+1 1", "AT Hill .5 c +1+1 1", "AT Hill 1e c +1+1 1", "AT Hill 1e+ c +1+1 1",
		"AT Hill inf c +1+1 1", "AT Hill nan c +1+1 1", "AT Hill 0x1p3 c +1+1 1", "AT Hill ++1 c +1+1 1",
		"AT Hill 1.5e-05e3 c +1+1 1", "AT Hill 1_000 c +1+1 1",
		"AT Hill +0.5 c +1+1", "AT Hill +0.5 c +1+1 1x Jaquez", "AT Hill +0.5 c +91+1 1 Jaquez",
		"AT Hill +0.5 c +1+1 1 a b c\nd",
		"IAMAT c +1+1 1 extra", "WHATSAT c 10 5 extra", "IAMAT c +1+1 1e5",
	} {
		if m, err := ParseLineIn([]byte(line), Python); err == nil {
			t.Errorf("ParseLineIn(%q, Python) = %+v, want an error", line, m)
		}
	}
	// Strict lines mean the same in both dialects.
	for _, s := range seedLines {
		a, errA := ParseLine([]byte(s))
		b, errB := ParseLineIn([]byte(s), Python)
		if errA != nil && errB == nil || errA == nil && (errB != nil || a.Kind != b.Kind || string(a.Skew) != string(b.Skew) || b.Extra) {
			t.Errorf("%q: strict %v, %v; Python %v, %v", s, a.Kind, errA, b.Kind, errB)
		}
	}
}
