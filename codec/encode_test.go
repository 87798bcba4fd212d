package codec

import (
	"testing"
	"time"
)

func TestAppendSkew(t *testing.T) {
	cases := []struct {
		recv, sent Time
		want       string
	}{
		{Time{1621464828, 223371889}, Time{1621464827, 959498503}, "+0.263873386"},
		{Time{1621464827, 959498503}, Time{1621464828, 223371889}, "-0.263873386"},
		{Time{5, 0}, Time{17, 1}, "-12.000000001"},
		{Time{17, 1}, Time{5, 0}, "+12.000000001"},
		{Time{7, 7}, Time{7, 7}, "+0.000000000"},
		{Time{0, 0}, Time{0, 1}, "-0.000000001"},
		{Time{0, 1}, Time{0, 0}, "+0.000000001"},
		{Time{1, 0}, Time{2, 0}, "-1.000000000"},
		{Time{0, 0}, Time{-1, 500000000}, "+0.500000000"},
		{Time{-1, 500000000}, Time{0, 0}, "-0.500000000"},
		{Time{999999999999999999, 999999999}, Time{-1000000000000000000, 1}, "+1999999999999999999.999999998"},
		{Time{-1000000000000000000, 1}, Time{999999999999999999, 999999999}, "-1999999999999999999.999999998"},
	}
	for _, tc := range cases {
		if got := string(AppendSkew(nil, tc.recv, tc.sent)); got != tc.want {
			t.Errorf("AppendSkew(%v, %v) = %q, want %q", tc.recv, tc.sent, got, tc.want)
		}
	}
}

func TestAppendATSpecExample(t *testing.T) {
	m, err := ParseLine([]byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"))
	if err != nil {
		t.Fatal(err)
	}
	recv := FromTime(time.Unix(1621464828, 223371889))
	got := string(AppendAT([]byte("x"), "Hill", recv, &m))
	want := "xAT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\n"
	if got != want {
		t.Fatalf("AppendAT = %q, want %q", got, want)
	}
	at, err := ParseLine([]byte(got[1 : len(got)-1]))
	if err != nil || at.Kind != AT || at.Time != m.Time || string(at.Skew) != "+0.263873386" || string(at.Server) != "Hill" {
		t.Fatalf("ParseLine(AppendAT) = %+v, %v", at, err)
	}
}

func TestAppendInvalid(t *testing.T) {
	cases := []struct{ line, want string }{
		{"", "? \n"},
		{"iamat x", "? iamat x\n"},
		{" \tIAMAT\r ", "?  \tIAMAT\r \n"},
		{"a\nb\n", "? a b \n"},
	}
	for _, tc := range cases {
		if got := string(AppendInvalid(nil, []byte(tc.line))); got != tc.want {
			t.Errorf("AppendInvalid(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestAppendRadiusMetres(t *testing.T) {
	cases := []struct{ km, want string }{
		{"10", "10000"},
		{"0.0015", "1.5"},
		{"50", "50000"},
		{"50.000", "50000"},
		{"0.5", "500"},
		{"0.001", "1"},
		{"0.0001", "0.1"},
		{"0.000123400", "0.1234"},
		{"1.23456", "1234.56"},
		{"007.5", "7500"},
		{"0", "0"},
		{"0.000", "0"},
		{"12.3", "12300"},
		{"1e1", "1e1"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := string(AppendRadiusMetres([]byte{}, []byte(tc.km))); got != tc.want {
			t.Errorf("AppendRadiusMetres(%q) = %q, want %q", tc.km, got, tc.want)
		}
	}
}

func TestNewer(t *testing.T) {
	a := []byte("AT Hill +0.1 c +1+1 5")
	b := []byte("AT Smith +0.1 c +1+1 5")
	cases := []struct {
		t    Time
		line []byte
		oldT Time
		old  []byte
		want bool
	}{
		{Time{6, 0}, a, Time{5, 0}, b, true},
		{Time{5, 1}, a, Time{5, 0}, b, true},
		{Time{5, 0}, b, Time{5, 1}, a, false},
		{Time{5, 0}, b, Time{5, 0}, a, true},
		{Time{5, 0}, a, Time{5, 0}, b, false},
		{Time{5, 0}, a, Time{5, 0}, a, false},
		{Time{-1, 500000000}, a, Time{-1, 0}, b, true},
	}
	for _, tc := range cases {
		if got := Newer(tc.t, tc.line, tc.oldT, tc.old); got != tc.want {
			t.Errorf("Newer(%v, %q, %v, %q) = %v, want %v", tc.t, tc.line, tc.oldT, tc.old, got, tc.want)
		}
	}
}

func TestFromTime(t *testing.T) {
	if got := FromTime(time.Unix(-1, 500000000)); got != (Time{-1, 500000000}) {
		t.Errorf("FromTime = %v", got)
	}
	if got := FromTime(time.Unix(0, -1)); got != (Time{-1, 999999999}) {
		t.Errorf("FromTime = %v", got)
	}
}

func TestZeroAllocs(t *testing.T) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503")
	bad := []byte("WHATSAT kiwi.cs.ucla.edu 51 5")
	at := []byte("AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503")
	pyAT := []byte("AT Jaquez +1.1e-05 c_Jaquez +34.068930-118.445127 1796033264.634695053 Jaquez Hill")
	dst := make([]byte, 0, 256)
	recv := Time{1621464828, 223371889}
	n := testing.AllocsPerRun(100, func() {
		m, err := ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		dst = AppendAT(dst[:0], "Hill", recv, &m)
		if _, err := ParseLine(bad); err == nil {
			t.Fatal("no error")
		}
		if _, err := ParseLine(at); err != nil {
			t.Fatal(err)
		}
		m, err = ParseLineIn(pyAT, Python)
		if err != nil {
			t.Fatal(err)
		}
		dst = AppendATLine(dst[:0], &m)
		dst = AppendRadiusMetres(dst[:0], []byte("0.0015"))
		dst = AppendInvalid(dst[:0], bad)
	})
	if n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}
