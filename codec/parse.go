package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
	"time"
	"unsafe"
)

// Kind is the command of a line.
type Kind uint8

// The kinds of line.
const (
	Invalid Kind = iota
	IAMAT
	WHATSAT
	AT
)

// String returns the command name ("IAMAT", "WHATSAT", "AT") or "Invalid".
func (k Kind) String() string {
	switch k {
	case IAMAT:
		return "IAMAT"
	case WHATSAT:
		return "WHATSAT"
	case AT:
		return "AT"
	}
	return "Invalid"
}

// MaxTimeDigits bounds the integer part of a time: at most 18 significant digits (leading
// zeros do not count), so |Sec| < 1e18 and differences of two times cannot overflow int64.
const MaxTimeDigits = 18

// Time is a POSIX time kept exactly, normalised so 0 <= Nsec < 1e9 (-0.5 is
// {-1, 500000000}). The zero value is the epoch.
type Time struct {
	Sec  int64
	Nsec int32
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Time) Compare(u Time) int {
	switch {
	case t.Sec < u.Sec:
		return -1
	case t.Sec > u.Sec:
		return 1
	case t.Nsec < u.Nsec:
		return -1
	case t.Nsec > u.Nsec:
		return 1
	}
	return 0
}

// FromTime returns t's POSIX time to the nanosecond.
func FromTime(t time.Time) Time {
	return Time{Sec: t.Unix(), Nsec: int32(t.Nanosecond())}
}

// ParseError says why a line is not a valid command. It wraps ErrInvalid. ParseLine
// returns shared, immutable *ParseError values, so an invalid line costs no allocation.
type ParseError struct {
	Reason string
}

func (e *ParseError) Error() string { return "codec: invalid command: " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *ParseError) Unwrap() error { return ErrInvalid }

// ErrInvalid is wrapped by every error of ParseLine and ParseTime. The reply to any such
// error is AppendInvalid(dst, line).
var ErrInvalid = errors.New("codec: invalid command")

var (
	errEmpty      = &ParseError{"empty line"}
	errNewline    = &ParseError{"newline inside the line"}
	errCommand    = &ParseError{"unknown command"}
	errFields     = &ParseError{"wrong number of fields"}
	errLocation   = &ParseError{"bad location (want ISO 6709 like +34.068930-118.445127)"}
	errLatRange   = &ParseError{"latitude out of [-90, 90]"}
	errLngRange   = &ParseError{"longitude out of [-180, 180]"}
	errTime       = &ParseError{"bad time (want [+-]S[.F] with 1 to 9 fraction digits)"}
	errTimeRange  = &ParseError{"time has more than 18 integer digits"}
	errRadius     = &ParseError{"bad radius (want digits with an optional fraction)"}
	errRadiusZero = &ParseError{"radius must be greater than 0"}
	errRadiusMax  = &ParseError{"radius must be at most 50 km"}
	errBound      = &ParseError{"bad bound (want an integer 1 to 20)"}
	errSkew       = &ParseError{"bad time difference (want a signed decimal)"}
	errPySkew     = &ParseError{"bad time difference (want a decimal or a Python float like +1.1e-05)"}
)

// Dialect says which forms of an AT line ParseLineIn accepts. IAMAT and WHATSAT lines are
// the same in every dialect.
type Dialect uint8

const (
	// Strict is this project's own protocol, ParseLine's: an AT line has exactly six
	// fields, and its time difference is a decimal [+-]?D+(.D+)?.
	Strict Dialect = iota
	// Python is what servers of the seed's design send (package herd calls them plain
	// peers). The time difference may be written in any form Python prints a float in,
	// [+-]?D+(.D+)?([eE][+-]?D+)? ("+1.1e-05", "0.5", "-3.0", "1e-05",
	// "+0.001401662826538086"); and an AT line may carry fields after its sixth (the
	// names some Python herds append, of the server that flooded it or of every server
	// it passed through, to stop loops), which are checked for nothing, left out of the
	// record (AppendATLine) and reported by Message.Extra.
	Python
)

// Message is a parsed line. Every []byte field aliases the line given to ParseLine, so it
// is valid as long as that line is. The zero value is an Invalid message.
type Message struct {
	Kind     Kind
	Server   []byte // AT: the server that accepted the IAMAT
	Skew     []byte // AT: the time-difference field as sent
	Client   []byte // IAMAT, WHATSAT, AT
	Location []byte // IAMAT, AT: the ISO 6709 field as sent
	LatText  []byte // IAMAT, AT: the latitude half of Location, with its sign
	LngText  []byte // IAMAT, AT: the longitude half of Location, with its sign
	Lat, Lng float64
	TimeText []byte // IAMAT, AT: the client's time as sent
	Time     Time
	Radius   []byte  // WHATSAT: kilometres, as sent
	RadiusKm float64 // WHATSAT
	Bound    int     // WHATSAT
	// Extra is set for an AT line parsed in the Python dialect that had fields after its
	// sixth; they are in no field of the Message.
	Extra bool
}

// spaces marks the field separators of SPEC §2: space, \t, \r, \v, \f.
var spaces = [256]bool{' ': true, '\t': true, '\r': true, '\v': true, '\f': true}

// IsSpace reports whether c separates fields (SPEC §2): space, \t, \r, \v or \f. A "\n" is
// not white space but the end of a line: framing removes it, and ParseLine rejects a line
// that still holds one. This is the protocol's one definition of white space.
func IsSpace(c byte) bool { return spaces[c] }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// maxFields is one more than the most any command has, to detect extra fields.
const maxFields = 7

// fields splits line at runs of white space into at most maxFields fields.
func fields(line []byte, f *[maxFields][]byte) (int, error) {
	n := 0
	i := 0
	for i < len(line) {
		for i < len(line) && IsSpace(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		j := fieldEnd(line, i)
		if j < len(line) && line[j] == '\n' {
			return 0, errNewline
		}
		if n == maxFields {
			return n + 1, nil
		}
		f[n] = line[i:j]
		n++
		i = j
	}
	return n, nil
}

// fieldEnd returns the index of the first white space or "\n" at or after i, or len(line).
// A field's bytes are all above 0x20 but for rare control bytes, so it tests eight at a
// time for one at or below 0x20, and only such a byte is looked at alone: a line is split
// in a third of the instructions of a test per byte.
func fieldEnd(line []byte, i int) int {
	const below21 = 0x2121212121212121
	for i < len(line) {
		if i+8 <= len(line) {
			w := binary.LittleEndian.Uint64(line[i:])
			// The lowest high bit set is the first byte below 0x21 (bytes of 0x80 or
			// more are masked by &^ w; a borrow only sets bits above a byte that set one).
			m := (w - below21) &^ w & highs8
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else if line[i] > ' ' {
			i++
			continue
		}
		if c := line[i]; spaces[c] || c == '\n' {
			return i
		}
		i++ // another control byte: part of the field
	}
	return i
}

// Field returns field n (0-based) of line, with fields separated by runs of white space
// (IsSpace) as ParseLine splits them, or nil if line has fewer fields. The field aliases
// line, with its capacity cut at its end so that appending to it cannot touch the rest of
// line. Field(atLine, 3) is the client ID of an AT line. It does not allocate and is safe
// to call from any goroutine.
func Field(line []byte, n int) []byte {
	i := 0
	for k := 0; ; k++ {
		for i < len(line) && IsSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return nil
		}
		start := i
		for i = fieldEnd(line, i); i < len(line) && line[i] == '\n'; i = fieldEnd(line, i+1) {
			// A "\n" is part of a field here, not its end.
		}
		if k == n {
			return line[start:i:i]
		}
	}
}

// AppendFields appends the fields of line to dst joined by single spaces, with no white
// space before the first or after the last: the canonical form of a line. Another
// implementation's AT line may use tabs or runs of spaces; a server stores and floods it in
// this form, so that every server compares (codec.Newer) and serves the same bytes. A line
// with no field appends nothing. It does not allocate when dst has room and is safe to
// call from any goroutine.
func AppendFields(dst, line []byte) []byte {
	first := true
	i := 0
	for i < len(line) {
		for i < len(line) && IsSpace(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !IsSpace(line[i]) {
			i++
		}
		if start < i {
			if !first {
				dst = append(dst, ' ')
			}
			first = false
			dst = append(dst, line[start:i]...)
		}
	}
	return dst
}

// ParseLine parses one line (without its "\n"). Fields are separated by runs of space,
// \t, \r, \v and \f; white space at either end is ignored; command names are
// case-sensitive. It accepts exactly:
//
//	IAMAT <client> <location> <time>
//	WHATSAT <client> <radius> <bound>
//	AT <server> <skew> <client> <location> <time>
//
// where
//   - location is ISO 6709 decimal degrees [+-]D{1,2}(.D+)?[+-]D{1,3}(.D+)? and nothing
//     else, latitude in [-90, 90] and longitude in [-180, 180] (checked on the text, exactly);
//   - time is [+-]?D+(.D{1,9})? with at most MaxTimeDigits significant integer digits;
//   - radius is D+(.D+)?, with no sign or exponent ("1e1", ".5", "5." and "+5" are
//     invalid; leading zeros are allowed), and 0 < radius <= 50;
//   - bound is D+ with no sign (leading zeros are allowed), 1 <= bound <= 20;
//   - skew (AT) is any decimal [+-]?D+(.D+)?, as this project writes it or a peer
//     of another implementation might;
//   - a client or server name is any field (no white space, no "\n").
//
// The returned error is a *ParseError wrapping ErrInvalid. ParseLine does not allocate.
// It is safe to call from any goroutine.
func ParseLine(line []byte) (Message, error) { return ParseLineIn(line, Strict) }

// ParseLineIn is ParseLine in dialect d, which decides the forms of an AT line it
// accepts (see Dialect). It does not allocate and is safe to call from any goroutine.
func ParseLineIn(line []byte, d Dialect) (Message, error) {
	var f [maxFields][]byte
	n, err := fields(line, &f)
	if err != nil {
		return Message{}, err
	}
	if n == 0 {
		return Message{}, errEmpty
	}
	args := f[1:min(n, maxFields)] // n is one more than maxFields when there were too many
	var m Message
	switch bstr(f[0]) {
	case "IAMAT":
		m.Kind, err = IAMAT, parseIAMAT(args, &m)
	case "WHATSAT":
		m.Kind, err = WHATSAT, parseWHATSAT(args, &m)
	case "AT":
		m.Kind, err = AT, parseAT(args, n, d, &m)
		if err == nil && n > maxFields && bytes.IndexByte(line, '\n') >= 0 {
			err = errNewline // fields stopped splitting at the extra fields
		}
	default:
		return Message{}, errCommand
	}
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// parseIAMAT parses the fields after IAMAT: client location time.
func parseIAMAT(f [][]byte, m *Message) error {
	if len(f) != 3 {
		return errFields
	}
	return parseUpdate(f, m)
}

// parseWHATSAT parses the fields after WHATSAT: client radius bound.
func parseWHATSAT(f [][]byte, m *Message) (err error) {
	if len(f) != 3 {
		return errFields
	}
	m.Client = f[0]
	if m.RadiusKm, err = parseRadius(f[1]); err != nil {
		return err
	}
	m.Radius = f[1]
	m.Bound, err = parseBound(f[2])
	return err
}

// parseAT parses the fields after AT: server skew client location time, and in the Python
// dialect any fields after them (n is the line's field count from fields, f the first
// fields after AT).
func parseAT(f [][]byte, n int, d Dialect, m *Message) error {
	switch {
	case n == 6:
	case n > 6 && d == Python:
		m.Extra = true
		f = f[:5]
	default:
		return errFields
	}
	m.Server = f[0]
	switch {
	case d == Strict && !isDecimal(f[1], true):
		return errSkew
	case d == Python && !isPyFloat(f[1]):
		return errPySkew
	}
	m.Skew = f[1]
	return parseUpdate(f[2:], m)
}

// isPyFloat reports whether b is a finite float as Python prints one, with an optional
// sign: [+-]?D+(.D+)?([eE][+-]?D+)?. Python's repr never writes "5." or ".5".
func isPyFloat(b []byte) bool {
	e := len(b)
	for i, c := range b {
		if c == 'e' || c == 'E' {
			e = i
			break
		}
	}
	if !isDecimal(b[:e], true) {
		return false
	}
	if e == len(b) {
		return true
	}
	exp := b[e+1:]
	if len(exp) > 0 && (exp[0] == '+' || exp[0] == '-') {
		exp = exp[1:]
	}
	return len(exp) > 0 && digits(exp, 0) == len(exp)
}

// parseUpdate fills m's Client, location and Time from the fields "client location time"
// that end an IAMAT and an AT line alike.
func parseUpdate(f [][]byte, m *Message) (err error) {
	m.Client = f[0]
	if err := parseLocation(f[1], m); err != nil {
		return err
	}
	if m.Time, err = ParseTime(f[2]); err != nil {
		return err
	}
	m.TimeText = f[2]
	return nil
}

// bstr views b as a string without copying; the string must not outlive the call it is
// passed to, and b must not change meanwhile.
func bstr(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// isDecimal reports whether b is D+(.D+)?, with an optional sign if signed.
func isDecimal(b []byte, signed bool) bool {
	i := 0
	if signed && len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		i++
	}
	j := digits(b, i)
	if j == i {
		return false
	}
	if j == len(b) {
		return true
	}
	if b[j] != '.' {
		return false
	}
	k := digits(b, j+1)
	return k > j+1 && k == len(b)
}

// digits returns the index of the first non-digit of b at or after i.
func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// coord parses [+-]D{1,maxInt}(.D+)? at b[i:] and returns its end, its integer value,
// whether its fraction is all zeros and its value as the nearest float64 (as
// decimalFloat), in one pass; ok is false when the syntax is wrong.
func coord(b []byte, i, maxInt int) (end, ip int, zeroFrac bool, f float64, ok bool) {
	if i >= len(b) || (b[i] != '+' && b[i] != '-') {
		return 0, 0, false, 0, false
	}
	start := i
	i++
	var mant uint64
	nd := 0 // significant digits
	j := i
	for ; j < len(b) && isDigit(b[j]); j++ {
		c := b[j] - '0'
		ip = ip*10 + int(c) // wrong past maxInt digits, which are refused below
		if nd > 0 || c != 0 {
			nd++
		}
		mant = mant*10 + uint64(c)
	}
	if j == i || j-i > maxInt {
		return 0, 0, false, 0, false
	}
	zeroFrac = true
	frac := 0
	if j < len(b) && b[j] == '.' {
		k := j + 1
		for ; k < len(b) && isDigit(b[k]); k++ {
			c := b[k] - '0'
			if c != 0 {
				zeroFrac = false
			}
			if nd > 0 || c != 0 {
				nd++
			}
			mant = mant*10 + uint64(c)
		}
		if k == j+1 {
			return 0, 0, false, 0, false
		}
		frac = k - j - 1
		j = k
	}
	if nd > 15 || frac >= len(pow10) {
		f, _ = strconv.ParseFloat(bstr(b[start:j]), 64)
	} else if f = float64(mant) / pow10[frac]; b[start] == '-' {
		f = -f
	}
	return j, ip, zeroFrac, f, true
}

func parseLocation(b []byte, m *Message) error {
	latEnd, lat, latZero, latF, ok := coord(b, 0, 2)
	if !ok {
		return errLocation
	}
	lngEnd, lng, lngZero, lngF, ok := coord(b, latEnd, 3)
	if !ok || lngEnd != len(b) {
		return errLocation
	}
	if lat > 90 || lat == 90 && !latZero {
		return errLatRange
	}
	if lng > 180 || lng == 180 && !lngZero {
		return errLngRange
	}
	m.Location = b
	m.LatText = b[:latEnd]
	m.LngText = b[latEnd:]
	m.Lat, m.Lng = latF, lngF
	return nil
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// decimalFloat converts a checked decimal [+-]?D+(.D+)? to the nearest float64. With at
// most 15 significant digits the mantissa and the power of ten are exact, so one
// (correctly rounded) division gives the nearest float64; longer inputs go to strconv.
func decimalFloat(b []byte) float64 {
	neg := false
	i := 0
	if b[0] == '+' || b[0] == '-' {
		neg = b[0] == '-'
		i++
	}
	var mant uint64
	nd, frac := 0, 0
	seenDot := false
	for ; i < len(b); i++ {
		c := b[i]
		if c == '.' {
			seenDot = true
			continue
		}
		if nd > 0 || c != '0' {
			nd++
		}
		mant = mant*10 + uint64(c-'0')
		if seenDot {
			frac++
		}
		if nd > 15 || frac >= len(pow10) {
			f, _ := strconv.ParseFloat(bstr(b), 64)
			return f
		}
	}
	f := float64(mant) / pow10[frac]
	if neg {
		f = -f
	}
	return f
}

// ParseTime parses a POSIX time [+-]?D+(.D{1,9})? exactly, with at most MaxTimeDigits
// significant integer digits. The error is a *ParseError wrapping ErrInvalid.
func ParseTime(b []byte) (Time, error) {
	i := 0
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		i++
	}
	var sec int64
	sig := 0 // significant integer digits
	j := i
	for ; j < len(b) && isDigit(b[j]); j++ {
		c := b[j] - '0'
		if sig > 0 || c != 0 {
			sig++
		}
		sec = sec*10 + int64(c) // wrong past MaxTimeDigits digits, which are refused below
	}
	if j == i {
		return Time{}, errTime
	}
	if sig > MaxTimeDigits {
		return Time{}, errTimeRange
	}
	var nsec int64
	if j < len(b) {
		if b[j] != '.' {
			return Time{}, errTime
		}
		k := digits(b, j+1)
		if k == j+1 || k != len(b) || k-j-1 > 9 {
			return Time{}, errTime
		}
		for _, c := range b[j+1 : k] {
			nsec = nsec*10 + int64(c-'0')
		}
		for range 9 - (k - j - 1) {
			nsec *= 10
		}
	}
	if neg {
		sec = -sec
		if nsec > 0 {
			sec--
			nsec = 1e9 - nsec
		}
	}
	return Time{Sec: sec, Nsec: int32(nsec)}, nil
}

// parseRadius checks D+(.D+)? with 0 < value <= 50, exactly on the text.
func parseRadius(b []byte) (float64, error) {
	if !isDecimal(b, false) {
		return 0, errRadius
	}
	j := digits(b, 0)
	i := 0
	for i < j-1 && b[i] == '0' {
		i++
	}
	ip := b[i:j]
	nonzero := false
	for _, c := range b {
		if c >= '1' && c <= '9' {
			nonzero = true
			break
		}
	}
	if !nonzero {
		return 0, errRadiusZero
	}
	fracZero := true
	for _, c := range b[j:] {
		if c >= '1' && c <= '9' {
			fracZero = false
		}
	}
	if len(ip) > 2 || len(ip) == 2 && (ip[0] > '5' || ip[0] == '5' && (ip[1] > '0' || !fracZero)) {
		return 0, errRadiusMax
	}
	return decimalFloat(b), nil
}

// parseBound checks D+ with 1 <= value <= 20.
func parseBound(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errBound
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, errBound
		}
		v = v*10 + int(c-'0')
		if v > MaxBound {
			return 0, errBound
		}
	}
	if v < 1 {
		return 0, errBound
	}
	return v, nil
}
