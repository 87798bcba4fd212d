package herd

import (
	"container/heap"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/herd-project/herd/codec"
)

// Record is what a server knows of one client: its latest AT line and the location in it.
// A Record belongs to its Table: read it, never change it. Its slices stay valid until the
// next Apply that replaces this client's record (the storage is reused). A record evicted
// (TableLimits.MaxRecords) or expired (TableLimits.TTL) leaves its Table for good: Live
// reports false from then on, its slices keep what they held, and a later record of the
// same client is a new *Record.
type Record struct {
	Client   []byte     // the client ID (aliases Line)
	Time     codec.Time // the client's time, to compare
	Line     []byte     // the whole AT line, without "\n"
	Lat, Lng []byte     // the two halves of the location, with their signs (for Places; alias Line)
	LatF     float64
	LngF     float64
	// Hash is the record's 64-bit hash (xxHash64 of Line, which holds the client, its time
	// and the rest): its share of its bucket's digest (Table.Digest).
	Hash uint64

	bucket int32  // BucketOf(Client), fixed for the client
	bidx   int32  // its index in its bucket's records
	hidx   int32  // its index in the table's age heap; -1 once it has left the table
	buf    []byte // holds Line (which Client, Lat and Lng alias), reused by a newer record
}

// Live reports whether r is still in its Table: false once it was evicted or expired.
// The goroutine that uses the Table.
func (r *Record) Live() bool { return r.hidx >= 0 }

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

// TableLimits bound a Table (SetLimits). The zero value bounds nothing.
type TableLimits struct {
	// MaxRecords is the most records held (limits.max_records; 0: no limit). A record of a
	// new client past it evicts the oldest record held: the one with the oldest client time
	// (at equal times, the one codec.Newer ranks lower), which every server that holds the
	// same records agrees on, whatever order they came in. A new client's record that is
	// not newer than every record held is not stored.
	MaxRecords int
	// MaxBytes bounds the bytes the records take (limits.max_record_bytes; 0: no limit),
	// each counted by RecordBytes. A record that would take the table past it evicts the
	// oldest records, as MaxRecords does; a record that would be the oldest itself is not
	// stored.
	MaxBytes int64
	// TTL is how old a client time may be (records.ttl; 0: any age). A record older than
	// TTL on Now's clock is not stored, is not returned by Get, and leaves the table at
	// the next Apply or Expire.
	TTL time.Duration
	// Now is the clock TTL is measured on (nil: time.Now). It is called by Apply, Get and
	// Expire, on the Table's goroutine.
	Now func() time.Time
	// Counts, if not nil, counts what the limits did.
	Counts *RecordCounts
}

// RecordCounts counts what a Table's limits did. The Table's goroutine adds to them; any
// goroutine may read them.
type RecordCounts struct {
	Evicted   atomic.Uint64 // records removed to make room for a new client (max_records)
	Expired   atomic.Uint64 // records removed because their client time passed the TTL
	TooOld    atomic.Uint64 // updates not stored: older than the TTL
	TableFull atomic.Uint64 // new clients not stored: older than every record held at max_records
}

// Table maps client IDs to their records. It is the only place where "newer wins" is decided:
// client IAMATs, neighbours' AT lines and resyncs all go through Apply.
//
// A Table also keeps a digest of its records, maintained by Apply: the records are spread over
// DigestBuckets buckets by client (BucketOf), and each bucket's digest is the sum (mod 2^64)
// of its records' hashes, so it does not depend on the order in which records came and
// changes with any record of the bucket. Two servers find what differs between their tables
// by comparing digests, then the buckets that differ (see the link's resync). A record that
// leaves the table (evicted or expired) leaves its bucket's digest with it.
//
// The records are also kept in a binary min-heap by client time, so that the oldest is found
// in O(1) and a record added, replaced or removed costs O(log n) (about 20 steps at a
// million records): that is what max_records evicts and what the TTL expires.
//
// A Table is not safe for concurrent use: a reactor server uses it from its loop only; other
// users (the goroutine baseline) guard it with a mutex. The zero value is not usable: NewTable.
type Table struct {
	m       map[string]*Record
	buckets []bucket
	heap    ageHeap // by age: heap[0] is the oldest record
	bytes   int64   // the records' RecordBytes, summed
	lim     TableLimits
	changes uint64 // records stored or removed, ever
}

// RecordOverhead is what RecordBytes counts for a record besides its text: its Record, its
// entry in the map, in its bucket and in the heap (measured: about 250 bytes).
const RecordOverhead = 256

// RecordBytes returns the bytes a record is counted for against TableLimits.MaxBytes: its
// AT line and a quarter more (the allocator rounds a buffer up to its size class, by up to
// 19% between 4 and 5 KiB), its client ID (the map's key holds a copy) and RecordOverhead:
// at least the heap it holds (measured: 371 bytes held for 402 counted with a 98-byte line,
// 5,372 for 5,723 with a line of 4,169). It depends on the record's text only, so servers
// that hold the same records count the same bytes. Any goroutine.
func RecordBytes(r *Record) int64 { return recordBytes(len(r.Line), len(r.Client)) }

func recordBytes(line, client int) int64 { return int64(line + line/4 + client + RecordOverhead) }

// bucket is one digest bucket: its records, in no particular order, and the sum of their
// hashes.
type bucket struct {
	recs []*Record
	sum  uint64
}

// NewTable returns an empty table without limits. It allocates the digest's buckets
// (DigestBuckets of 32 bytes). Any goroutine.
func NewTable() *Table {
	return &Table{m: make(map[string]*Record), buckets: make([]bucket, DigestBuckets)}
}

// SetLimits sets the table's limits. Records already held past them leave at the next
// Apply or Expire. The Table's goroutine.
func (t *Table) SetLimits(l TableLimits) {
	if l.Now == nil {
		l.Now = time.Now
	}
	t.lim = l
}

// Apply stores the record of m (an IAMAT or AT message) with its AT line (with or without a final
// "\n"; it is stored without) if it is newer than the one held for m.Client (codec.Newer), and
// reports whether it did. Only what Apply reports as changed is flooded. It keeps the digest
// of the record's bucket up to date.
//
// With limits (SetLimits), a record older than the TTL is not stored, and a new client's
// record at max_records evicts the oldest record, or is not stored if it is older than
// all of them; each Apply also removes up to two records that have expired, so that the
// expired leave at least as fast as records come.
//
// Apply copies what it keeps: m and line may be reused after it returns. Replacing a record
// reuses its storage, and looking up a known client does not allocate, so the steady state
// (known clients moving) allocates nothing; a client seen for the first time costs its key,
// its Record, its buffer and its place in its bucket and in the heap. Each change hashes the
// line (xxHash64, a few nanoseconds for an AT line).
func (t *Table) Apply(m *codec.Message, line []byte) (changed bool) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	var cutoff codec.Time
	if t.lim.TTL > 0 {
		cutoff = t.cutoff()
		if m.Time.Compare(cutoff) < 0 {
			if c := t.lim.Counts; c != nil {
				c.TooOld.Add(1)
			}
			return false
		}
		t.expire(cutoff, 2)
	}
	r, ok := t.m[string(m.Client)]
	if ok && !codec.Newer(m.Time, line, r.Time, r.Line) {
		return false
	}
	size := recordBytes(len(line), len(m.Client))
	grow := size
	if ok {
		grow -= RecordBytes(r)
	}
	for !ok && t.lim.MaxRecords > 0 && len(t.m) >= t.lim.MaxRecords || t.lim.MaxBytes > 0 && grow > 0 && t.bytes+grow > t.lim.MaxBytes {
		old := t.oldestBut(r)
		if old == nil || !codec.Newer(m.Time, line, old.Time, old.Line) {
			if c := t.lim.Counts; c != nil {
				c.TableFull.Add(1)
			}
			return false
		}
		t.remove(old)
		if c := t.lim.Counts; c != nil {
			c.Evicted.Add(1)
		}
	}
	t.bytes += grow
	if !ok {
		r = &Record{bucket: int32(BucketOf(m.Client)), hidx: -1}
		t.m[string(m.Client)] = r
		b := &t.buckets[r.bucket]
		r.bidx = int32(len(b.recs))
		b.recs = append(b.recs, r)
	}
	switch need := len(line); {
	case r.buf == nil:
		r.buf = make([]byte, 0, need) // most clients' lines keep their length
	case cap(r.buf) < need:
		r.buf = make([]byte, 0, need+need/4)
	}
	r.buf = append(r.buf[:0], line...)
	r.Line = r.buf
	r.Time = m.Time
	r.LatF, r.LngF = m.Lat, m.Lng
	var loc []byte
	r.Client, loc = clientLocation(r.Line)
	nl := len(m.LatText)
	r.Lat, r.Lng = loc[:nl:nl], loc[nl:]
	h := xxhash.Sum64(r.Line)
	t.buckets[r.bucket].sum += h - r.Hash // r.Hash is 0 for a new record
	r.Hash = h
	if r.hidx < 0 {
		heap.Push(&t.heap, r)
	} else {
		heap.Fix(&t.heap, int(r.hidx))
	}
	t.changes++
	return true
}

// cutoff returns the oldest client time the TTL lets the table hold.
func (t *Table) cutoff() codec.Time { return codec.FromTime(t.lim.Now().Add(-t.lim.TTL)) }

// clientLocation returns the client ID and the location of an AT line (its fields 3 and
// 4, split as codec.Field splits them), in one pass over the line. They alias line, with
// their capacity cut at their end.
func clientLocation(line []byte) (client, loc []byte) {
	i := 0
	for k := 0; k <= 4; k++ {
		for i < len(line) && codec.IsSpace(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !codec.IsSpace(line[i]) {
			i++
		}
		client, loc = loc, line[start:i:i]
	}
	return client, loc
}

// Expired reports whether r is older than the table's TTL (false without one). The
// Table's goroutine.
func (t *Table) Expired(r *Record) bool {
	return t.lim.TTL > 0 && r.Time.Compare(t.cutoff()) < 0
}

// Expire removes up to max records older than the TTL, oldest first, and returns how many
// it removed: 0 without a TTL. Each costs O(log n). A server calls it from a timer, a
// bounded batch at a time, so that records expire while no update comes and the loop is
// never held long. The Table's goroutine.
func (t *Table) Expire(max int) int {
	if t.lim.TTL <= 0 {
		return 0
	}
	return t.expire(t.cutoff(), max)
}

func (t *Table) expire(cutoff codec.Time, max int) int {
	n := 0
	for n < max && len(t.heap) > 0 && t.heap[0].Time.Compare(cutoff) < 0 {
		t.remove(t.heap[0])
		n++
	}
	if c := t.lim.Counts; c != nil && n > 0 {
		c.Expired.Add(uint64(n))
	}
	return n
}

// oldestBut returns the oldest record other than r (nil: none, or only r). O(1): the
// second oldest is a child of the heap's root.
func (t *Table) oldestBut(r *Record) *Record {
	h := t.heap
	switch {
	case len(h) == 0 || len(h) == 1 && h[0] == r:
		return nil
	case h[0] != r:
		return h[0]
	case len(h) == 2 || h.Less(1, 2):
		return h[1]
	}
	return h[2]
}

// remove takes r out of the map, its bucket (and its digest) and the heap, in O(log n).
func (t *Table) remove(r *Record) {
	delete(t.m, string(r.Client))
	t.bytes -= RecordBytes(r)
	b := &t.buckets[r.bucket]
	b.sum -= r.Hash
	last := b.recs[len(b.recs)-1]
	b.recs[r.bidx], last.bidx = last, r.bidx
	b.recs[len(b.recs)-1] = nil
	b.recs = b.recs[:len(b.recs)-1]
	heap.Remove(&t.heap, int(r.hidx))
	r.hidx = -1
	t.changes++
}

// ageHeap is a Table's records as a min-heap by age (container/heap): the oldest first, in
// the order of codec.Newer. Each record knows its index (hidx), so that a record replaced
// or removed is found in O(1) and moved in O(log n).
type ageHeap []*Record

func (h ageHeap) Len() int { return len(h) }

// Less reports whether record i is older than record j.
func (h ageHeap) Less(i, j int) bool {
	return codec.Newer(h[j].Time, h[j].Line, h[i].Time, h[i].Line)
}

func (h ageHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = int32(i), int32(j)
}

func (h *ageHeap) Push(x any) {
	r := x.(*Record)
	r.hidx = int32(len(*h))
	*h = append(*h, r)
}

func (h *ageHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}

// Get returns the record of client, or nil (also for a record older than the TTL, which
// has not left the table yet). The lookup does not allocate.
func (t *Table) Get(client []byte) *Record {
	r := t.m[string(client)]
	if r != nil && t.Expired(r) {
		return nil
	}
	return r
}

// Oldest returns the record with the oldest client time, the next to be evicted or to
// expire, or nil for an empty table. O(1).
func (t *Table) Oldest() *Record {
	if len(t.heap) == 0 {
		return nil
	}
	return t.heap[0]
}

// Len returns the number of clients known.
func (t *Table) Len() int { return len(t.m) }

// Bytes returns the bytes the records are counted for (the sum of their RecordBytes). O(1).
func (t *Table) Bytes() int64 { return t.bytes }

// Changes returns how many times a record was stored or removed since the table was made:
// a caller that saw the same number before knows that nothing changed since. O(1).
func (t *Table) Changes() uint64 { return t.changes }

// Range calls fn for every record, in no particular order, until fn returns false.
// fn must not call Apply or Expire.
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

// Bucket returns the records of bucket b (0 <= b < DigestBuckets), in no particular order.
// The slice is the Table's, valid until the next Apply or Expire: do not change it. A new
// client's record is appended; a record that leaves is replaced by the bucket's last, so
// an index into a slice taken before a change may now name another record. A caller that
// goes through a bucket across changes copies it (and skips the records no longer Live).
func (t *Table) Bucket(b int) []*Record { return t.buckets[b].recs }

// MaxNameLen is the longest server name a config may give (codec.MaxNameLen): it bounds
// what a server adds to a client's IAMAT to make its AT line (codec.ATOverhead).
const MaxNameLen = codec.MaxNameLen
