package herd

import (
	"github.com/herd-project/herd/codec"
)

// Record is what a server knows of one client: its latest AT line and the location in it.
// A Record belongs to its Table: read it, never change it. Its slices stay valid until the
// next Apply that replaces this client's record (the storage is reused).
type Record struct {
	Client   []byte     // the client ID (aliases Line)
	Time     codec.Time // the client's time, to compare
	Line     []byte     // the whole AT line, without "\n"
	Lat, Lng []byte     // the two halves of the location, with their signs (for Places)
	LatF     float64
	LngF     float64

	buf []byte // holds Line then Lat and Lng, reused when a newer record replaces this one
}

// Table maps client IDs to their records. It is the only place where "newer wins" is decided:
// client IAMATs, neighbours' AT lines and resyncs all go through Apply.
//
// A Table is not safe for concurrent use: a reactor server uses it from its loop only; other
// users (the goroutine baseline) guard it with a mutex. The zero value is not usable: NewTable.
type Table struct {
	m map[string]*Record
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{m: make(map[string]*Record)} }

// Apply stores the record of m (an IAMAT or AT message) with its AT line (with or without a final
// "\n"; it is stored without) if it is newer than the one held for m.Client (codec.Newer), and
// reports whether it did. Only what Apply reports as changed is flooded.
//
// Apply copies what it keeps: m and line may be reused after it returns. Replacing a record
// reuses its storage, and looking up a known client does not allocate, so the steady state
// (known clients moving) allocates nothing; a client seen for the first time costs its key,
// its Record and its buffer.
func (t *Table) Apply(m *codec.Message, line []byte) (changed bool) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	r, ok := t.m[string(m.Client)]
	if ok && !codec.Newer(m.Time, line, r.Time, r.Line) {
		return false
	}
	if !ok {
		r = &Record{}
		t.m[string(m.Client)] = r
	}
	need := len(line) + len(m.LatText) + len(m.LngText)
	if cap(r.buf) < need {
		r.buf = make([]byte, 0, need+need/4)
	}
	b := append(r.buf[:0], line...)
	b = append(b, m.LatText...)
	b = append(b, m.LngText...)
	r.buf = b
	n := len(line)
	r.Line = b[:n:n]
	r.Lat = b[n : n+len(m.LatText) : n+len(m.LatText)]
	r.Lng = b[n+len(m.LatText):]
	r.Time = m.Time
	r.LatF, r.LngF = m.Lat, m.Lng
	r.Client = clientField(r.Line)
	return true
}

// clientField finds the client ID in an AT line: its fourth field.
func clientField(line []byte) []byte {
	field, i := 0, 0
	for i < len(line) {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
		if field == 3 {
			return line[start:i:i]
		}
		field++
	}
	return nil
}

// appendFields appends the fields of line to dst, separated by one space: the canonical form
// of a line (an AT line from another implementation may use tabs or several spaces).
func appendFields(dst, line []byte) []byte {
	i := 0
	for i < len(line) {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
		if start < i {
			if len(dst) > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, line[start:i]...)
		}
	}
	return dst
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n'
}

// Get returns the record of client, or nil. The lookup does not allocate.
func (t *Table) Get(client []byte) *Record { return t.m[string(client)] }

// Len returns the number of clients known.
func (t *Table) Len() int { return len(t.m) }

// Range calls fn for every record, in no particular order, until fn returns false.
// fn must not call Apply.
func (t *Table) Range(fn func(r *Record) bool) {
	for _, r := range t.m {
		if !fn(r) {
			return
		}
	}
}

// MaxNameLen is the longest server name a config may give: it bounds what the server adds to a
// client's IAMAT to make its AT line (see ATOverhead).
const MaxNameLen = 64

// ATOverhead is how much longer than max_line an AT line may be: an IAMAT of max_line bytes
// becomes an AT line of "AT " + name (at most MaxNameLen) + " " + skew (at most 30 bytes) + " "
// and its last three fields, which neighbours must accept.
const ATOverhead = 128

// scanLine frames one line at the start of buf: at most max bytes, or max+ATOverhead for an AT
// line (one whose first field is "AT"), as codec.ScanLine does for one limit. Which limit
// applies is decided by the first bytes of the line, so the result does not depend on how the
// stream was cut.
func scanLine(buf []byte, max int) (line []byte, n int, err error) {
	line, n, err = codec.ScanLine(buf, max)
	if err == nil || !atPrefix(buf) {
		return line, n, err
	}
	return codec.ScanLine(buf, max+ATOverhead)
}

// atPrefix reports whether b starts (after white space) with the field "AT".
func atPrefix(b []byte) bool {
	i := 0
	for i < len(b) && isSpace(b[i]) && b[i] != '\n' {
		i++
	}
	return len(b) > i+2 && b[i] == 'A' && b[i+1] == 'T' && isSpace(b[i+2]) && b[i+2] != '\n'
}
