package places

import (
	"fmt"
	"strconv"
)

// fixtures holds the real Google captures, relative to this package's directory
// (the repo root's ../shared/fixtures/places).
const fixtures = "../../../shared/fixtures/places"

func fmtSscan(s string, f *float64) (int, error) { return fmt.Sscan(s, f) }

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
