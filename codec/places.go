package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
)

// ErrNoResults reports a Places body that is valid JSON but not an object with exactly one
// top-level "results" member holding an array.
var ErrNoResults = errors.New("codec: places body has no top-level \"results\" array")

// ErrJSON reports input that is not valid JSON (RFC 8259, one value, white space around
// it allowed). Errors about bad JSON wrap it.
var ErrJSON = errors.New("codec: invalid JSON")

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// JSONError says where JSON input went wrong. It wraps ErrJSON.
type JSONError struct {
	Offset int    // byte offset of the problem
	Reason string // what was expected
}

func (e *JSONError) Error() string {
	return "codec: invalid JSON at offset " + itoa(e.Offset) + ": " + e.Reason
}

// Unwrap returns ErrJSON.
func (e *JSONError) Unwrap() error { return ErrJSON }

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// scanner validates JSON in one pass. Indexing (ix set), it also records what a Places body's
// index holds: where its top-level "results" array opens and closes, how many elements it
// has and where they end, and its top-level "status" and "error_message" values.
type scanner struct {
	b     []byte
	err   *JSONError
	depth int

	// ix is what indexing found (held here, not pointed to, so that it stays on the stack).
	ix       PlacesIndex
	indexing bool
	keep     int // AppendPlacesBody's bound: ix.keepEnd is the end of element keep-1

	// member, when set, is called for each member of the top-level object (ScanObject).
	member func(name, value []byte)
}

// MaxBound is the largest WHATSAT bound (ParseLine checks 1 <= bound <= MaxBound): a
// PlacesIndex records where the first MaxBound elements of "results" end.
const MaxBound = 20

// PlacesIndex is what one scan of a Places body found (IndexPlaces): whether it is valid JSON
// and an object, its top-level "status" and "error_message" values, and where its "results"
// array and the array's elements begin and end, so that the body can be cut to any bound
// (AppendCut) with no second scan. It holds offsets, not slices: it serves any copy of the
// body it was made from, and no other body. The zero value is the index of input that is not
// JSON.
type PlacesIndex struct {
	valid, object bool
	status, msg   [2]int // the first top-level "status" and "error_message" values; [0 0]: none
	found         int    // top-level "results" members
	arr           bool   // the last of them holds an array
	open, close   int    // its "[" and "]"
	n             int    // its elements
	ends          [MaxBound]int
	keepEnd       int // the end of element keep-1 (AppendPlacesBody's bound)
	lastEnd       int // the end of element n-1
}

func (s *scanner) fail(i int, reason string) int {
	if s.err == nil {
		s.err = &JSONError{Offset: i, Reason: reason}
	}
	return -1
}

// Words of eight equal bytes, for the scans below that test eight bytes at a time: Google's
// layout indents every line with runs of spaces (a third of a body's bytes), and its strings
// are mostly plain text, so both are crossed a word at a time, about five times faster than
// a byte at a time.
const (
	ones8   = 0x0101010101010101
	highs8  = 0x8080808080808080
	spaces8 = 0x2020202020202020
	quotes8 = 0x2222222222222222
	slash8  = 0x5c5c5c5c5c5c5c5c
)

// zeroBytes returns a word whose lowest set bit is the high bit of the first (lowest) zero
// byte of w, or 0 if w has none. Bits above that one may be wrong (a borrow), so only the
// lowest is meaningful.
func zeroBytes(w uint64) uint64 { return (w - ones8) &^ w & highs8 }

// skipSpace returns the index of the first byte at or after i that is not JSON white space.
// Most calls find none, or the one space around Google's ":", so those return at once; a run
// (a new line and its indentation) is crossed a word at a time.
func skipSpace(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	if i+1 < len(b) && b[i] == ' ' && b[i+1] > ' ' {
		return i + 1
	}
	return skipSpaceRun(b, i)
}

func skipSpaceRun(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:]) ^ spaces8 // zero where a space is
			if x != 0 {
				i += bits.TrailingZeros64(x) >> 3 // past the leading spaces
				break
			}
			i += 8
		}
	}
	return i
}

// plainString returns the index of the first byte at or after i that a string scan must look
// at: a quote, a backslash or a control byte (or len(b)).
func plainString(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// Bytes below 0x20 (a control byte), and zero bytes of w^quotes8 and w^slash8. A
		// byte of 0x80 or more is never flagged by the first term (^w has its high bit
		// clear), and a false flag can only sit above a true one, so the lowest is right.
		m := (w-spaces8)&^w&highs8 | zeroBytes(w^quotes8) | zeroBytes(w^slash8)
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}

// value scans one value at b[i:] (no leading white space) and returns its end, or -1.
// top marks the root value, whose members are searched for "results".
func (s *scanner) value(i int, top bool) int {
	b := s.b
	if i >= len(b) {
		return s.fail(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '{':
		return s.object(i, top)
	case c == '[':
		return s.array(i, nil)
	case c == '"':
		return s.str(i)
	case c == '-' || isDigit(c):
		return s.number(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	}
	return s.fail(i, "expected a value")
}

func (s *scanner) literal(i int, lit string) int {
	if len(s.b)-i < len(lit) || string(s.b[i:i+len(lit)]) != lit {
		return s.fail(i, "expected "+lit)
	}
	return i + len(lit)
}

func (s *scanner) number(i int) int {
	b := s.b
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return s.fail(i, "expected a digit")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return s.fail(j, "expected a digit after \".\"")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return s.fail(j, "expected an exponent digit")
		}
		i = j
	}
	return i
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str scans a string at b[i] == '"' and returns the index after its closing quote.
func (s *scanner) str(i int) int {
	b := s.b
	for i++; ; i++ {
		if i = plainString(b, i); i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) {
				return s.fail(i, "unexpected end of input in a string")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return s.fail(i, "bad \\u escape")
				}
				i += 4
			default:
				return s.fail(i, "bad escape")
			}
		case c < 0x20:
			return s.fail(i, "control character in a string")
		}
	}
	return s.fail(i, "unexpected end of input in a string")
}

func (s *scanner) object(i int, top bool) int {
	if s.depth++; s.depth > maxDepth {
		return s.fail(i, "nesting too deep")
	}
	defer func() { s.depth-- }()
	b := s.b
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return s.fail(i, "expected a member name")
		}
		k := i
		if i = s.str(i); i < 0 {
			return -1
		}
		nameEnd := i
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return s.fail(i, "expected \":\"")
		}
		i = skipSpace(b, i+1)
		v := i
		switch ix := &s.ix; {
		case top && s.indexing && keyIs(b[k+1:nameEnd-1], "results"):
			ix.found++
			ix.arr = i < len(b) && b[i] == '['
			if ix.arr {
				i = s.array(i, ix)
			} else {
				i = s.value(i, false)
			}
		default:
			i = s.value(i, false)
			switch {
			case i < 0 || !top:
			case s.member != nil:
				s.member(b[k:nameEnd], b[v:i])
			case !s.indexing:
			case ix.status[1] == 0 && keyIs(b[k+1:nameEnd-1], "status"):
				ix.status = [2]int{v, i}
			case ix.msg[1] == 0 && keyIs(b[k+1:nameEnd-1], "error_message"):
				ix.msg = [2]int{v, i}
			}
		}
		if i < 0 {
			return -1
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		return s.fail(i, "expected \",\" or \"}\"")
	}
}

// array scans an array at b[i] == '['. With cut set, it records the results array in it.
func (s *scanner) array(i int, cut *PlacesIndex) int {
	if s.depth++; s.depth > maxDepth {
		return s.fail(i, "nesting too deep")
	}
	defer func() { s.depth-- }()
	b := s.b
	if cut != nil {
		cut.open, cut.n, cut.keepEnd, cut.lastEnd = i, 0, i+1, i+1
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		if cut != nil {
			cut.close = i
		}
		return i + 1
	}
	for {
		if i = s.value(i, false); i < 0 {
			return -1
		}
		if cut != nil {
			if cut.n < MaxBound {
				cut.ends[cut.n] = i
			}
			cut.n++
			cut.lastEnd = i
			if cut.n <= s.keep {
				cut.keepEnd = i
			}
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			if cut != nil {
				cut.close = i
			}
			return i + 1
		}
		return s.fail(i, "expected \",\" or \"]\"")
	}
}

// keyIs reports whether the raw (still escaped) JSON string content raw decodes to want,
// an ASCII string.
func keyIs(raw []byte, want string) bool {
	j := 0
	for i := 0; i < len(raw); j++ {
		if j >= len(want) {
			return false
		}
		c := raw[i]
		i++
		if c == '\\' {
			switch e := raw[i]; e {
			case 'u':
				r := 0
				for _, h := range raw[i+1 : i+5] {
					r = r<<4 | int(unhex(h))
				}
				i += 5
				if r >= 0x80 {
					return false
				}
				c = byte(r)
			case '"', '\\', '/':
				c = e
				i++
			default:
				return false // \b \f \n \r \t: not in an ASCII key we look for
			}
		}
		if c != want[j] {
			return false
		}
	}
	return j == len(want)
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// scan validates all of b as one JSON value with white space around it.
func (s *scanner) scan() error {
	i := skipSpace(s.b, 0)
	if i = s.value(i, true); i >= 0 {
		if i = skipSpace(s.b, i); i < len(s.b) {
			s.fail(i, "data after the value")
		}
	}
	if s.err != nil {
		return s.err
	}
	return nil
}

// ScanObject validates body as one JSON object (white space around it allowed) in one pass,
// calling member for each of its top-level members in order, with the raw tokens of the name
// (quotes and escapes included) and of the value; both alias body and stay valid as long as
// body does. Nested members are validated, not reported. It returns an error wrapping ErrJSON
// when body is not valid JSON or not an object. It does not allocate beyond what member does.
// Safe to call from any goroutine.
func ScanObject(body []byte, member func(name, value []byte)) error {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return &JSONError{Offset: i, Reason: "not an object"}
	}
	s := scanner{b: body, member: member}
	return s.scan()
}

// AppendPlacesBody appends body with its top-level "results" array cut to at most bound
// elements, then with every run of two or more "\n" squeezed to one and trailing "\n"s
// removed (SPEC §4). It does not add the reply's final "\n\n".
//
// The elements kept are Google's bytes: one scan finds the array and its element spans,
// and the dropped elements go with the commas before them, so the array closes in the
// body's own style ("[\n   ...\n   ]", "[ a, b ]", or "[]" when nothing is kept).
// Nothing is re-serialized. bound < 0 counts as 0.
//
// It returns an error (and dst unchanged) when body is not valid JSON (ErrJSON), or is not an
// object with exactly one top-level "results" member holding an array (ErrNoResults); the
// member name is compared after unescaping. The caller then sends an UNKNOWN_ERROR body
// (AppendErrorBody); or, for a valid body without "results" (ErrNoResults) that it wants
// to pass through as Google sent it, AppendSqueezed(dst, body). It does not allocate when
// dst has room, and does not keep body. Safe to call from any goroutine.
//
// To cut one body to several bounds, or to read its "status" too, index it once
// (IndexPlaces) and cut with the index (PlacesIndex.AppendCut).
func AppendPlacesBody(dst, body []byte, bound int) ([]byte, error) {
	s := scanner{b: body, indexing: true, keep: max(bound, 0)}
	if err := s.scan(); err != nil {
		return dst, err
	}
	s.ix.valid = true
	return s.ix.appendCut(dst, body, s.keep, s.ix.keepEnd)
}

// IndexPlaces scans body once, as AppendPlacesBody does, and returns what it found: the
// index then cuts body to any bound from 0 to MaxBound (AppendCut) and gives its top-level
// "status" and "error_message" (Status, ErrorMessage) without scanning it again. The error
// is AppendPlacesBody's ErrJSON, for body that is not valid JSON; a valid body that is not
// an object, or has no single "results" array, has an index whose AppendCut reports
// ErrNoResults. It does not allocate. Safe to call from any goroutine.
func IndexPlaces(body []byte) (PlacesIndex, error) {
	s := scanner{b: body, indexing: true}
	if err := s.scan(); err != nil {
		return PlacesIndex{}, err
	}
	s.ix.valid, s.ix.object = true, body[skipSpace(body, 0)] == '{'
	return s.ix, nil
}

// Object reports whether the body indexed is a JSON object. Any goroutine.
func (ix *PlacesIndex) Object() bool { return ix.object }

// Status returns the raw token (quotes and escapes included) of the value of the body's
// first top-level "status" member, whatever its type, or nil if it has none; body must be
// the body indexed (or a copy), and the token aliases it. Any goroutine.
func (ix *PlacesIndex) Status(body []byte) []byte { return span(body, ix.status) }

// ErrorMessage is Status for the first top-level "error_message" member. Any goroutine.
func (ix *PlacesIndex) ErrorMessage(body []byte) []byte { return span(body, ix.msg) }

func span(body []byte, s [2]int) []byte {
	if s[1] == 0 {
		return nil
	}
	return body[s[0]:s[1]:s[1]]
}

// AppendCut is AppendPlacesBody(dst, body, bound) for the body indexed (or a copy), made from
// the index without scanning body again: it only copies body's bytes, squeezing newlines. A
// bound above MaxBound counts as MaxBound. Any goroutine.
func (ix *PlacesIndex) AppendCut(dst, body []byte, bound int) ([]byte, error) {
	bound = min(max(bound, 0), MaxBound)
	keepEnd := 0
	if bound > 0 && bound <= ix.n {
		keepEnd = ix.ends[bound-1]
	}
	return ix.appendCut(dst, body, bound, keepEnd)
}

// CutSize returns the most bytes AppendCut appends for bound (newlines squeezed may make it
// fewer), so that a caller can size its buffer once. Any goroutine.
func (ix *PlacesIndex) CutSize(body []byte, bound int) int {
	bound = min(max(bound, 0), MaxBound)
	switch {
	case !ix.valid || ix.found != 1 || !ix.arr || ix.n <= bound:
		return len(body)
	case bound == 0:
		return ix.open + 1 + len(body) - ix.close
	}
	return ix.ends[bound-1] + len(body) - ix.lastEnd
}

// appendCut cuts body to keep elements, keepEnd being the end of element keep-1.
func (ix *PlacesIndex) appendCut(dst, body []byte, keep, keepEnd int) ([]byte, error) {
	switch {
	case !ix.valid:
		return dst, &JSONError{Offset: 0, Reason: "not indexed"}
	case ix.found != 1 || !ix.arr:
		return dst, ErrNoResults
	case ix.n <= keep:
		return appendSqueezed(dst, body, true), nil
	case keep == 0:
		dst = appendSqueezed(dst, body[:ix.open+1], false)
		return appendSqueezed(dst, body[ix.close:], true), nil
	}
	dst = appendSqueezed(dst, body[:keepEnd], false)
	return appendSqueezed(dst, body[ix.lastEnd:], true), nil
}

// AppendSqueezed appends b with every run of two or more "\n" squeezed to one and
// trailing "\n"s removed, as SPEC §4 asks of a WHATSAT reply's JSON; AppendPlacesBody
// does this itself. It does not allocate when dst has room. Safe to call from any goroutine.
func AppendSqueezed(dst, b []byte) []byte {
	return appendSqueezed(dst, b, true)
}

// appendSqueezed appends b with runs of "\n" squeezed to one (and, if last, trailing
// "\n"s removed). Cuts never fall inside a newline run: they are right after a value's
// last byte or its "[", and right before a "]" or after the last element, so a run can
// only meet a cut from one side and squeezing the pieces equals squeezing the whole.
func appendSqueezed(dst, b []byte, last bool) []byte {
	if last {
		for len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		}
	}
	for len(b) > 0 {
		i := indexNN(b)
		if i < 0 {
			return append(dst, b...)
		}
		dst = append(dst, b[:i+1]...)
		j := i + 1
		for j < len(b) && b[j] == '\n' {
			j++
		}
		b = b[j:]
	}
	return dst
}

// indexNN returns the index of the first "\n\n" in b, or -1. (bytes.Index searches for
// the pair with vector instructions: ten times fewer than a loop over every byte.)
func indexNN(b []byte) int { return bytes.Index(b, nn) }

var nn = []byte("\n\n")
