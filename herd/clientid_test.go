package herd

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// ValidClientID finds a control byte or a byte that is not UTF-8 wherever it falls in a
// long ID, as a check of every rune would.
func TestValidClientIDEveryOffset(t *testing.T) {
	want := func(id string) bool {
		if id == "" || len(id) > MaxClientIDLen || !utf8.ValidString(id) {
			return false
		}
		return !strings.ContainsFunc(id, unicode.IsControl)
	}
	for _, bad := range []string{"\x00", "\x1f", "\x7f", "\x80", "\xff", "\u0085", "\u009f", "é", "\u00a0", " ", "~", "\xe5"} {
		for n := 1; n <= 20; n++ {
			for pos := range n {
				id := strings.Repeat("a", pos) + bad + strings.Repeat("b", n-pos-1)
				if got := ValidClientID([]byte(id)); got != want(id) {
					t.Errorf("ValidClientID(%q) = %v, want %v", id, got, want(id))
				}
			}
		}
	}
}
