package places

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/internal/testutil"
)

// parsed is the part of a legacy body the tests look at.
type parsed struct {
	Status  string
	Results []parsedPlace
}

type parsedPlace struct {
	Name, PlaceID, Vicinity, GlobalCode string
	Lat, Lng                            float64
	Types                               []string
}

func get(o codec.Object, key string) any {
	for _, m := range o {
		if m.Key == key {
			return m.Value
		}
	}
	return nil
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	n, ok := v.(codec.Number)
	if !ok {
		t.Fatalf("not a number: %#v", v)
	}
	var f float64
	if _, err := fmtSscan(string(n), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// parseBody parses a legacy body and checks that it is in Google's layout.
func parseBody(t *testing.T, body []byte) parsed {
	t.Helper()
	v, err := codec.ParseJSON(body)
	if err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if again := codec.AppendStyled(nil, v); !bytes.Equal(again, body) {
		t.Fatalf("body is not in Google's layout:\n%s\nwant\n%s", body, again)
	}
	top := v.(codec.Object)
	var p parsed
	p.Status, _ = get(top, "status").(string)
	if a, ok := get(top, "html_attributions").(codec.Array); !ok || len(a) != 0 {
		t.Errorf("html_attributions = %#v, want []", get(top, "html_attributions"))
	}
	results, ok := get(top, "results").(codec.Array)
	if !ok {
		t.Fatalf("no results array in\n%s", body)
	}
	for _, r := range results {
		o := r.(codec.Object)
		loc := get(get(o, "geometry").(codec.Object), "location").(codec.Object)
		pp := parsedPlace{
			Lat: num(t, get(loc, "lat")),
			Lng: num(t, get(loc, "lng")),
		}
		pp.Name, _ = get(o, "name").(string)
		pp.PlaceID, _ = get(o, "place_id").(string)
		pp.Vicinity, _ = get(o, "vicinity").(string)
		if pc, ok := get(o, "plus_code").(codec.Object); ok {
			pp.GlobalCode, _ = get(pc, "global_code").(string)
		}
		if ts, ok := get(o, "types").(codec.Array); ok {
			for _, s := range ts {
				pp.Types = append(pp.Types, s.(string))
			}
		}
		p.Results = append(p.Results, pp)
	}
	return p
}

func newOfflineT(t testing.TB, cfg Config) Provider {
	t.Helper()
	cfg.Provider = Offline
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDistance(t *testing.T) {
	tests := []struct {
		name                   string
		lat1, lng1, lat2, lng2 float64
		want, tol              float64 // metres
	}{
		{"same point", 34, -118, 34, -118, 0, 1e-9},
		// Los Angeles City Hall area to Santa Monica (GeoNames points): about 23.1 km.
		{"Los Angeles-Santa Monica", 34.05223, -118.24368, 34.01949, -118.49138, 23113, 50},
		{"one degree of latitude", 0, 0, 1, 0, 111195, 5},
		{"antimeridian", 0, 179.9, 0, -179.9, 22239, 5},
		{"pole to pole", 90, 0, -90, 0, math.Pi * EarthRadius, 1},
		// Paris to London, a well-known pair: about 343.6 km great-circle.
		{"Paris-London", 48.85341, 2.3488, 51.50853, -0.12574, 343600, 1500},
	}
	for _, tt := range tests {
		got := Distance(tt.lat1, tt.lng1, tt.lat2, tt.lng2)
		if math.Abs(got-tt.want) > tt.tol {
			t.Errorf("%s: Distance = %.1f m, want %.1f ± %.1f", tt.name, got, tt.want, tt.tol)
		}
	}
}

func TestPlusCode(t *testing.T) {
	// The five real captures of notes/google-places.md §1.8 and some edges.
	tests := []struct {
		lat, lng float64
		want     string
	}{
		{41.754411, -87.64432069999999, "86HJQ934+Q7"},
		{41.7563305, -87.6444274, "86HJQ944+G6"},
		{41.7633777, -87.6443518, "86HJQ974+97"},
		{0, 0, "6FG22222+22"},
		{90, 180, "C2X2X2X2+X2"},
		{-90, -180, "22222222+22"},
		{47.0000625, 8.0000625, "8FVC2222+22"},
	}
	for _, tt := range tests {
		if got := plusCode(tt.lat, tt.lng); got != tt.want {
			t.Errorf("plusCode(%v, %v) = %s, want %s", tt.lat, tt.lng, got, tt.want)
		}
	}
}

func TestOfflineLosAngeles(t *testing.T) {
	p := newOfflineT(t, Config{})
	ctx := context.Background()
	const lat, lng = 34.05223, -118.24368 // Los Angeles
	tests := []struct {
		radius   float64
		wantSome []string // names that must be in the answer
		wantNot  []string
		full     bool // more than 20 within: the answer is capped
	}{
		{1000, []string{"Los Angeles"}, []string{"Santa Monica"}, false},
		{23000, []string{"Los Angeles"}, []string{"Santa Monica"}, true},
		{23500, nil, nil, true},
		{50000, nil, nil, true},
	}
	for _, tt := range tests {
		body, err := p.Nearby(ctx, Request{LatF: lat, LngF: lng, RadiusMF: tt.radius, Bound: 5})
		if err != nil {
			t.Fatalf("radius %v: %v", tt.radius, err)
		}
		got := parseBody(t, body)
		if got.Status != "OK" {
			t.Fatalf("radius %v: status %q", tt.radius, got.Status)
		}
		if tt.full && len(got.Results) != MaxResults {
			t.Errorf("radius %v: %d results, want %d", tt.radius, len(got.Results), MaxResults)
		}
		if len(got.Results) > MaxResults {
			t.Errorf("radius %v: %d results, more than %d", tt.radius, len(got.Results), MaxResults)
		}
		names := map[string]bool{}
		prev := -1.0
		for _, r := range got.Results {
			names[r.Name] = true
			d := Distance(lat, lng, r.Lat, r.Lng)
			if d > tt.radius {
				t.Errorf("radius %v: %s is %.0f m away", tt.radius, r.Name, d)
			}
			if d < prev {
				t.Errorf("radius %v: %s (%.0f m) after a place %.0f m away: not nearest first", tt.radius, r.Name, d, prev)
			}
			prev = d
			if r.GlobalCode != plusCode(r.Lat, r.Lng) {
				t.Errorf("%s: global_code %s, want %s", r.Name, r.GlobalCode, plusCode(r.Lat, r.Lng))
			}
			if !strings.HasPrefix(r.PlaceID, "gn:") || strings.Join(r.Types, ",") != "locality,political" {
				t.Errorf("%s: place_id %q types %v", r.Name, r.PlaceID, r.Types)
			}
		}
		for _, n := range tt.wantSome {
			if !names[n] {
				t.Errorf("radius %v: %s missing from %v", tt.radius, n, names)
			}
		}
		for _, n := range tt.wantNot {
			if names[n] {
				t.Errorf("radius %v: %s present", tt.radius, n)
			}
		}
	}
	// The radius that just covers Santa Monica finds it, once the nearer ones are excluded:
	// a search from Santa Monica itself at 23.2 km must include Los Angeles.
	body, _ := p.Nearby(ctx, Request{LatF: 34.01949, LngF: -118.49138, RadiusMF: 1000})
	got := parseBody(t, body)
	if len(got.Results) == 0 || got.Results[0].Name != "Santa Monica" || got.Results[0].Vicinity != "Santa Monica, California" {
		t.Fatalf("nearest to Santa Monica: %+v", got.Results)
	}
}

// TestOfflineMatchesScan checks the grid against a full scan at awkward places: the
// antimeridian, near the poles, cell edges.
func TestOfflineMatchesScan(t *testing.T) {
	idx, err := embeddedIndex()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ lat, lng, radius float64 }{
		{-16.5, 179.99, 50000},   // Fiji, across the antimeridian
		{-16.5, -179.99, 50000},  // the other side
		{65.5, -168.5, 50000},    // Bering Strait
		{78.22, 15.65, 50000},    // Longyearbyen
		{89.9, 0, 50000},         // near the North Pole: every longitude
		{-89.9, 0, 1e6},          // South Pole, 1000 km
		{34.5, -118.0, 50000},    // a cell corner
		{51.5, -0.0001, 20000},   // London, across the prime meridian
		{35.6895, 139.69171, 10}, // Tokyo, tiny radius
	}
	for _, tt := range tests {
		got := idx.search(tt.lat, tt.lng, tt.radius, nil)
		var want []hit
		for i := range idx.places {
			p := &idx.places[i]
			if d := Distance(tt.lat, tt.lng, p.lat, p.lng); d <= tt.radius {
				want = append(want, hit{int32(i), d})
			}
		}
		if len(got) != len(want) {
			t.Errorf("search(%v, %v, %v): %d hits, scan %d", tt.lat, tt.lng, tt.radius, len(got), len(want))
			continue
		}
		for i := 1; i < len(got); i++ {
			if got[i].d < got[i-1].d {
				t.Errorf("search(%v, %v, %v): not sorted at %d", tt.lat, tt.lng, tt.radius, i)
				break
			}
		}
	}
}

func TestOfflineZeroResults(t *testing.T) {
	p := newOfflineT(t, Config{})
	// The middle of the South Pacific (Point Nemo) and of the Atlantic.
	for _, ll := range [][2]float64{{-48.8767, -123.3933}, {30, -40}} {
		body, err := p.Nearby(context.Background(), Request{LatF: ll[0], LngF: ll[1], RadiusMF: 50000, Bound: 20})
		if err != nil {
			t.Fatal(err)
		}
		if want := "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n"; string(body) != want {
			t.Errorf("%v: body\n%s\nwant\n%s", ll, body, want)
		}
		if fixture, err := os.ReadFile(filepath.Join(fixtures, "nearby_zero.json")); err == nil && !bytes.Equal(body, fixture) {
			t.Errorf("%v: body differs from the real ZERO_RESULTS body", ll)
		}
	}
}

func TestOfflineGeoJSON(t *testing.T) {
	dir := t.TempDir()
	const data = `{"type":"FeatureCollection","features":[
	 {"type":"Feature","id":1,"geometry":{"type":"Point","coordinates":[-118.445127,34.068930]},
	  "properties":{"name":"Boelter Hall <CS> & Co","types":["university","point_of_interest","establishment"],"vicinity":"580 Portola Plaza, Los Angeles"}},
	 {"type":"Feature","geometry":{"type":"Point","coordinates":[-118.4452,34.0705]},"properties":{"name":"Café Ünïcode"}},
	 {"type":"Feature","geometry":{"type":"Point","coordinates":[-118.3,34.1]},"properties":{"name":"Far away"}}
	]}`
	path := testutil.WriteFile(t, dir, "places.geojson", data)
	p := newOfflineT(t, Config{Dataset: path})
	body, err := p.Nearby(context.Background(), Request{Lat: "+34.068930", Lng: "-118.445127", RadiusM: "1000", Bound: 20})
	if err != nil {
		t.Fatal(err)
	}
	got := parseBody(t, body)
	if got.Status != "OK" || len(got.Results) != 2 {
		t.Fatalf("got %+v\n%s", got, body)
	}
	if r := got.Results[0]; r.Name != "Boelter Hall <CS> & Co" || r.Vicinity != "580 Portola Plaza, Los Angeles" ||
		strings.Join(r.Types, ",") != "university,point_of_interest,establishment" || !strings.HasPrefix(r.PlaceID, "user:") {
		t.Errorf("first = %+v", r)
	}
	if r := got.Results[1]; r.Name != "Café Ünïcode" || r.Vicinity != "" || strings.Join(r.Types, ",") != "point_of_interest,establishment" {
		t.Errorf("second = %+v", r)
	}
	if !bytes.Contains(body, []byte(`"Boelter Hall \u003cCS\u003e & Co"`)) {
		t.Errorf("name not escaped as Google does:\n%s", body)
	}

	bad := []struct{ name, data, want string }{
		{"not json", `{`, "unexpected end"},
		{"not a collection", `{"type":"Feature"}`, "want FeatureCollection"},
		// A file with no place left once the features that are not named Points are skipped.
		{"line", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]},"properties":{"name":"x"}}]}`, "no named Point feature among 1 features (0 unnamed, 1 not Points, 0 invalid)"},
		{"no name", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[0,0]},"properties":{}}]}`, "(1 unnamed, 0 not Points, 0 invalid)"},
		{"range", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[200,0]},"properties":{"name":"x"}}]}`, "(0 unnamed, 0 not Points, 1 invalid)"},
		{"empty", `{"type":"FeatureCollection","features":[]}`, "no named Point feature among 0 features"},
	}
	for _, tt := range bad {
		path := testutil.WriteFile(t, dir, tt.name+".geojson", tt.data)
		_, err := New(Config{Provider: Offline, Dataset: path})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "places: ") {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(Config{Provider: Offline, Dataset: filepath.Join(dir, "missing.geojson")}); err == nil {
		t.Error("missing dataset: no error")
	}
}

// An OpenStreetMap export (as overpass turbo or osmtogeojson writes it) is mostly what the
// provider cannot use: ways and areas, untagged nodes, nodes without a name. Those are skipped
// and counted, and the named nodes load.
func TestOfflineOSMExport(t *testing.T) {
	const data = `{"type":"FeatureCollection","generator":"overpass-turbo","copyright":"OpenStreetMap contributors, ODbL",
	"features":[
	 {"type":"Feature","id":"node/1","properties":{"@id":"node/1","amenity":"cafe","name":"Kerckhoff Coffee"},"geometry":{"type":"Point","coordinates":[-118.4429,34.0703]}},
	 {"type":"Feature","id":"node/2","properties":{"@id":"node/2","amenity":"bench"},"geometry":{"type":"Point","coordinates":[-118.4431,34.0701]}},
	 {"type":"Feature","id":"way/3","properties":{"@id":"way/3","building":"university","name":"Boelter Hall"},"geometry":{"type":"Polygon","coordinates":[[[-118.4434,34.0693],[-118.4426,34.0693],[-118.4426,34.0698],[-118.4434,34.0693]]]}},
	 {"type":"Feature","id":"way/4","properties":{"@id":"way/4","highway":"footway","name":"Bruin Walk"},"geometry":{"type":"LineString","coordinates":[[-118.4449,34.0710],[-118.4420,34.0712]]}},
	 {"type":"Feature","id":"node/5","properties":{"@id":"node/5","name":"Broken"},"geometry":{"type":"Point","coordinates":[-118.4]}},
	 {"type":"Feature","id":"relation/6","properties":{"name":"Westwood"},"geometry":null},
	 {"type":"Feature","id":"node/7","properties":{"@id":"node/7","amenity":"library","name":"Powell Library","types":"library"},"geometry":{"type":"Point","coordinates":[-118.4422,34.0716]}},
	 {"type":"Feature","id":"node/8","properties":{"@id":"node/8","amenity":"restaurant","name":"Café 1919"},"geometry":{"type":"Point","coordinates":[-118.4451,34.0632,71.5]}}
	]}`
	path := testutil.WriteFile(t, t.TempDir(), "export.geojson", data)
	p := newOfflineT(t, Config{Provider: Offline, Dataset: path})
	st, ok := Dataset(p)
	want := DatasetStats{File: path, Places: 2, Unnamed: 1, NotPoint: 3, Invalid: 2}
	if !ok || st != want || st.Skipped() != 6 {
		t.Errorf("Dataset = %+v, %v; want %+v", st, ok, want)
	}
	body, err := p.Nearby(context.Background(), Request{Lat: "+34.068930", Lng: "-118.445127", RadiusM: "2000", Bound: 20})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range parseBody(t, body).Results {
		names = append(names, r.Name)
	}
	if strings.Join(names, "|") != "Kerckhoff Coffee|Café 1919" {
		t.Errorf("places found: %q\n%s", names, body)
	}
	if _, ok := Dataset(newOfflineT(t, Config{})); !ok {
		t.Error("Dataset: the embedded offline provider not reported")
	}
}

func BenchmarkOffline(b *testing.B) {
	p := newOfflineT(b, Config{})
	o := p.(*offline)
	runtime.GC() // the dataset's load leaves garbage that would be collected during the runs
	for _, radius := range []float64{10000, 50000} {
		b.Run(strings.TrimSuffix(strings.TrimSuffix(fmtFloat(radius/1000), ".0"), "")+"km", func(b *testing.B) {
			req := Request{LatF: 34.068930, LngF: -118.445127, RadiusMF: radius, Bound: 20}
			b.ReportAllocs()
			for b.Loop() {
				o.answer(req)
			}
		})
	}
	b.Run("search-only-50km", func(b *testing.B) {
		hits := make([]hit, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			hits = o.idx.search(34.068930, -118.445127, 50000, hits[:0])
		}
	})
}
