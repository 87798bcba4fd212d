package places

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// testKey holds characters that need escaping in a query string.
const testKey = "AIza-test&key=1/2"

func newProvider(t testing.TB, cfg Config) Provider {
	t.Helper()
	if cfg.Key == "" {
		cfg.Key = testKey
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var ucla = Request{Lat: "+34.068930", Lng: "-118.445127", RadiusM: "10000", LatF: 34.068930, LngF: -118.445127, RadiusMF: 10000, Bound: 5}

// noKey fails the test if the key shows anywhere in a body or an error.
func noKey(t *testing.T, what string, body []byte, err error) {
	t.Helper()
	for _, k := range []string{testKey, "AIza-test", "AIza-test%26key"} {
		if bytes.Contains(body, []byte(k)) {
			t.Errorf("%s: key in body:\n%s", what, body)
		}
		if err != nil && strings.Contains(err.Error(), k) {
			t.Errorf("%s: key in error: %v", what, err)
		}
	}
}

func TestGoogleQuery(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{Key: testKey})
	p := newProvider(t, Config{Provider: Google, URL: base})
	body, err := p.Nearby(context.Background(), ucla)
	if err != nil {
		t.Fatal(err)
	}
	want := fake.LegacyBody(34.068930, -118.445127, 10000, 20)
	if !bytes.Equal(body, want) {
		t.Fatalf("body is not Google's bytes:\n%s", body)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "GET" || r.Path != LegacyPath {
		t.Errorf("%s %s", r.Method, r.Path)
	}
	for k, v := range map[string]string{"location": "34.068930,-118.445127", "radius": "10000", "key": testKey} {
		if got := r.Query.Get(k); got != v {
			t.Errorf("query %s = %q, want %q", k, got, v)
		}
	}
	if ua := r.Header["User-Agent"]; ua != userAgent {
		t.Errorf("User-Agent %q", ua)
	}
	// Numbers only: the text is derived.
	f.Reset()
	if _, err := p.Nearby(context.Background(), Request{LatF: -33.8670522, LngF: 151.1957362, RadiusMF: 1500.5}); err != nil {
		t.Fatal(err)
	}
	r = f.Requests()[0]
	if r.Query.Get("location") != "-33.8670522,151.1957362" || r.Query.Get("radius") != "1500.5" {
		t.Errorf("query %v", r.Query)
	}
}

// TestGooglePassThrough: whatever Google sends with a status, the reply carries its bytes.
func TestGooglePassThrough(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.json"))
	if len(files) == 0 {
		t.Skipf("no fixtures in %s (the shared fixtures live beside the repo as ../shared/fixtures/places)", fixtures)
	}
	f, base := fake.StartTest(t, fake.Options{})
	p := newProvider(t, Config{Provider: Google, URL: base})
	for _, file := range files {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f.Set(fake.Options{Body: want})
		body, err := p.Nearby(context.Background(), ucla)
		if !bytes.Equal(body, want) {
			t.Errorf("%s: body differs:\n%s", filepath.Base(file), body)
		}
		var head struct{ Status string }
		_ = json.Unmarshal(want, &head)
		var se *StatusError
		switch head.Status {
		case "OK", "ZERO_RESULTS":
			if err != nil {
				t.Errorf("%s: err %v", filepath.Base(file), err)
			}
		default:
			if !errors.As(err, &se) || se.Status != head.Status {
				t.Errorf("%s: err %v, want a StatusError %s", filepath.Base(file), err, head.Status)
			}
		}
		// Every real capture is in the layout our writer makes.
		v, perr := codec.ParseJSON(want)
		if perr != nil || !bytes.Equal(codec.AppendStyled(nil, v), want) {
			t.Errorf("%s: not reproduced by codec.AppendStyled", filepath.Base(file))
		}
	}
}

// errorBody parses an UNKNOWN_ERROR (or other error) body and returns status and message.
func errorBody(t *testing.T, body []byte) (status, msg string) {
	t.Helper()
	p := parseBody(t, body)
	if len(p.Results) != 0 {
		t.Errorf("error body with results:\n%s", body)
	}
	v, _ := codec.ParseJSON(body)
	msg, _ = get(v.(codec.Object), "error_message").(string)
	return p.Status, msg
}

func TestFailures(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{})
	refused := "http://" + testutil.FreeAddr(t)
	huge := []byte(`{"results":[],"status":"OK","x":"` + strings.Repeat("a", MaxBodySize) + `"}`)
	tests := []struct {
		name       string
		provider   string
		url        string // "" = the fake
		opts       fake.Options
		timeout    time.Duration
		wantStatus string
		wantMsg    string // substring of error_message
		wantErr    error  // errors.Is, or nil for a *StatusError
	}{
		{"timeout", Google, "", fake.Options{Hang: true}, 100 * time.Millisecond, "UNKNOWN_ERROR", "places: timeout after 100ms", ErrTimeout},
		{"refused", Google, refused, fake.Options{}, time.Second, "UNKNOWN_ERROR", "connection refused", ErrTransport},
		{"HTTP 500", Google, "", fake.Options{HTTPStatus: 500}, time.Second, "UNKNOWN_ERROR", "places: HTTP 500", ErrHTTP},
		{"HTTP 403", Google, "", fake.Options{HTTPStatus: 403}, time.Second, "UNKNOWN_ERROR", "places: HTTP 403", ErrHTTP},
		{"not JSON", Google, "", fake.Options{Malformed: true}, time.Second, "UNKNOWN_ERROR", "not JSON", ErrBadBody},
		{"no status", Google, "", fake.Options{Body: []byte(`{"results":[]}`)}, time.Second, "UNKNOWN_ERROR", "no status", ErrBadBody},
		{"too large", Google, "", fake.Options{Body: huge}, time.Second, "UNKNOWN_ERROR", "body size exceeds the given limit", ErrTransport},
		{"JSON array", Google, "", fake.Options{Body: []byte(`[1]`)}, time.Second, "UNKNOWN_ERROR", "not JSON", ErrBadBody},
		{"v1 timeout", GoogleV1, "", fake.Options{Hang: true}, 100 * time.Millisecond, "UNKNOWN_ERROR", "places: timeout after 100ms", ErrTimeout},
		{"v1 refused", GoogleV1, refused, fake.Options{}, time.Second, "UNKNOWN_ERROR", "connection refused", ErrTransport},
		{"v1 HTTP 502", GoogleV1, "", fake.Options{HTTPStatus: 502}, time.Second, "UNKNOWN_ERROR", "places: HTTP 502", ErrHTTP},
		{"v1 not JSON", GoogleV1, "", fake.Options{Malformed: true}, time.Second, "UNKNOWN_ERROR", "not JSON", ErrBadBody},
		{"v1 INVALID_ARGUMENT", GoogleV1, "", fake.Options{V1Error: "INVALID_ARGUMENT", StatusMessage: "Longitude must be in the range [-180.0, +180.0]."}, time.Second,
			"INVALID_REQUEST", "Longitude must be in the range [-180.0, +180.0].", nil},
		{"v1 PERMISSION_DENIED", GoogleV1, "", fake.Options{V1Error: "PERMISSION_DENIED", StatusMessage: "Method doesn't allow unregistered callers"}, time.Second,
			"REQUEST_DENIED", "Method doesn't allow unregistered callers", nil},
		{"v1 UNAUTHENTICATED", GoogleV1, "", fake.Options{V1Error: "UNAUTHENTICATED", StatusMessage: "no"}, time.Second, "REQUEST_DENIED", "no", nil},
		{"v1 RESOURCE_EXHAUSTED", GoogleV1, "", fake.Options{V1Error: "RESOURCE_EXHAUSTED", StatusMessage: "Quota exceeded"}, time.Second, "OVER_QUERY_LIMIT", "Quota exceeded", nil},
		{"v1 INTERNAL", GoogleV1, "", fake.Options{V1Error: "INTERNAL", StatusMessage: "oops"}, time.Second, "UNKNOWN_ERROR", "oops", nil},
		{"v1 key echoed", GoogleV1, "", fake.Options{V1Error: "INVALID_ARGUMENT", StatusMessage: "API key " + testKey + " not valid"}, time.Second,
			"INVALID_REQUEST", "API key REDACTED not valid", nil},
		{"v1 bad key", GoogleV1, "", fake.Options{Key: "another"}, time.Second, "INVALID_REQUEST", "API key not valid", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Set(tt.opts)
			url := tt.url
			if url == "" {
				url = base
			}
			p := newProvider(t, Config{Provider: tt.provider, URL: url, Timeout: tt.timeout})
			body, err := p.Nearby(context.Background(), ucla)
			noKey(t, tt.name, body, err)
			status, msg := errorBody(t, body)
			if status != tt.wantStatus || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("status %q message %q, want %q with %q", status, msg, tt.wantStatus, tt.wantMsg)
			}
			if tt.wantErr != nil {
				// A transport error's text for the client leaves out the addresses its text for
				// the log holds (TestErrorBodiesNameNoAddress); the others are the same text.
				if !errors.Is(err, tt.wantErr) || (!errors.Is(err, ErrTransport) && err.Error() != msg) {
					t.Errorf("err %v, want %v with the message %q", err, tt.wantErr, msg)
				}
				want := codec.AppendErrorBody(nil, "UNKNOWN_ERROR", msg)
				if !bytes.Equal(body, want) {
					t.Errorf("body\n%s\nwant\n%s", body, want)
				}
			} else {
				var se *StatusError
				if !errors.As(err, &se) || se.Status != status || se.Message != msg {
					t.Errorf("err %v, want StatusError{%s, %q}", err, status, msg)
				}
			}
		})
	}
}

func TestGoogleV1(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{Key: testKey})
	p := newProvider(t, Config{Provider: GoogleV1, URL: base})
	req := ucla
	req.Bound = 7 // not sent: a full page serves every bound
	body, err := p.Nearby(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Requests()[0]
	if r.Method != "POST" || r.Path != V1Path || r.Header["X-Goog-Api-Key"] != testKey ||
		r.Header["X-Goog-Fieldmask"] != V1FieldMask || !strings.HasPrefix(r.Header["Content-Type"], "application/json") {
		t.Errorf("request %s %s %v", r.Method, r.Path, r.Header)
	}
	if len(r.Query) != 0 {
		t.Errorf("query %v: the key belongs in the header", r.Query)
	}
	var q struct {
		MaxResultCount      int
		LocationRestriction struct {
			Circle struct {
				Center struct{ Latitude, Longitude float64 }
				Radius float64
			}
		}
	}
	if err := json.Unmarshal(r.Body, &q); err != nil {
		t.Fatalf("request body %s: %v", r.Body, err)
	}
	c := q.LocationRestriction.Circle
	if q.MaxResultCount != MaxResults || c.Center.Latitude != 34.068930 || c.Center.Longitude != -118.445127 || c.Radius != 10000 {
		t.Errorf("request body %s", r.Body)
	}

	got := parseBody(t, body)
	want := fake.Places(34.068930, -118.445127, 10000, MaxResults)
	if got.Status != "OK" || len(got.Results) != len(want) {
		t.Fatalf("status %s, %d results", got.Status, len(got.Results))
	}
	for i, w := range want {
		g := got.Results[i]
		if g.Name != w.Name || g.PlaceID != w.ID || g.Vicinity != w.Vicinity || g.Lat != w.Lat || g.Lng != w.Lng ||
			strings.Join(g.Types, ",") != strings.Join(w.Types, ",") || g.GlobalCode != "86HJQ934+Q7" {
			t.Errorf("result %d = %+v, want %+v", i, g, w)
		}
	}
	// Fields beyond the common ones, checked on the bytes.
	v, _ := codec.ParseJSON(body)
	res := get(v.(codec.Object), "results").(codec.Array)
	for i, w := range want {
		o := res[i].(codec.Object)
		if w.Price >= 0 {
			if n, _ := get(o, "price_level").(codec.Number); string(n) != string(rune('0'+w.Price)) {
				t.Errorf("result %d: price_level %v, want %d", i, get(o, "price_level"), w.Price)
			}
		} else if get(o, "price_level") != nil {
			t.Errorf("result %d: price_level present", i)
		}
		if oh, ok := get(o, "opening_hours").(codec.Object); ok != (w.OpenNow >= 0) || (ok && get(oh, "open_now") != (w.OpenNow == 1)) {
			t.Errorf("result %d: opening_hours %v, want open %d", i, get(o, "opening_hours"), w.OpenNow)
		}
		if get(o, "business_status") != w.Status || get(o, "scope") != "GOOGLE" || get(o, "reference") != w.ID {
			t.Errorf("result %d: %v", i, o)
		}
		icon, _ := get(o, "icon").(string)
		if !strings.HasPrefix(icon, "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/") || !strings.HasSuffix(icon, "-71.png") {
			t.Errorf("result %d: icon %q", i, icon)
		}
	}
	if !bytes.Contains(body, []byte(`"rating" : 4,`)) {
		t.Errorf("integer rating not kept verbatim:\n%s", body)
	}

	// Empty answer: ZERO_RESULTS in the legacy shape.
	f.Set(fake.Options{Results: -1})
	body, err = p.Nearby(context.Background(), Request{LatF: 1, LngF: 2, RadiusMF: 3})
	if err != nil || string(body) != "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n" {
		t.Errorf("empty: %v\n%s", err, body)
	}
}

func TestLegacyIcon(t *testing.T) {
	tests := []struct{ mask, want string }{
		{"https://maps.gstatic.com/mapfiles/place_api/icons/v2/restaurant_pinlet", "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/restaurant-71.png"},
		{"https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet", "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/generic_business-71.png"},
		{"https://example.com/x_pinlet", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := legacyIcon(tt.mask); got != tt.want {
			t.Errorf("legacyIcon(%q) = %q, want %q", tt.mask, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg       Config
		key, want string
	}{
		{Config{Provider: "bing"}, "provider", `unknown provider "bing"`},
		{Config{Provider: Google}, "key", "needs an API key"},
		{Config{Provider: GoogleV1}, "key", "needs an API key"},
		{Config{Provider: Google, Key: "k", URL: "ftp://x"}, "url", `"ftp://x": want http(s)://host[:port]`},
		{Config{Provider: Google, Key: "k", URL: "::"}, "url", "want http(s)://host[:port]"},
		{Config{Provider: Offline, Dataset: "/nonexistent/places.geojson"}, "dataset", "no such file"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		var ce *ConfigError
		if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(ce.Msg, tt.want) {
			t.Errorf("New(%+v) = %v, want a ConfigError of %s with %q", tt.cfg, err, tt.key, tt.want)
		}
	}
	for _, name := range []string{Google, GoogleV1, Offline} {
		p, err := New(Config{Provider: name, Key: "k"})
		if err != nil || p.Name() != name {
			t.Errorf("New(%s) = %v, %v", name, p, err)
		}
	}
}

// TestCtxDeadline: a ctx deadline sooner than the provider's timeout bounds the call (the
// herd gives each call the deadline of its WHATSAT).
func TestCtxDeadline(t *testing.T) {
	for _, provider := range []string{Google, GoogleV1} {
		t.Run(provider, func(t *testing.T) {
			_, base := fake.StartTest(t, fake.Options{Hang: true})
			p := newProvider(t, Config{Provider: provider, URL: base, Timeout: time.Minute})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			body, err := p.Nearby(ctx, ucla)
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("err %v, want ErrTimeout", err)
			}
			if status, msg := errorBody(t, body); status != "UNKNOWN_ERROR" || !strings.HasPrefix(msg, "places: timeout after") {
				t.Errorf("%s %q", status, msg)
			}
			// A ctx already past its deadline: no call at all.
			body, err = p.Nearby(ctx, ucla)
			if !errors.Is(err, ErrTimeout) || len(body) == 0 {
				t.Errorf("past deadline: err %v, body %q", err, body)
			}
		})
	}
}

func TestCache(t *testing.T) {
	if c := NewCache(10, 0); c != nil {
		t.Fatal("NewCache with no TTL made a cache")
	}
	var off *Cache
	off.Add("k", []byte("x"))
	if _, ok := off.Get("k"); ok || off.Len() != 0 {
		t.Error("a nil Cache kept an answer")
	}
	c := NewCache(2, 50*time.Millisecond)
	c.Add("a", []byte("A"))
	if b, ok := c.Get("a"); !ok || string(b) != "A" {
		t.Errorf("Get(a) = %q, %v within the TTL", b, ok)
	}
	c.Add("b", []byte("B"))
	c.Get("a") // a is now the most recently used
	c.Add("c", []byte("C"))
	if _, ok := c.Get("b"); ok || c.Len() != 2 {
		t.Errorf("past the size: b kept (%v), %d entries, want 2", ok, c.Len())
	}
	if _, ok := c.Get("a"); !ok {
		t.Error("the most recently used answer was evicted")
	}
	testutil.WaitFor(t, "the entry to expire", func() bool { _, ok := c.Get("c"); return !ok })
}

// BenchmarkGoogle measures one call's overhead against the local fake (no coalescing: each
// iteration waits for its answer, so no two are in flight together). "recycled" gives each
// body back once read, as the server does: past fasthttp's pool calibration (42,000 calls;
// -benchtime 50000x) its bytes per call show whether answers are read without allocating.
func BenchmarkGoogle(b *testing.B) {
	for _, provider := range []string{Google, GoogleV1, Google + "/recycled"} {
		b.Run(provider, func(b *testing.B) {
			_, base := fake.StartTest(b, fake.Options{})
			name, recycle := strings.CutSuffix(provider, "/recycled")
			p := newProvider(b, Config{Provider: name, URL: base})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				body, err := p.Nearby(ctx, ucla)
				if err != nil {
					b.Fatal(err)
				}
				if recycle {
					Recycle(body)
				}
			}
		})
	}
}

// The google provider's index is the index of the body it returns, whatever the body: Google's
// (an answer, a status), or one of its own (a failure).
func TestNearbyIndexed(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{})
	for _, opts := range []fake.Options{
		{}, {Results: 3}, {Status: "REQUEST_DENIED", StatusMessage: "no"}, {Malformed: true},
		{HTTPStatus: 500}, {Body: []byte(`{"results":[]}`)}, {Body: []byte(`{"status":"OK"}`)},
	} {
		f.Set(opts)
		p := newProvider(t, Config{Provider: Google, URL: base, Timeout: time.Second}).(Indexer)
		body, ix, err := p.NearbyIndexed(context.Background(), ucla)
		want, werr := codec.IndexPlaces(body)
		if werr != nil || ix != want {
			t.Errorf("%+v: index %+v, IndexPlaces %+v (%v); err %v", opts, ix, want, werr, err)
		}
		plain, perr := p.Nearby(context.Background(), ucla)
		if !bytes.Equal(plain, body) || fmt.Sprint(perr) != fmt.Sprint(err) {
			t.Errorf("%+v: Nearby %q %v, NearbyIndexed %q %v", opts, plain, perr, body, err)
		}
	}
}
