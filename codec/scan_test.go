package codec

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// The word-at-a-time scans find the same byte as a loop over every byte would, wherever it
// falls in a word, whatever surrounds it.
func TestPlainStringEveryOffset(t *testing.T) {
	for n := range 25 {
		for pos := range n + 1 {
			for _, c := range []byte{'"', '\\', 0x00, 0x01, 0x1f, ' ', 0x7f, 0x80, 0xc3, 0xff, '!', '#', '[', ']'} {
				b := bytes.Repeat([]byte{'a'}, n)
				if pos < n {
					b[pos] = c
				}
				want := n
				if pos < n && (c == '"' || c == '\\' || c < 0x20) {
					want = pos
				}
				if got := plainString(b, 0); got != want {
					t.Errorf("plainString(%q) = %d, want %d", b, got, want)
				}
				// Specials before the start are not seen.
				pre := append([]byte{'"', '\\', 0x01}, b...)
				if got := plainString(pre, 3); got != want+3 {
					t.Errorf("plainString(%q, 3) = %d, want %d", pre, got, want+3)
				}
			}
		}
	}
}

func TestSkipSpaceEveryRun(t *testing.T) {
	for n := range 30 {
		for _, ws := range []string{" ", "\n", "\t", "\r", "\n   ", " \n"} {
			run := bytes.Repeat([]byte(ws), n)
			for _, after := range []string{"", "x", "\"", "\x00", "\x0b", "\xff", "}"} {
				b := append(append([]byte{'x'}, run...), after...)
				if got := skipSpace(b, 1); got != 1+len(run) {
					t.Errorf("skipSpace(%q, 1) = %d, want %d", b, got, 1+len(run))
				}
			}
		}
	}
}

// checkIndex checks that one index of body cuts it as AppendPlacesBody does, for every bound,
// within CutSize, and finds the first top-level "status" and "error_message" that ParseJSON
// finds.
func checkIndex(t *testing.T, body []byte) {
	t.Helper()
	ix, err := IndexPlaces(body)
	if _, werr := AppendPlacesBody(nil, body, 1); (err != nil) != errors.Is(werr, ErrJSON) {
		t.Fatalf("IndexPlaces(%q) error %v, AppendPlacesBody %v", body, err, werr)
	}
	for bound := -1; bound <= MaxBound+1; bound++ {
		got, gerr := ix.AppendCut([]byte("x"), body, bound)
		want, werr := AppendPlacesBody([]byte("x"), body, min(bound, MaxBound))
		if !bytes.Equal(got, want) || (gerr == nil) != (werr == nil) || errors.Is(gerr, ErrNoResults) != errors.Is(werr, ErrNoResults) {
			t.Fatalf("AppendCut(%q, %d) = %q, %v; AppendPlacesBody %q, %v", body, bound, got, gerr, want, werr)
		}
		if gerr == nil && len(got)-1 > ix.CutSize(body, bound) {
			t.Fatalf("AppendCut(%q, %d): %d bytes, CutSize %d", body, bound, len(got)-1, ix.CutSize(body, bound))
		}
	}
	v, perr := ParseJSON(body)
	obj, isObj := v.(Object)
	if ix.Object() != (perr == nil && isObj) {
		t.Fatalf("Object() = %v for %q", ix.Object(), body)
	}
	for _, name := range []string{"status", "error_message"} {
		raw := ix.Status(body)
		if name == "error_message" {
			raw = ix.ErrorMessage(body)
		}
		var want any = "absent"
		for _, m := range obj {
			if m.Key == name {
				want = m.Value
				break
			}
		}
		if raw == nil {
			if want != "absent" {
				t.Fatalf("%s of %q: none found, ParseJSON has %#v", name, body, want)
			}
			continue
		}
		got, err := ParseJSON(raw)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s of %q = %q, ParseJSON has %#v", name, body, raw, want)
		}
	}
}

func TestIndexPlaces(t *testing.T) {
	for _, body := range []string{
		string(placesBody(20)), string(placesBody(3)), string(placesBody(0)),
		`{"results":[1,2,3],"status":"OK","error_message":"e"}`,
		`{"st\u0061tus":5,"status":"OK","results":[]}`,
		`{"a":{"status":"X"},"results":[{"status":"Y"}]}`,
		`{"results":[1],"results":[2]}`, `{"results":{}}`, `[{"results":[]}]`, `"x"`, ``, `{`,
		"{\n\n\"results\" : [\n\n1,\n\n2 ]\n}\n\n",
	} {
		checkIndex(t, []byte(body))
	}
	var zero PlacesIndex
	if _, err := zero.AppendCut(nil, []byte(`{"results":[]}`), 1); !errors.Is(err, ErrJSON) {
		t.Errorf("the zero index cuts: %v", err)
	}
}

func FuzzIndexPlaces(f *testing.F) {
	addFixtureSeeds(f, func(b []byte) { f.Add(b) })
	f.Add(placesBody(4))
	f.Add([]byte(`{"status":"OK","error_message":"\u0041","results" : [ 1, [2], {"a":"]"} ], "x":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) { checkIndex(t, body) })
}
