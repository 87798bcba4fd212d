package codec

import (
	"bytes"
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
