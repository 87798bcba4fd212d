package places

import (
	"math"
	"strings"
	"testing"
)

// olcDecode returns the south-west corner of a 10-digit code's cell (1/8000 degree square).
func olcDecode(code string) (lat, lng float64) {
	digits := strings.Replace(code, "+", "", 1)
	for i := 0; i < 10; i += 2 {
		place := math.Pow(20, float64(1-i/2))
		lat += float64(strings.IndexByte(olcAlphabet, digits[i])) * place
		lng += float64(strings.IndexByte(olcAlphabet, digits[i+1])) * place
	}
	return lat - 90, lng - 180
}

// FuzzPlusCode: a code is 8 digits, "+", 2 digits, and its cell holds the point.
func FuzzPlusCode(f *testing.F) {
	f.Add(41.754411, -87.64432069999999)
	f.Add(0.0, 0.0)
	f.Add(90.0, 180.0)
	f.Add(-90.0, -180.0)
	f.Add(-33.8670522, 151.1957362)
	f.Add(12.5, 540.25)
	f.Fuzz(func(t *testing.T, lat, lng float64) {
		if math.IsNaN(lat) || math.IsInf(lat, 0) || math.IsNaN(lng) || math.IsInf(lng, 0) || math.Abs(lng) > 1e6 {
			t.Skip()
		}
		code := plusCode(lat, lng)
		if len(code) != 11 || code[8] != '+' {
			t.Fatalf("plusCode(%v, %v) = %q: bad shape", lat, lng, code)
		}
		for i, c := range []byte(code) {
			if i != 8 && strings.IndexByte(olcAlphabet, c) < 0 {
				t.Fatalf("plusCode(%v, %v) = %q: bad digit", lat, lng, code)
			}
		}
		clat := math.Max(-90, math.Min(90, lat))
		clng := math.Mod(lng+180, 360)
		if clng < 0 {
			clng += 360
		}
		clng -= 180
		s, w := olcDecode(code)
		const cell, eps = 1.0 / 8000, 1e-9
		if clat < s-eps || (clat > s+cell+eps) || clng < w-eps || clng > w+cell+eps {
			if !(clng > 180-cell-eps && w == -180) { // 180 wraps to -180
				t.Fatalf("plusCode(%v, %v) = %q: cell [%v, %v]+1/8000 does not hold the point", lat, lng, code, s, w)
			}
		}
	})
}

// FuzzSearch: every hit is within the radius, sorted nearest first, and none is missed
// (checked against a full scan).
func FuzzSearch(f *testing.F) {
	idx, err := embeddedIndex()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(34.06893, -118.445127, 10000.0)
	f.Add(-16.5, 179.99, 50000.0)
	f.Add(89.99, 12.0, 50000.0)
	f.Add(0.0, 0.0, 0.0)
	f.Fuzz(func(t *testing.T, lat, lng, radius float64) {
		if !(lat >= -90 && lat <= 90 && lng >= -180 && lng <= 180 && radius >= 0 && radius <= 50000) {
			t.Skip()
		}
		hits := idx.search(lat, lng, radius, nil)
		for i, h := range hits {
			if h.d > radius {
				t.Fatalf("hit %d at %v m > %v", i, h.d, radius)
			}
			if i > 0 && h.d < hits[i-1].d {
				t.Fatalf("hit %d not sorted", i)
			}
		}
		n := 0
		for i := range idx.places {
			if Distance(lat, lng, idx.places[i].lat, idx.places[i].lng) <= radius {
				n++
			}
		}
		if n != len(hits) {
			t.Fatalf("search(%v, %v, %v): %d hits, scan %d", lat, lng, radius, len(hits), n)
		}
	})
}
