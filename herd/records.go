package herd

import (
	"github.com/cespare/xxhash/v2"
	"github.com/herd-project/herd/codec"
)

// Record is what a server knows of one client: its latest AT line and the location in it.
// A Record belongs to its Table: read it, never change it. Its slices stay valid until the
// next Apply that replaces this client's record (the storage is reused); the *Record itself
// stays the client's for the Table's life (records are replaced in place, never removed).
type Record struct {
	Client   []byte     // the client ID (aliases Line)
	Time     codec.Time // the client's time, to compare
	Line     []byte     // the whole AT line, without "\n"
	Lat, Lng []byte     // the two halves of the location, with their signs (for Places)
	LatF     float64
	LngF     float64
	// Hash is the record's 64-bit hash (xxHash64 of Line, which holds the client, its time
	// and the rest): its share of its bucket's digest (Table.Digest).
	Hash uint64

	bucket int32  // BucketOf(Client), fixed for the client
	buf    []byte // holds Line then Lat and Lng, reused when a newer record replaces this one
}

// DigestBuckets is how many buckets a Table's digest has. Clients are spread over them by a
// hash of their ID (BucketOf); each bucket's digest is the sum of its records' hashes. It is
// part of the link protocol (version codec.LinkVersion): two servers compare their digests
// bucket by bucket, so both must use the same number. 4096 keeps the digest of a table small
// (at most 4096 numbers, about 90 KiB on the wire) while a bucket of a table of a million
// clients holds about 250 of them, so that one differing record costs the summaries of 250.
const DigestBuckets = 4096

// BucketOf returns the digest bucket of a client ID: the top 12 bits of its xxHash64. Any
// goroutine.
func BucketOf(client []byte) int { return int(xxhash.Sum64(client) >> (64 - 12)) }

// Table maps client IDs to their records. It is the only place where "newer wins" is decided:
// client IAMATs, neighbours' AT lines and resyncs all go through Apply.
//
// A Table also keeps a digest of its records, maintained by Apply: the records are spread over
// DigestBuckets buckets by client (BucketOf), and each bucket's digest is the sum (mod 2^64)
// of its records' hashes, so it does not depend on the order in which records came and
// changes with any record of the bucket. Two servers find what differs between their tables
// by comparing digests, then the buckets that differ (see the link's resync).
//
// A Table is not safe for concurrent use: a reactor server uses it from its loop only; other
// users (the goroutine baseline) guard it with a mutex. The zero value is not usable: NewTable.
type Table struct {
	m       map[string]*Record
	buckets []bucket
}

// bucket is one digest bucket: its records, in the order their clients were first seen, and
// the sum of their hashes.
type bucket struct {
	recs []*Record
	sum  uint64
}

// NewTable returns an empty table. It allocates the digest's buckets (DigestBuckets of 32
// bytes). Any goroutine.
func NewTable() *Table {
	return &Table{m: make(map[string]*Record), buckets: make([]bucket, DigestBuckets)}
}

// Apply stores the record of m (an IAMAT or AT message) with its AT line (with or without a final
// "\n"; it is stored without) if it is newer than the one held for m.Client (codec.Newer), and
// reports whether it did. Only what Apply reports as changed is flooded. It keeps the digest
// of the record's bucket up to date.
//
// Apply copies what it keeps: m and line may be reused after it returns. Replacing a record
// reuses its storage, and looking up a known client does not allocate, so the steady state
// (known clients moving) allocates nothing; a client seen for the first time costs its key,
// its Record, its buffer and its place in its bucket. Each change hashes the line (xxHash64,
// a few nanoseconds for an AT line).
func (t *Table) Apply(m *codec.Message, line []byte) (changed bool) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	r, ok := t.m[string(m.Client)]
	if ok && !codec.Newer(m.Time, line, r.Time, r.Line) {
		return false
	}
	if !ok {
		r = &Record{bucket: int32(BucketOf(m.Client))}
		t.m[string(m.Client)] = r
		b := &t.buckets[r.bucket]
		b.recs = append(b.recs, r)
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
	h := xxhash.Sum64(r.Line)
	t.buckets[r.bucket].sum += h - r.Hash // r.Hash is 0 for a new record
	r.Hash = h
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

// Digest returns the digest of bucket b (0 <= b < DigestBuckets): the sum of the hashes of its
// records, 0 when it has none. O(1).
func (t *Table) Digest(b int) uint64 { return t.buckets[b].sum }

// Bucket returns the records of bucket b (0 <= b < DigestBuckets), in the order their clients
// were first seen. The slice is the Table's: do not change it. Apply only appends to it (a new
// client), so an index into it stays valid; a slice taken before an Apply may miss the records
// added since.
func (t *Table) Bucket(b int) []*Record { return t.buckets[b].recs }

// MaxNameLen is the longest server name a config may give (codec.MaxNameLen): it bounds
// what a server adds to a client's IAMAT to make its AT line (codec.ATOverhead).
const MaxNameLen = codec.MaxNameLen
