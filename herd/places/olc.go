package places

import "math"

const olcAlphabet = "23456789CFGHJMPQRVWX"

// plusCode returns the 10-digit Open Location Code of (lat, lng), e.g. "86HJQ934+Q7", as
// Google puts in plus_code.global_code. Latitude is clipped to [-90, 90] and longitude
// normalised to [-180, 180), as the reference implementation does.
func plusCode(lat, lng float64) string {
	if lat > 90 {
		lat = 90
	} else if lat < -90 {
		lat = -90
	}
	lng = math.Mod(lng+180, 360)
	if lng < 0 {
		lng += 360
	}
	// Integers at the full 15-digit precision first (as the reference code does), then down to
	// 10 digits (1/8000 degree): this avoids float rounding at cell edges.
	latVal := int64(math.Round(lat*25e6)) + 90*25e6
	lngVal := int64(math.Round(lng * 8192000))
	latVal /= 3125
	lngVal /= 1024
	if latVal >= 180*8000 {
		latVal = 180*8000 - 1
	}
	if lngVal >= 360*8000 {
		lngVal -= 360 * 8000
	}
	var code [11]byte
	for i := 4; i >= 0; i-- {
		code[2*i] = olcAlphabet[latVal%20]
		code[2*i+1] = olcAlphabet[lngVal%20]
		latVal /= 20
		lngVal /= 20
	}
	copy(code[9:], code[8:10])
	code[8] = '+'
	return string(code[:])
}
