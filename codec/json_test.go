package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fixtureDir is the shared Places captures: the repository root is this directory's
// parent, and the shared folder sits next to the repository (../shared from the root).
var fixtureDir = filepath.Join("..", "..", "shared", "fixtures", "places")

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("Places captures not found at %s (the shared fixtures sit next to the repository); skipping golden test", fixtureDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureNames(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Skipf("no Places captures in %s (the shared fixtures sit next to the repository); skipping golden test", fixtureDir)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// TestStyledGolden re-serializes every real capture and demands Google's bytes.
func TestStyledGolden(t *testing.T) {
	for _, name := range fixtureNames(t) {
		f := readFixture(t, name)
		v, err := ParseJSON(f)
		if err != nil {
			t.Errorf("%s: ParseJSON: %v", name, err)
			continue
		}
		if got := AppendStyled(nil, v); !bytes.Equal(got, f) {
			t.Errorf("%s: AppendStyled(ParseJSON(f)) differs from f at byte %d:\n%s", name, firstDiff(got, f), got)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// results returns the elements of body's top-level "results" array as raw bytes.
func results(t testing.TB, body []byte) []json.RawMessage {
	t.Helper()
	var top struct{ Results []json.RawMessage }
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("json.Unmarshal: %v\n%s", err, body)
	}
	return top.Results
}

func TestPlacesBodyGolden(t *testing.T) {
	f := readFixture(t, "chicago_first3.json")
	all := results(t, f)
	if len(all) != 3 {
		t.Fatalf("chicago_first3.json has %d results", len(all))
	}
	for bound := 0; bound <= 21; bound++ {
		got, err := AppendPlacesBody(nil, f, bound)
		if err != nil {
			t.Fatalf("bound %d: %v", bound, err)
		}
		k := min(bound, 3)
		// The cut is what Google writes for a page of k results (less the final "\n").
		v, _ := ParseJSON(f)
		top := v.(Object)
		for i, m := range top {
			if m.Key == "results" {
				top[i].Value = m.Value.(Array)[:k]
			}
		}
		want := AppendStyled(nil, top)
		want = want[:len(want)-1]
		if !bytes.Equal(got, want) {
			t.Errorf("bound %d: AppendPlacesBody differs from the styled cut at byte %d:\n%s", bound, firstDiff(got, want), got)
		}
		kept := results(t, got)
		if len(kept) != k {
			t.Fatalf("bound %d: %d results", bound, len(kept))
		}
		for i := range kept {
			if !bytes.Equal(kept[i], all[i]) {
				t.Errorf("bound %d: result %d changed", bound, i)
			}
		}
	}
}

// TestWhatsatReplyGolden rebuilds the whole example reply: the AT line, the cut body and
// the closing blank line. Its body is chicago_first3.json (google-places.md §1.6 and §5).
func TestWhatsatReplyGolden(t *testing.T) {
	reply := readFixture(t, "whatsat_reply_example.txt")
	body := readFixture(t, "chicago_first3.json")
	nl := bytes.IndexByte(reply, '\n')
	at, err := ParseLine(reply[:nl])
	if err != nil || at.Kind != AT {
		t.Fatalf("AT line %q: %v", reply[:nl], err)
	}
	// Rebuild the AT line from the IAMAT it answers and a receive time.
	iamat, err := ParseLine([]byte("IAMAT " + string(at.Client) + " " + string(at.Location) + " " + string(at.TimeText)))
	if err != nil {
		t.Fatal(err)
	}
	skew, err := ParseTime(at.Skew)
	if err != nil {
		t.Fatal(err)
	}
	recv := addTime(iamat.Time, skew)
	got := AppendAT(nil, string(at.Server), recv, &iamat)
	if got, err = AppendPlacesBody(got, body, 20); err != nil {
		t.Fatal(err)
	}
	got = append(got, "\n\n"...)
	if !bytes.Equal(got, reply) {
		t.Fatalf("reply differs at byte %d", firstDiff(got, reply))
	}
	// The body carried in the reply cuts and squeezes to itself.
	carried := reply[nl+1 : len(reply)-2]
	for _, bound := range []int{3, 20} {
		if again, err := AppendPlacesBody(nil, carried, bound); err != nil || !bytes.Equal(again, carried) {
			t.Fatalf("AppendPlacesBody(carried body, %d) is not the identity: %v", bound, err)
		}
	}
}

func addTime(a, b Time) Time {
	s, n := a.Sec+b.Sec, int64(a.Nsec)+int64(b.Nsec)
	if n >= 1e9 {
		s++
		n -= 1e9
	}
	return Time{s, int32(n)}
}

func TestStatusBodiesGolden(t *testing.T) {
	cases := []struct{ file, status, msg string }{
		{"nearby_zero.json", "ZERO_RESULTS", ""},
		{"nearby_invalid.json", "INVALID_REQUEST", ""},
		{"nearby_denied_badkey.json", "REQUEST_DENIED", "The provided API key is invalid."},
		{"nearby_denied_nokey.json", "REQUEST_DENIED", "You must use an API key to authenticate each request to Google Maps Platform APIs. For additional information, please refer to http://g.co/dev/maps-no-account"},
	}
	for _, tc := range cases {
		want := readFixture(t, tc.file)
		if got := AppendErrorBody(nil, tc.status, tc.msg); !bytes.Equal(got, want) {
			t.Errorf("AppendErrorBody(%q, %q) = %q, want %q", tc.status, tc.msg, got, want)
		}
		// A status body passes through the cut unchanged but for its last "\n".
		got, err := AppendPlacesBody(nil, want, 5)
		if err != nil || !bytes.Equal(got, want[:len(want)-1]) {
			t.Errorf("%s: AppendPlacesBody = %q, %v", tc.file, got, err)
		}
	}
}

func TestAppendErrorBody(t *testing.T) {
	for _, msg := range []string{"", "places: timeout <5s> & \"retry\"\n", "Ω"} {
		obj := Object{{"html_attributions", Array{}}, {"results", Array{}}, {"status", "UNKNOWN_ERROR"}}
		if msg != "" {
			obj = append(Object{{"error_message", msg}}, obj...)
		}
		want := AppendStyled(nil, obj)
		got := AppendErrorBody(nil, "UNKNOWN_ERROR", msg)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendErrorBody(%q) = %q, want %q", msg, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("AppendErrorBody(%q) is not valid JSON", msg)
		}
	}
}

// place builds a place object in Google's shape; i varies its content.
func place(i int) Object {
	names := []string{"Amber’s Food Cafe", "Legends Chicken & Fish", "<b>Bold</b> Bistro", "Café «Zürich» 東京", "New Hap's Grill"}
	types := Array{"restaurant", "food", "point_of_interest", "establishment"}
	if i%3 == 1 {
		types = Array{"meal_delivery", "restaurant", "food", "point_of_interest", "establishment"}
	}
	return Object{
		{"business_status", "OPERATIONAL"},
		{"geometry", Object{
			{"location", Object{{"lat", 41.754411 + float64(i)/1000}, {"lng", -87.64432069999999}}},
			{"viewport", Object{
				{"northeast", Object{{"lat", 41.75576237989272}, {"lng", -87.64287482010728}}},
				{"southwest", Object{{"lat", 41.75306272010728}, {"lng", -87.64557447989273}}},
			}},
		}},
		{"icon", "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/restaurant-71.png"},
		{"name", names[i%len(names)]},
		{"opening_hours", Object{{"open_now", i%2 == 0}}},
		{"photos", Array{Object{
			{"height", 1840},
			{"html_attributions", Array{`<a href="https://maps.google.com/maps/contrib/` + strconv.Itoa(1000+i) + `">John Watts</a>`}},
			{"photo_reference", "AW30NDwmFW6rYPzrHV1ovqhPP0bmtvNuENzzKLm7KoXf"},
			{"width", 3264},
		}}},
		{"place_id", "ChIJjcFAjGwvDogRyCVBxJLN5Q" + strconv.Itoa(i)},
		{"rating", Number("4")},
		{"scope", "GOOGLE"},
		{"types", types},
		{"user_ratings_total", i * 7},
		{"vicinity", "7550 S Halsted St, Chicago"},
	}
}

// placesBody builds an n-result body in Google's layout.
func placesBody(n int) []byte {
	res := Array{}
	for i := range n {
		res = append(res, place(i))
	}
	return AppendStyled(nil, Object{
		{"status", "OK"}, // out of order on purpose: the writer sorts
		{"results", res},
		{"html_attributions", Array{}},
		{"next_page_token", "AW30NDy9cfn_IpTGDItApfS1Sn88F6qi6c802LmFe1Zxhrte6JC1xL"},
	})
}

// TestPlacesBodyBuilt runs always: a 20-result body the test writes itself.
func TestPlacesBodyBuilt(t *testing.T) {
	body := placesBody(20)
	if !json.Valid(body) || !bytes.HasSuffix(body, []byte("}\n")) || bytes.Contains(body, []byte("\n\n")) {
		t.Fatal("built body is not Google-shaped")
	}
	for _, s := range []string{`\u003cb\u003eBold\u003c/b\u003e`, `Legends Chicken & Fish`, `Café «Zürich» 東京`, `"rating" : 4,`,
		`"types" : [ "restaurant", "food", "point_of_interest", "establishment" ],`, "\"types\" : [\n            \"meal_delivery\",",
		`"lng" : -87.64432069999999`, "{\n   \"html_attributions\" : [],\n   \"next_page_token\""} {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("built body lacks %q", s)
		}
	}
	all := results(t, body)
	for bound := 0; bound <= 21; bound++ {
		got, err := AppendPlacesBody([]byte("AT ...\n"), body, bound)
		if err != nil {
			t.Fatal(err)
		}
		got = got[len("AT ...\n"):]
		res := Array{}
		for i := range min(bound, 20) {
			res = append(res, place(i))
		}
		want := AppendStyled(nil, Object{{"html_attributions", Array{}}, {"next_page_token", "AW30NDy9cfn_IpTGDItApfS1Sn88F6qi6c802LmFe1Zxhrte6JC1xL"}, {"results", res}, {"status", "OK"}})
		if !bytes.Equal(got, want[:len(want)-1]) {
			t.Fatalf("bound %d: cut differs at %d:\n%s", bound, firstDiff(got, want), got)
		}
		kept := results(t, got)
		for i := range kept {
			if !bytes.Equal(kept[i], all[i]) {
				t.Fatalf("bound %d: result %d changed", bound, i)
			}
		}
	}
	v, err := ParseJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	if again := AppendStyled(nil, v); !bytes.Equal(again, body) {
		t.Fatalf("AppendStyled(ParseJSON(body)) differs at %d", firstDiff(again, body))
	}
}

func TestAppendPlacesBody(t *testing.T) {
	cases := []struct {
		body  string
		bound int
		want  string
		err   error
	}{
		{`{"results":[1,2,3]}`, 2, `{"results":[1,2]}`, nil},
		{`{"results":[1,2,3]}`, 0, `{"results":[]}`, nil},
		{`{"results":[1,2,3]}`, -1, `{"results":[]}`, nil},
		{`{"results":[1,2,3]}`, 3, `{"results":[1,2,3]}`, nil},
		{`{"a" : [ 1, 2 ], "results" : [ 1, 2, 3 ], "z" : [ 4, 5 ]}`, 1, `{"a" : [ 1, 2 ], "results" : [ 1 ], "z" : [ 4, 5 ]}`, nil},
		{"{\n\n\"results\" : [\n   {\"x\" : [\"]\"]},\n\n   {}\n]\n}\n\n\n", 1, "{\n\"results\" : [\n   {\"x\" : [\"]\"]}\n]\n}", nil},
		{"{\n\"results\" : [\n   1,\n   2\n]\n}\n", 0, "{\n\"results\" : []\n}", nil},
		{"{\n\"results\" : []\n}\n", 5, "{\n\"results\" : []\n}", nil},
		{` {"nested":{"results":[1,2]},"results":["a\"],","b"]} `, 1, ` {"nested":{"results":[1,2]},"results":["a\"],"]} `, nil},
		{`{"res\u0075lts":[1,2]}`, 1, `{"res\u0075lts":[1]}`, nil},
		{`{"results":{}}`, 1, "", ErrNoResults},
		{`{"results":[1],"results":[2]}`, 1, "", ErrNoResults},
		{`{"status":"OK"}`, 1, "", ErrNoResults},
		{`[{"results":[1]}]`, 1, "", ErrNoResults},
		{`"results"`, 1, "", ErrNoResults},
		{``, 1, "", ErrJSON},
		{`{"results":[1,2,]}`, 1, "", ErrJSON},
		{`{"results":[1,2]`, 1, "", ErrJSON},
		{`{"results":[1,2]}x`, 1, "", ErrJSON},
		{`{"results":[01]}`, 1, "", ErrJSON},
		{`{"results":["a` + "\x01" + `"]}`, 1, "", ErrJSON},
		{`{"results":["\x"]}`, 1, "", ErrJSON},
		{`{"results":[tru]}`, 1, "", ErrJSON},
		{`{results:[]}`, 1, "", ErrJSON},
		{"<html>502 Bad Gateway</html>", 1, "", ErrJSON},
	}
	for _, tc := range cases {
		got, err := AppendPlacesBody([]byte("x"), []byte(tc.body), tc.bound)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || string(got) != "x" {
				t.Errorf("AppendPlacesBody(%q, %d) = %q, %v; want error %v", tc.body, tc.bound, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != "x"+tc.want {
			t.Errorf("AppendPlacesBody(%q, %d) = %q, %v; want %q", tc.body, tc.bound, got, err, tc.want)
		}
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if _, err := AppendPlacesBody(nil, []byte(`{"results":`+deep+`}`), 1); !errors.Is(err, ErrJSON) {
		t.Errorf("deep nesting: %v", err)
	}
}

func TestAppendSqueezed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"\n\n\n", ""},
		{"{\n\n\n   \"status\" : \"REQUEST_DENIED\"\n\n}\n\n", "{\n   \"status\" : \"REQUEST_DENIED\"\n}"},
		{"a\nb\r\n\r\nc\n", "a\nb\r\n\r\nc"},
		{"\n\na", "\na"},
	}
	for _, tc := range cases {
		if got := string(AppendSqueezed([]byte("x"), []byte(tc.in))); got != "x"+tc.want {
			t.Errorf("AppendSqueezed(%q) = %q, want %q", tc.in, got, "x"+tc.want)
		}
	}
}

func TestAppendStyled(t *testing.T) {
	long := Array{}
	for range 25 {
		long = append(long, 1)
	}
	cases := []struct {
		v    any
		want string
	}{
		{nil, "null\n"},
		{true, "true\n"},
		{"a\"\\\b\f\n\r\t\x01\x1f<>&/é\x7f", `"a\"\\\b\f\n\r\t\u0001\u001f\u003c\u003e&/é` + "\x7f\"\n"},
		{Number("1.50"), "1.50\n"},
		{-87.64432069999999, "-87.64432069999999\n"},
		{4.0, "4\n"},
		{1e21, "1e+21\n"},
		{1e-5, "1e-05\n"},
		{0.1, "0.1\n"},
		{float32(0.5), "0.5\n"},
		{int64(-3), "-3\n"},
		{uint64(18446744073709551615), "18446744073709551615\n"},
		{Array{}, "[]\n"},
		{Object{}, "{}\n"},
		{Array{1, "a", nil, Array{}, Object{}}, "[ 1, \"a\", null, [], {} ]\n"},
		{Array{Array{1}}, "[\n   [ 1 ]\n]\n"},
		{Object{{"b", 1}, {"a", Array{Object{{"x", 1}}}}}, "{\n   \"a\" : [\n      {\n         \"x\" : 1\n      }\n   ],\n   \"b\" : 1\n}\n"},
		{map[string]any{"b": []string{"x"}, "a": []any{}}, "{\n   \"a\" : [],\n   \"b\" : [ \"x\" ]\n}\n"},
		// The 74 rule: lineLength = 4 + (n-1)*2 + sum of lengths; inline iff < 74.
		{Array{strings.Repeat("x", 67)}, "[ \"" + strings.Repeat("x", 67) + "\" ]\n"},      // 73
		{Array{strings.Repeat("x", 68)}, "[\n   \"" + strings.Repeat("x", 68) + "\"\n]\n"}, // 74
		{Array{"meal_delivery", "restaurant", "food", "point_of_interest", "establishment"}, // 79
			"[\n   \"meal_delivery\",\n   \"restaurant\",\n   \"food\",\n   \"point_of_interest\",\n   \"establishment\"\n]\n"},
		{Array{"lodging", "restaurant", "food", "point_of_interest", "establishment"}, // 73
			"[ \"lodging\", \"restaurant\", \"food\", \"point_of_interest\", \"establishment\" ]\n"},
		{long, "[\n" + strings.Repeat("   1,\n", 24) + "   1\n]\n"}, // 3*25 >= 74
		{Object{{"k", Array{strings.Repeat("y", 70)}}}, "{\n   \"k\" : [\n      \"" + strings.Repeat("y", 70) + "\"\n   ]\n}\n"},
	}
	for _, tc := range cases {
		if got := string(AppendStyled(nil, tc.v)); got != tc.want {
			t.Errorf("AppendStyled(%#v) =\n%s\nwant\n%s", tc.v, got, tc.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendStyled of a struct did not panic")
		}
	}()
	AppendStyled(nil, struct{}{})
}

func TestParseJSON(t *testing.T) {
	v, err := ParseJSON([]byte(` {"b" : [1, -2.5e+3, true, false, null, "x\u00e9\ud83d\ude00\ud800\"\\\/\b\f\n\r\t"], "a" : {}} `))
	if err != nil {
		t.Fatal(err)
	}
	want := Object{{"b", Array{Number("1"), Number("-2.5e+3"), true, false, nil, "xé😀\uFFFD\"\\/\b\f\n\r\t"}}, {"a", Object{}}}
	if got := AppendStyled(nil, v); !bytes.Equal(got, AppendStyled(nil, want)) {
		t.Fatalf("ParseJSON = %s", got)
	}
	for _, bad := range []string{"", " ", "{", `{"a"}`, `{"a":}`, "[1 2]", "nul", "-", "1.", "1e", `"\u12"`, "1 2", "\"\x00\""} {
		if _, err := ParseJSON([]byte(bad)); !errors.Is(err, ErrJSON) {
			t.Errorf("ParseJSON(%q) error = %v, want ErrJSON", bad, err)
		}
	}
	var je *JSONError
	if _, err := ParseJSON([]byte(`[1,x]`)); !errors.As(err, &je) || je.Offset != 3 || err.Error() != "codec: invalid JSON at offset 3: expected a value" {
		t.Errorf("error = %v", err)
	}
}
