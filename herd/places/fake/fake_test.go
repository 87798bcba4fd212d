package fake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/internal/testutil"
	"github.com/valyala/fasthttp"
)

func do(t *testing.T, method, url string, hdr map[string]string, body string) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBodyString(body)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

func TestLegacyBody(t *testing.T) {
	s, base := StartTest(t, Options{})
	code, body := do(t, "GET", base+"/maps/api/place/nearbysearch/json?location=34.068930,-118.445127&radius=10000&key=k", nil, "")
	if code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	v, err := codec.ParseJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	if again := codec.AppendStyled(nil, v); !bytes.Equal(again, body) {
		t.Fatalf("not in Google's layout")
	}
	for _, want := range []string{`"status" : "OK"`, " & ", `\u003c`, `\u003e`, "’", `"rating" : 4,`, `"next_page_token"`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("body lacks %q", want)
		}
	}
	var doc struct{ Results []json.RawMessage }
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Results) != 20 {
		t.Fatalf("%d results, err %v", len(doc.Results), err)
	}
	// Deterministic from the location.
	_, again := do(t, "GET", base+"/maps/api/place/nearbysearch/json?location=34.068930,-118.445127&radius=10000&key=k", nil, "")
	if !bytes.Equal(body, again) {
		t.Error("two answers for one question differ")
	}
	if s.Count() != 2 {
		t.Errorf("Count = %d, want 2", s.Count())
	}
	r := s.Requests()[0]
	if r.Method != "GET" || r.Path != "/maps/api/place/nearbysearch/json" || r.Query.Get("location") != "34.068930,-118.445127" ||
		r.Query.Get("radius") != "10000" || r.Query.Get("key") != "k" {
		t.Errorf("recorded %+v", r)
	}
}

func TestKnobs(t *testing.T) {
	s, base := StartTest(t, Options{})
	legacy := base + "/maps/api/place/nearbysearch/json?location=1,2&radius=10&key=k"
	v1 := base + "/v1/places:searchNearby"
	v1body := `{"maxResultCount":3,"locationRestriction":{"circle":{"center":{"latitude":1,"longitude":2},"radius":10}}}`
	mask := map[string]string{"X-Goog-FieldMask": "places.id", "X-Goog-Api-Key": "k"}
	tests := []struct {
		name     string
		opts     Options
		method   string
		url      string
		hdr      map[string]string
		body     string
		wantCode int
		want     string
	}{
		{"status", Options{Status: "OVER_QUERY_LIMIT", StatusMessage: "slow down"}, "GET", legacy, nil, "", 200,
			"{\n   \"error_message\" : \"slow down\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OVER_QUERY_LIMIT\"\n}\n"},
		{"http", Options{HTTPStatus: 503}, "GET", legacy, nil, "", 503, "Service Unavailable"},
		{"malformed", Options{Malformed: true}, "GET", legacy, nil, "", 200, "<html>"},
		{"bad key", Options{Key: "right"}, "GET", legacy, nil, "", 200, "The provided API key is invalid."},
		{"zero", Options{Results: -1}, "GET", legacy, nil, "", 200, `"status" : "ZERO_RESULTS"`},
		{"no location", Options{}, "GET", base + "/maps/api/place/nearbysearch/json?radius=10", nil, "", 200, `"status" : "INVALID_REQUEST"`},
		{"v1 ok", Options{}, "POST", v1, mask, v1body, 200, `"places": [`},
		{"v1 empty", Options{Results: -1}, "POST", v1, mask, v1body, 200, "{}\n"},
		{"v1 no mask", Options{}, "POST", v1, nil, v1body, 400, "FieldMask is a required parameter"},
		{"v1 error", Options{V1Error: "RESOURCE_EXHAUSTED", StatusMessage: "quota"}, "POST", v1, mask, v1body, 429, `"status": "RESOURCE_EXHAUSTED"`},
		{"v1 forced legacy status", Options{Status: "REQUEST_DENIED"}, "POST", v1, mask, v1body, 403, `"PERMISSION_DENIED"`},
		{"v1 http", Options{HTTPStatus: 502}, "POST", v1, mask, v1body, 502, "Bad Gateway"},
		{"v1 bad key", Options{Key: "right"}, "POST", v1, mask, v1body, 400, "API key not valid"},
		{"not found", Options{}, "GET", base + "/nope", nil, "", 404, "Not Found"},
	}
	for _, tt := range tests {
		s.Set(tt.opts)
		code, body := do(t, tt.method, tt.url, tt.hdr, tt.body)
		if code != tt.wantCode || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s: HTTP %d %q, want %d containing %q", tt.name, code, body, tt.wantCode, tt.want)
		}
	}
	s.Set(Options{})
	_, body := do(t, "POST", v1, mask, v1body)
	var ans struct{ Places []map[string]any }
	if err := json.Unmarshal(body, &ans); err != nil || len(ans.Places) != 3 {
		t.Errorf("v1: %d places (maxResultCount 3), err %v", len(ans.Places), err)
	}
	last := s.Requests()[len(s.Requests())-1]
	if last.Header["X-Goog-Fieldmask"] != "places.id" || string(last.Body) != v1body {
		t.Errorf("recorded %+v", last)
	}
}

func TestHangReleasedByClose(t *testing.T) {
	s, base := StartTest(t, Options{Hang: true})
	done := make(chan error, 1)
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(base + "/maps/api/place/nearbysearch/json?location=1,2&radius=3")
		done <- fasthttp.DoTimeout(req, resp, 50*time.Millisecond)
	}()
	if err := <-done; err == nil {
		t.Fatal("a hanging request answered")
	}
	testutil.WaitFor(t, "the request counted", func() bool { return s.Count() != 0 })
	if s.Count() != 1 {
		t.Fatalf("Count = %d", s.Count())
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	testutil.Recv(t, closed, "Close to return")
}

// TestDropAndCloseIdle: Drop closes the connection without a byte of answer (the request is
// still counted), and CloseIdle closes a keep-alive connection waiting between requests.
func TestDropAndCloseIdle(t *testing.T) {
	s, base := StartTest(t, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const req = "GET /maps/api/place/nearbysearch/json?location=1,2&radius=3&key=k HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	br := bufio.NewReader(conn)
	if err := resp.Read(br); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("first answer: %v, HTTP %d", err, resp.StatusCode())
	}
	closed := 0
	testutil.WaitFor(t, "the idle connection closed", func() bool { closed += s.CloseIdle(); return closed == 1 })
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after CloseIdle: read %d bytes, %v; want EOF", n, err)
	}

	s.Set(Options{Drop: true})
	conn2, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn2.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(conn2); len(b) != 0 || err != nil {
		t.Fatalf("Drop: read %q, %v; want nothing and EOF", b, err)
	}
	if n := s.Count(); n != 2 {
		t.Errorf("Count %d, want 2", n)
	}
}

// TestBodyCache: a cached answer is the one built afresh, and the cache stays bounded.
func TestBodyCache(t *testing.T) {
	s := New(Options{})
	builds := 0
	build := func(lat, lng, radius float64, n int) []byte {
		builds++
		return LegacyBody(lat, lng, radius, n)
	}
	first := s.body("legacy", 34.06893, -118.445127, 1000, 20, build)
	again := s.body("legacy", 34.06893, -118.445127, 1000, 20, build)
	if builds != 1 || !bytes.Equal(first, again) || !bytes.Equal(first, LegacyBody(34.06893, -118.445127, 1000, 20)) {
		t.Fatalf("builds = %d; cached body differs: %v", builds, !bytes.Equal(first, again))
	}
	if s.body("legacy", 34.06893, -118.445127, 1000, 3, build); builds != 2 {
		t.Fatalf("another result count reused a body (builds = %d)", builds)
	}
	small := func(lat, _, _ float64, _ int) []byte { return []byte(strconv.FormatFloat(lat, 'g', -1, 64)) }
	for i := range 3 * MaxCached {
		lat := float64(i) / 1000
		if got, want := string(s.body("x", lat, 0, 1, 1, small)), strconv.FormatFloat(lat, 'g', -1, 64); got != want {
			t.Fatalf("body = %q, want %q", got, want)
		}
		if n := s.nbodies.Load(); n > MaxCached {
			t.Fatalf("%d bodies cached, bound %d", n, MaxCached)
		}
	}
	entries := 0
	s.bodies.Range(func(any, any) bool { entries++; return true })
	if entries > MaxCached {
		t.Fatalf("%d bodies cached, bound %d", entries, MaxCached)
	}
}

// TestNoRecord: requests are counted and answered, but not kept.
func TestNoRecord(t *testing.T) {
	s, base := StartTest(t, Options{NoRecord: true})
	for range 3 {
		if code, body := do(t, "GET", base+"/maps/api/place/nearbysearch/json?location=1,2&radius=100&key=k", nil, ""); code != 200 || !bytes.Contains(body, []byte(`"status" : "OK"`)) {
			t.Fatalf("HTTP %d %.80s", code, body)
		}
	}
	if n, r := s.Count(), len(s.Requests()); n != 3 || r != 0 {
		t.Fatalf("Count = %d, Requests = %d; want 3, 0", n, r)
	}
}

func BenchmarkLegacyAnswer(b *testing.B) {
	for _, record := range []bool{true, false} {
		b.Run(map[bool]string{true: "record", false: "norecord"}[record], func(b *testing.B) {
			s := New(Options{NoRecord: !record})
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/maps/api/place/nearbysearch/json?location=34.068930,-118.445127&radius=10000&key=k")
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				s.handle(&ctx)
			}
		})
	}
}

// With a pool, answers come from the bodies built at start, picked by the question: a pool
// of one answers every location alike, in Google's layout; another number of results is
// built for its question as without a pool.
func TestPool(t *testing.T) {
	s, base := StartTest(t, Options{Pool: 1, NoRecord: true})
	ask := func(loc string) []byte {
		code, body := do(t, "GET", base+"/maps/api/place/nearbysearch/json?location="+loc+"&radius=10000&key=k", nil, "")
		if code != 200 {
			t.Fatalf("HTTP %d", code)
		}
		return body
	}
	a, b := ask("34.068930,-118.445127"), ask("-33.8670522,151.1957362")
	if !bytes.Equal(a, b) {
		t.Error("a pool of one gave two answers")
	}
	v, err := codec.ParseJSON(a)
	if err != nil || !bytes.Equal(codec.AppendStyled(nil, v), a) {
		t.Fatalf("not a body in Google's layout: %v", err)
	}
	var doc struct{ Results []json.RawMessage }
	if err := json.Unmarshal(a, &doc); err != nil || len(doc.Results) != 20 {
		t.Fatalf("%d results, err %v", len(doc.Results), err)
	}
	if code, body := do(t, "GET", base+"/maps/api/place/nearbysearch/json?location=91,0&radius=10000&key=k", nil, ""); code != 200 || !bytes.Contains(body, []byte(`"INVALID_REQUEST"`)) {
		t.Errorf("a location out of range: HTTP %d %s", code, body)
	}
	s.Set(Options{Pool: 1, Results: 3})
	if err := json.Unmarshal(ask("34.068930,-118.445127"), &doc); err != nil || len(doc.Results) != 3 {
		t.Errorf("after Set(Results: 3): %d results, err %v", len(doc.Results), err)
	}
}
