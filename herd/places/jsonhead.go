package places

import (
	"encoding/binary"

	"github.com/herd-project/herd/codec"
)

// head is what a legacy body says at its top level: the raw tokens (quotes and escapes
// included) of the first "status" and "error_message" members, when they are strings.
type head struct {
	status, errorMessage []byte // nil: absent or not a string
}

// scanHead validates body as one JSON value (RFC 8259, white space around it allowed; the
// same rules as codec's scanner) and, when it is an object, finds its top-level "status" and
// "error_message" members (names compared after unescaping; the first of each counts).
// ok is false when body is not valid JSON or not an object. One pass, no allocation: it
// costs a fraction of json.Unmarshal, which the full 20-result page would otherwise take.
func scanHead(body []byte) (h head, ok bool) {
	s := headScanner{b: body}
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return head{}, false
	}
	if i = s.object(i, &h); i < 0 {
		return head{}, false
	}
	if skipWS(body, i) != len(body) {
		return head{}, false
	}
	return h, true
}

// text returns the unescaped string of a raw string token found by scanHead.
func text(raw []byte) string {
	if len(raw) < 2 {
		return ""
	}
	if !hasByte(raw[1:len(raw)-1], '\\') {
		return string(raw[1 : len(raw)-1])
	}
	v, err := codec.ParseJSON(raw)
	if s, ok := v.(string); ok && err == nil {
		return s
	}
	return ""
}

// rawIs reports whether the raw string token raw is the string want (want has no
// characters that JSON must escape). Escaped tokens are unescaped first.
func rawIs(raw []byte, want string) bool {
	if len(raw) < 2 {
		return false
	}
	if !hasByte(raw, '\\') {
		return string(raw[1:len(raw)-1]) == want
	}
	return text(raw) == want
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// maxHeadDepth bounds nesting, as encoding/json and codec do.
const maxHeadDepth = 10000

type headScanner struct {
	b     []byte
	depth int
}

// plain marks the bytes a string may hold without a closer look: not '"', not '\\',
// not a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	spaces8 = 0x2020202020202020
	ones8   = 0x0101010101010101
	highs8  = 0x8080808080808080
)

// plain8 reports whether none of the eight bytes in x is '"', '\\' or below 0x20
// (the classic "has a zero byte" test on x, x^'"' and x^'\\').
func plain8(x uint64) bool {
	ctl := (x - ones8*0x20) &^ x
	quote := x ^ (ones8 * '"')
	bs := x ^ (ones8 * '\\')
	return (ctl|(quote-ones8)&^quote|(bs-ones8)&^bs)&highs8 == 0
}

// ws marks JSON white space.
var ws = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipWS(b []byte, i int) int {
	// Google's layout indents with runs of spaces: take them eight at a time.
	for i < len(b) {
		if len(b)-i >= 8 && binary.LittleEndian.Uint64(b[i:]) == spaces8 {
			i += 8
			continue
		}
		if !ws[b[i]] {
			break
		}
		i++
	}
	return i
}

// value scans the value at b[i] (no leading white space) and returns its end, or -1.
func (s *headScanner) value(i int) int {
	b := s.b
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		return s.str(i)
	case '{':
		return s.object(i, nil)
	case '[':
		return s.array(i)
	case 't':
		return lit(b, i, "true")
	case 'f':
		return lit(b, i, "false")
	case 'n':
		return lit(b, i, "null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return number(b, i)
		}
	}
	return -1
}

func lit(b []byte, i int, l string) int {
	if len(b)-i < len(l) || string(b[i:i+len(l)]) != l {
		return -1
	}
	return i + len(l)
}

func digitsAt(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func number(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digitsAt(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digitsAt(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsAt(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str scans the string at b[i] == '"' and returns the index after its closing quote, or -1.
func (s *headScanner) str(i int) int {
	b := s.b
	i++
	for {
		for len(b)-i >= 8 && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 || !isHexDigit(b[i+1]) || !isHexDigit(b[i+2]) || !isHexDigit(b[i+3]) || !isHexDigit(b[i+4]) {
					return -1
				}
				i += 5
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

// object scans the object at b[i] == '{'. h is not nil for the top-level object, whose
// "status" and "error_message" members it records.
func (s *headScanner) object(i int, h *head) int {
	if s.depth++; s.depth > maxHeadDepth {
		return -1
	}
	b := s.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		s.depth--
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		k := i
		if i = s.str(i); i < 0 {
			return -1
		}
		key := b[k:i]
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		v := skipWS(b, i+1)
		if i = s.value(v); i < 0 {
			return -1
		}
		if h != nil && b[v] == '"' {
			switch {
			case h.status == nil && rawIs(key, "status"):
				h.status = b[v:i]
			case h.errorMessage == nil && rawIs(key, "error_message"):
				h.errorMessage = b[v:i]
			}
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			s.depth--
			return i + 1
		default:
			return -1
		}
	}
}

func (s *headScanner) array(i int) int {
	if s.depth++; s.depth > maxHeadDepth {
		return -1
	}
	b := s.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		s.depth--
		return i + 1
	}
	for {
		if i = s.value(i); i < 0 {
			return -1
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			s.depth--
			return i + 1
		default:
			return -1
		}
	}
}
