package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

var seedLines = []string{
	"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503",
	"AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503",
	"AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
	"WHATSAT kiwi.cs.ucla.edu 10 5",
	"IAMAT c -90+180 -0.5",
	"AT Clark -12.000000001 c\t+1.5-2.25  7",
	"WHATSAT c 0.0015 20",
	"\tIAMAT  c\v+0+0\f0\r",
	"iamat c +1+1 1",
}

// FuzzParseLine checks that ParseLine never panics, that an AT line written for a parsed
// IAMAT or AT parses back to the same record with the exact skew, and that a canonical AT
// line is reproduced byte for byte; and that the Python dialect takes every line the
// strict one does, alike, and makes records (AppendATLine) that it parses back alike.
func FuzzParseLine(f *testing.F) {
	for _, s := range seedLines {
		f.Add([]byte(s), int64(1621464828), uint32(223371889))
	}
	f.Add([]byte("AT Jaquez +1.1e-05 c +34.068930-118.445127 1796033264.634695053 Jaquez Hill"), int64(0), uint32(0))
	f.Fuzz(func(t *testing.T, line []byte, sec int64, nsec uint32) {
		py, pyErr := ParseLineIn(line, Python)
		if pyErr == nil && py.Kind == AT {
			rec := AppendATLine(nil, &py)
			again, err := ParseLineIn(rec, Python)
			if err != nil || again.Extra || !bytes.Equal(AppendATLine(nil, &again), rec) || again.Time != py.Time {
				t.Fatalf("Python record %q of %q parses as %+v, %v", rec, line, again, err)
			}
		}
		m, err := ParseLine(line)
		if err == nil && (pyErr != nil || py.Kind != m.Kind || py.Extra || py.Time != m.Time || !bytes.Equal(py.Client, m.Client)) {
			t.Fatalf("%q: strict %+v; Python %+v, %v", line, m, py, pyErr)
		}
		if err != nil {
			if m.Kind != Invalid || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseLine(%q) = %v, %v", line, m.Kind, err)
			}
			return
		}
		if m.Kind == WHATSAT {
			if km, _ := strconv.ParseFloat(string(m.Radius), 64); km != m.RadiusKm || !(km > 0 && km <= 50) {
				t.Fatalf("%q: RadiusKm %v, strconv %v", line, m.RadiusKm, km)
			}
			return
		}
		lat, _ := strconv.ParseFloat(string(m.LatText), 64)
		lng, _ := strconv.ParseFloat(string(m.LngText), 64)
		if lat != m.Lat || lng != m.Lng || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
			t.Fatalf("%q: Lat, Lng = %v, %v; strconv %v, %v", line, m.Lat, m.Lng, lat, lng)
		}
		// Keep |recv.Sec| < 4e17: with |m.Time.Sec| < 4e17 too, the skew has at most 18
		// integer digits and ParseTime can read it back.
		recv := Time{Sec: sec % 4e17, Nsec: int32(nsec % 1e9)}
		if recv.Sec < 0 && recv.Nsec > 0 {
			recv.Sec++
		}
		out := AppendAT(nil, "Server", recv, &m)
		if out[len(out)-1] != '\n' {
			t.Fatalf("AppendAT(%q) = %q: no newline", line, out)
		}
		at, err := ParseLine(out[:len(out)-1])
		if err != nil || at.Kind != AT {
			t.Fatalf("ParseLine(AppendAT(%q)) = %v, %v (line %q)", line, at.Kind, err, out)
		}
		if !bytes.Equal(at.Client, m.Client) || !bytes.Equal(at.Location, m.Location) ||
			!bytes.Equal(at.TimeText, m.TimeText) || at.Time != m.Time || at.Lat != m.Lat || at.Lng != m.Lng {
			t.Fatalf("round trip of %q gave %q", line, out)
		}
		if m.Time.Sec <= -4e17 || m.Time.Sec >= 4e17 {
			return
		}
		skew, err := ParseTime(at.Skew)
		if err != nil {
			t.Fatalf("skew %q: %v", at.Skew, err)
		}
		if got := addTime(m.Time, skew); got != recv {
			t.Fatalf("%q: time %v + skew %q = %v, want %v", out, m.Time, at.Skew, got, recv)
		}
		if m.Kind == AT {
			// An AT line with a canonical skew comes back byte for byte (fields joined by
			// single spaces) when rebuilt from its own time and skew.
			st, err := ParseTime(m.Skew)
			if err != nil || !bytes.Equal(AppendSkew(nil, addTime(m.Time, st), m.Time), m.Skew) {
				return
			}
			again := AppendAT(nil, string(m.Server), addTime(m.Time, st), &m)
			want := bytes.Join([][]byte{[]byte("AT"), m.Server, m.Skew, m.Client, m.Location, m.TimeText}, []byte(" "))
			if !bytes.Equal(again, append(want, '\n')) {
				t.Fatalf("AT %q rebuilt as %q", line, again)
			}
		}
	})
}

// FuzzDecoder checks the framing rule and split invariance: the stream in one piece
// and cut at fuzzed offsets gives the lines, tail and errors of modelFrameSkip from a
// Decoder with AT set or not, whose user calls SkipLine after a too-long line or not.
func FuzzDecoder(f *testing.F) {
	for _, s := range splitStreams {
		f.Add([]byte(s), []byte{3, 17, 1}, uint8(32), false)
	}
	for _, c := range atStreams {
		f.Add([]byte(c.stream), []byte{20, 21, 1}, uint8(31), true)
	}
	f.Add([]byte(seedLines[0]+"\n"+seedLines[3]+"\r\n"+seedLines[1]), []byte{60, 2}, uint8(200), false)
	f.Fuzz(func(t *testing.T, stream, cuts []byte, max8 uint8, at bool) {
		max := int(max8) + 1
		skip := max8%2 == 1 // half the runs skip too-long lines and go on (SkipLine)
		want := modelFrameSkip(string(stream), max, at, skip)
		decode := func(chunks [][]byte) frame { return decodeWith(&Decoder{Max: max, AT: at}, chunks, skip) }
		if got := decode([][]byte{bytes.Clone(stream)}); !reflect.DeepEqual(got, want) {
			t.Fatalf("Decoder (AT %v) on %q: %+v, model %+v", at, stream, got, want)
		}
		chunks := func() [][]byte { // fresh copies: decodeWith scribbles on them
			var cs [][]byte
			rest := stream
			for _, c := range cuts {
				n := min(int(c), len(rest))
				cs = append(cs, bytes.Clone(rest[:n]))
				rest = rest[n:]
			}
			return append(cs, bytes.Clone(rest))
		}
		if got := decode(chunks()); !reflect.DeepEqual(got, want) {
			t.Fatalf("Decoder (AT %v) on %q cut %v: %+v, want %+v", at, stream, cuts, got, want)
		}
	})
}

func addFixtureSeeds(f *testing.F, add func([]byte)) {
	names, _ := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			add(b)
		}
	}
}

// topResults reports, by encoding/json, how many top-level "results" members body has and
// whether the last is an array; ok is false when body is not an object.
func topResults(body []byte) (count int, isArray, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, false, false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return 0, false, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, false, false
		}
		if key == "results" {
			count++
			isArray = raw[0] == '['
		}
	}
	if _, err := dec.Token(); err != nil {
		return 0, false, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, false, false
	}
	return count, isArray, true
}

func squeeze(b []byte) []byte { return appendSqueezed(nil, b, false) }

// FuzzAppendPlacesBody checks that a cut body is valid JSON holding min(bound, n) results
// whose bytes are the original's (newline runs squeezed), and that errors are right.
func FuzzAppendPlacesBody(f *testing.F) {
	addFixtureSeeds(f, func(b []byte) { f.Add(b, 1); f.Add(b, 0) })
	f.Add(placesBody(4), 2)
	f.Add([]byte(`{"results" : [ 1, [2], {"a":"]"} ], "x":[]}`), 2)
	f.Add([]byte("{\n\n\"results\":[\n\n1,\n\n2]}\n\n"), 1)
	f.Fuzz(func(t *testing.T, body []byte, bound int) {
		bound %= 25
		out, err := AppendPlacesBody(nil, body, bound)
		valid := json.Valid(body)
		count, isArray, isObject := topResults(body)
		if err != nil {
			switch {
			case errors.Is(err, ErrJSON) && valid:
				t.Fatalf("ErrJSON for valid %q: %v", body, err)
			case errors.Is(err, ErrNoResults) && (!valid || isObject && count == 1 && isArray):
				t.Fatalf("ErrNoResults for %q", body)
			}
			return
		}
		if !valid || !isObject || count != 1 || !isArray {
			t.Fatalf("no error for %q", body)
		}
		if !json.Valid(out) || bytes.Contains(out, []byte("\n\n")) || bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("AppendPlacesBody(%q, %d) = %q: invalid or not squeezed", body, bound, out)
		}
		all, kept := results(t, body), results(t, out)
		if len(kept) != min(max(bound, 0), len(all)) {
			t.Fatalf("AppendPlacesBody(%q, %d) kept %d of %d", body, bound, len(kept), len(all))
		}
		for i := range kept {
			if !bytes.Equal(kept[i], squeeze(all[i])) {
				t.Fatalf("result %d: %q, want %q", i, kept[i], all[i])
			}
		}
		if len(kept) == len(all) && !bytes.Equal(out, bytes.TrimRight(squeeze(body), "\n")) {
			t.Fatalf("uncut body changed: %q", out)
		}
	})
}

// FuzzStyled checks ParseJSON against encoding/json (same validity, same values) and
// that AppendStyled is idempotent: writing what it wrote gives the same bytes.
func FuzzStyled(f *testing.F) {
	addFixtureSeeds(f, func(b []byte) { f.Add(b) })
	f.Add(placesBody(3))
	f.Add([]byte(`{"b":[1,"x\u00e9\ud800<>&",null,[],{}],"a":{"k":[[1],true]},"a":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseJSON(b)
		if (err == nil) != json.Valid(b) {
			t.Fatalf("ParseJSON(%q) error %v, json.Valid %v", b, err, json.Valid(b))
		}
		if err != nil {
			return
		}
		out := AppendStyled(nil, v)
		if !json.Valid(out) || !bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("AppendStyled(ParseJSON(%q)) = %q: not valid JSON", b, out)
		}
		v2, err := ParseJSON(out)
		if err != nil {
			t.Fatal(err)
		}
		if again := AppendStyled(nil, v2); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%s\n%s", out, again)
		}
		if a, b := decodeStd(t, b), decodeStd(t, out); !reflect.DeepEqual(a, b) {
			t.Fatalf("values differ: %#v vs %#v", a, b)
		}
	})
}

func decodeStd(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return v
}
