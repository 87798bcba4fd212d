package herd

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/herd-project/herd/codec"
)

// The resync of a link (see the package doc, "Resync"): when a connection becomes a link's,
// both sides send the digests of their non-empty buckets (Table.Digest), then, for each
// bucket whose digests differ, the records the other side cannot have (its bucket is empty)
// or the summaries of theirs (client, time, hash), and answer the other's summaries with the
// records it lacks or holds older. The lines, after the hello:
//
//	DIGEST <bucket>=<digest> ...        digests (hex) of non-empty buckets, several a line
//	DIGEST                              the end of the digests
//	HAVE <bucket> <client> <time> <hash> ...   summaries of one bucket's records
//	HAVE <bucket>                       the end of that bucket's summaries
//	AT ...                              a record (a resync's, or a flood)
//	DONE <records>                      all this side's resync is sent (records: how many)
//
// Everything goes out through the link's output in chunks (linkChunk), only while the
// link's write buffer is below its high mark (PauseWriting stops it, ResumeWriting resumes
// it), one chunk per loop pass, so that neither a big resync nor a slow neighbour stalls the
// loop or trips max_link_unsent.

// haveLineTarget is the length past which a HAVE line is ended.
const haveLineTarget = 1024

// maxHaveEntries bounds the summaries of one bucket held while they arrive (a bucket of a
// table of a million clients holds about 250): a neighbour that sends more loses its link.
const maxHaveEntries = 1 << 16

// digestPairLen is the longest "<bucket>=<digest> " of a DIGEST line.
const digestPairLen = 4 + 1 + 16 + 1

// resync is the state of the resync of one link connection. Loop-owned.
type resync struct {
	start time.Time
	plain bool // a plain neighbour: every record, no digests, no DONE

	mine, theirs       []uint64 // digests: ours as sent (taken at the start), theirs as received
	mineHas, theirsHas []bool   // which buckets are non-empty
	next               int      // the next bucket whose digest to send; past DigestBuckets once the end is sent
	theirsDone         bool     // the end of their digests came (and diff ran)

	sums              []int32 // buckets whose summaries to send (both sides hold records, digests differ)
	sumAt, sumRec     int
	whole             []int32 // buckets to send whole (theirs is empty)
	wholeAt, wholeRec int
	cur               []*Record // a copy of the bucket being sent whole
	curTaken          bool      // cur holds bucket whole[wholeAt]
	answer            []*Record // records they lack or hold older, found from their summaries

	expect     map[int32]bool // buckets whose summaries they still owe
	have       map[string]haveEntry
	haveBucket int32 // the bucket whose summaries are arriving, or -1

	sent, bytes       int // records and bytes sent
	sentDone, gotDone bool
	peerSent          uint64 // records they sent, from their DONE
	scheduled         bool   // a pump is queued
}

// haveEntry is a neighbour's summary of one record.
type haveEntry struct {
	t codec.Time
	h uint64
}

// startResync starts the resync of c, which has just become its link's connection.
func (c *linkConn) startResync() {
	s := c.s
	rs := &resync{start: s.loop.Time(), plain: c.l.plain, haveBucket: -1}
	if rs.plain {
		for b := range DigestBuckets {
			if len(s.table.Bucket(b)) > 0 {
				rs.whole = append(rs.whole, int32(b))
			}
		}
		rs.next, rs.theirsDone = DigestBuckets+1, true
	} else {
		rs.mine, rs.mineHas = make([]uint64, DigestBuckets), make([]bool, DigestBuckets)
		rs.theirs, rs.theirsHas = make([]uint64, DigestBuckets), make([]bool, DigestBuckets)
		for b := range DigestBuckets {
			rs.mine[b], rs.mineHas[b] = s.table.Digest(b), len(s.table.Bucket(b)) > 0
		}
	}
	c.rs = rs
	c.pump()
}

// pump writes the next chunk of the resync, if the link's write buffer has room, and queues
// the one after for the next loop pass. Loop only.
func (c *linkConn) pump() {
	rs, l, s := c.rs, c.l, c.s
	if rs == nil || c.state != connUp || c.paused {
		return
	}
	n := len(l.out)
	for len(l.out) < linkChunk && c.t.WriteBufferSize()+len(l.out) < s.linkHigh && c.step() {
	}
	rs.bytes += len(l.out) - n
	s.metrics.ResyncBytes.Add(uint64(len(l.out) - n))
	l.flush()
	switch {
	case c.state != connUp: // over max_link_unsent with floods: dropped
	case rs.finished():
		c.resyncDone()
	case !c.paused && rs.ready() && !rs.scheduled:
		rs.scheduled = true
		s.loop.CallSoonFunc(c.pumpFn)
	}
}

// pumpSoon is the queued pump.
func (c *linkConn) pumpSoon() {
	if c.rs != nil {
		c.rs.scheduled = false
		c.pump()
	}
}

// step appends the next piece of the resync to the link's output and reports whether there
// was one ready.
func (c *linkConn) step() bool {
	rs, l, s := c.rs, c.l, c.s
	switch {
	case rs.next <= DigestBuckets:
		l.out = rs.appendDigests(l.out, min(128, (s.linkLineMax-len("DIGEST\n"))/digestPairLen))
	case !rs.theirsDone:
		return false
	case rs.sumAt < len(rs.sums):
		l.out = rs.appendHave(l.out, s.table, s.linkLineMax)
	case rs.wholeAt < len(rs.whole):
		if !rs.curTaken {
			// A copy: a record that leaves the table meanwhile moves another within the
			// bucket, which an index into the live bucket would then skip.
			rs.cur = append(rs.cur[:0], s.table.Bucket(int(rs.whole[rs.wholeAt]))...)
			rs.curTaken = true
		}
		if rs.wholeRec < len(rs.cur) {
			l.out = c.appendRecord(l.out, rs.cur[rs.wholeRec])
			rs.wholeRec++
		}
		if rs.wholeRec >= len(rs.cur) {
			clear(rs.cur)
			rs.wholeAt, rs.wholeRec, rs.curTaken = rs.wholeAt+1, 0, false
		}
	case len(rs.answer) > 0:
		l.out = c.appendRecord(l.out, rs.answer[0])
		rs.answer[0] = nil
		rs.answer = rs.answer[1:]
	case !rs.plain && len(rs.expect) == 0 && !rs.sentDone:
		l.out = append(l.out, "DONE "...)
		l.out = strconv.AppendInt(l.out, int64(rs.sent), 10)
		l.out = append(l.out, '\n')
		rs.sentDone = true
	default:
		return false
	}
	return true
}

// ready reports whether step has something to send now.
func (rs *resync) ready() bool {
	if rs.next <= DigestBuckets {
		return true
	}
	return rs.theirsDone && (rs.sumAt < len(rs.sums) || rs.wholeAt < len(rs.whole) || len(rs.answer) > 0 ||
		!rs.plain && len(rs.expect) == 0 && !rs.sentDone)
}

// finished reports whether both sides are done: a plain resync once everything is sent.
func (rs *resync) finished() bool {
	if rs.plain {
		return !rs.ready()
	}
	return rs.sentDone && rs.gotDone
}

// resyncDone logs the end of c's resync and lets go of its state.
func (c *linkConn) resyncDone() {
	rs, s := c.rs, c.s
	c.rs = nil
	s.metrics.ResyncsDone.Add(1)
	s.log.Info("resync done", "peer", c.l.name, "sent", rs.sent, "received", rs.peerSent, "bytes", rs.bytes,
		"took", s.loop.Time().Sub(rs.start))
}

// appendRecord appends a record's AT line as part of the resync, unless it has left the
// table (evicted or expired since the resync found it) or is older than records.ttl: an
// expired record is never sent, so it cannot come back.
func (c *linkConn) appendRecord(dst []byte, r *Record) []byte {
	if !r.Live() || c.s.table.Expired(r) {
		return dst
	}
	c.rs.sent++
	c.s.metrics.ResyncRecords.Add(1)
	c.l.m.ResyncSent.Add(1)
	dst = append(dst, r.Line...)
	return append(dst, '\n')
}

// appendDigests appends a DIGEST line of at most per pairs, or the end line once every
// non-empty bucket's digest is out.
func (rs *resync) appendDigests(dst []byte, per int) []byte {
	dst = append(dst, "DIGEST"...)
	n := 0
	for rs.next < DigestBuckets && n < per {
		b := rs.next
		rs.next++
		if !rs.mineHas[b] {
			continue
		}
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(b), 10)
		dst = append(dst, '=')
		dst = strconv.AppendUint(dst, rs.mine[b], 16)
		n++
	}
	if n == 0 {
		rs.next = DigestBuckets + 1
	}
	return append(dst, '\n')
}

// appendHave appends a HAVE line of the current summary bucket, or its end line. A record
// whose summary alone would make a line over max (a client ID near the line limit, from a
// neighbour that allows longer lines) is left out: the neighbour then sends its own.
func (rs *resync) appendHave(dst []byte, t *Table, max int) []byte {
	b := rs.sums[rs.sumAt]
	recs := t.Bucket(int(b))
	start := len(dst)
	dst = append(dst, "HAVE "...)
	dst = strconv.AppendInt(dst, int64(b), 10)
	head := len(dst)
	for rs.sumRec < len(recs) && len(dst)-start < haveLineTarget {
		r := recs[rs.sumRec]
		tm := codec.Field(r.Line, 5)
		if len(dst)-start+3+len(r.Client)+len(tm)+16 > max {
			if len(dst) > head {
				break
			}
			rs.sumRec++
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, r.Client...)
		dst = append(dst, ' ')
		dst = append(dst, tm...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, r.Hash, 16)
		rs.sumRec++
	}
	if len(dst) == head {
		rs.sumAt, rs.sumRec = rs.sumAt+1, 0 // the end line
	}
	return append(dst, '\n')
}

// diff compares the two digests, once both are complete, and decides what to send.
func (rs *resync) diff() {
	rs.expect = make(map[int32]bool)
	for b := range DigestBuckets {
		mh, th := rs.mineHas[b], rs.theirsHas[b]
		switch {
		case !mh && !th, mh && th && rs.mine[b] == rs.theirs[b]:
		case !th:
			rs.whole = append(rs.whole, int32(b))
		case !mh: // they send theirs whole
		default:
			rs.sums = append(rs.sums, int32(b))
			rs.expect[int32(b)] = true
		}
	}
	rs.theirs, rs.theirsHas = nil, nil
}

// resyncLine handles a DIGEST, HAVE or DONE line; an error ends the link.
func (c *linkConn) resyncLine(line []byte) error {
	rs := c.rs
	if rs == nil || rs.plain {
		return fmt.Errorf("herd: resync line after the resync: %.64q", line)
	}
	f, rest := nextField(line)
	var err error
	switch string(f) {
	case "DIGEST":
		err = rs.digestLine(rest)
	case "HAVE":
		err = c.haveLine(rest)
	case "DONE":
		n, perr := strconv.ParseUint(string(codec.Field(rest, 0)), 10, 63)
		if perr != nil || rs.gotDone {
			return fmt.Errorf("herd: bad DONE line %.64q", line)
		}
		rs.gotDone, rs.peerSent = true, n
	}
	return err
}

var errDigest = errors.New("herd: bad DIGEST line")

// digestLine takes the pairs of a DIGEST line (after "DIGEST"), or its end.
func (rs *resync) digestLine(rest []byte) error {
	if rs.theirsDone {
		return errDigest
	}
	n := 0
	for {
		var f []byte
		f, rest = nextField(rest)
		if f == nil {
			break
		}
		n++
		i := bytes.IndexByte(f, '=')
		b, err1 := strconv.ParseUint(string(f[:max(i, 0)]), 10, 16)
		d, err2 := strconv.ParseUint(string(f[i+1:]), 16, 64)
		if i < 0 || err1 != nil || err2 != nil || b >= DigestBuckets {
			return errDigest
		}
		rs.theirs[b], rs.theirsHas[b] = d, true
	}
	if n == 0 {
		rs.theirsDone = true
		rs.diff()
	}
	return nil
}

// haveLine takes the summaries of a HAVE line (after "HAVE"), or the end of a bucket's, which
// it answers with the records the neighbour lacks or holds older.
func (c *linkConn) haveLine(rest []byte) error {
	rs := c.rs
	f, rest := nextField(rest)
	b, err := strconv.ParseUint(string(f), 10, 16)
	if err != nil || !rs.expect[int32(b)] || rs.haveBucket >= 0 && rs.haveBucket != int32(b) {
		return fmt.Errorf("herd: HAVE line for bucket %q, which is not one that differs and is due", f)
	}
	rs.haveBucket = int32(b)
	if rs.have == nil {
		rs.have = make(map[string]haveEntry)
	}
	n := 0
	for {
		client, r1 := nextField(rest)
		if client == nil {
			break
		}
		tm, r2 := nextField(r1)
		h, r3 := nextField(r2)
		t, err1 := codec.ParseTime(tm)
		hv, err2 := strconv.ParseUint(string(h), 16, 64)
		if h == nil || err1 != nil || err2 != nil {
			return fmt.Errorf("herd: bad summary in a HAVE line of bucket %d", b)
		}
		rs.have[string(client)] = haveEntry{t, hv}
		if len(rs.have) > maxHaveEntries {
			return fmt.Errorf("herd: more than %d summaries for bucket %d", maxHaveEntries, b)
		}
		rest = r3
		n++
	}
	if n > 0 {
		return nil
	}
	for _, r := range c.s.table.Bucket(int(b)) {
		e, ok := rs.have[string(r.Client)]
		if !ok || e.t.Compare(r.Time) < 0 || e.t == r.Time && e.h != r.Hash {
			rs.answer = append(rs.answer, r)
		}
	}
	clear(rs.have)
	delete(rs.expect, int32(b))
	rs.haveBucket = -1
	return nil
}

// nextField returns the first field of b and what follows it (fields as codec splits them).
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && codec.IsSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return nil, nil
	}
	j := i
	for j < len(b) && !codec.IsSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}
