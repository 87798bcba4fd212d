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
	r.Client = codec.Field(r.Line, 3) // the client ID of an AT line
	return true
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

// MaxNameLen is the longest server name a config may give (codec.MaxNameLen): it bounds
// what a server adds to a client's IAMAT to make its AT line (codec.ATOverhead).
const MaxNameLen = codec.MaxNameLen
