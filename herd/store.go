package herd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/herd-project/herd/codec"
)

// Snapshots ([store] path, off by default): each server keeps its records in one file,
// <path>/<Name>.snap, so that a herd stopped whole, or a server that comes back while its
// neighbours are down, starts with what it held. The file is text, one record a line, each
// with its own checksum, so that a damaged or torn file loses only the records it damaged:
//
//	HERD-SNAPSHOT 1 <server name>
//	<CRC-32C of the AT line, 8 hex digits> <AT line>
//	...
//	END <records>
//
// A snapshot is written to <Name>.snap.tmp, fsynced, renamed over <Name>.snap, and the
// folder fsynced, so that the file at its name is always a whole snapshot (the last one
// written) or, after a crash of the machine in the middle of the rename, the one before.
//
// The loop never waits for the disk: once a second, if records changed since the last
// snapshot began, it copies the AT lines into buffers of snapshotChunk bytes, whole digest
// buckets at a time (one bucket is copied within one pass, so no record is skipped or seen
// twice while records come and go), and hands each to the server's snapshot goroutine, which
// checksums and writes them. Two buffers go back and forth: the copy runs no faster than the
// disk takes it, and holds at most two buffers. A record that changes while a snapshot is
// copied is in the next one.

// snapshotInterval is the most often a snapshot begins: a crash loses what changed in the
// last interval, and what changed while the last snapshot was written.
const snapshotInterval = time.Second

// snapshotChunk is the size of the buffers the loop fills with AT lines for the writer.
const snapshotChunk = 256 << 10

// expireBatch is the most records that expire in one loop pass; more wait for the next.
const expireBatch = 4096

// snapshotMagic begins a snapshot file, with its version.
const snapshotMagic = "HERD-SNAPSHOT 1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotPath returns the path of the snapshot of the server called name in dir.
func snapshotPath(dir, name string) string { return filepath.Join(dir, name+".snap") }

// snapJob is what the loop hands the snapshot goroutine.
type snapJob struct {
	begin bool   // a new snapshot starts
	lines []byte // AT lines, each ending in "\n"
	end   bool   // the snapshot is complete
	final bool   // the server has stopped: write the table, which is no longer the loop's
	done  chan error
}

// snapshotter is a server's snapshot state. The fields above the line are the loop's.
type snapshotter struct {
	dir  string
	name string

	free       [][]byte // buffers back from the writer
	running    bool     // a snapshot is being copied or written
	bucket     int      // the next bucket to copy
	count      int      // records copied so far
	seen       uint64   // Table.Changes when the running (or last) snapshot began
	failing    bool     // the last write failed: the next tick tries again (logged once)
	pumpQueued bool

	// Shared with the goroutine.
	jobs chan snapJob
	gone chan struct{} // closed when the goroutine has ended
}

// loadSnapshot reads the server's snapshot, if there is one, into its table, before the
// loop runs: every record is checked as a neighbour's AT line is (client ID, clock skew)
// and applied (the TTL and the table's bounds apply). A damaged record (its checksum does
// not match, or it is not an AT line) is skipped, and a file without its end line is
// reported as torn: the server starts with what it could read, logs what it could not
// (WARN) and counts it (Metrics.SnapshotBadLines, SnapshotTruncated); its neighbours' resyncs
// make up the rest.
func (s *Server) loadSnapshot() error {
	dir := s.cfg.Store.Path
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("herd: %s: store: %w", s.name, err)
	}
	path := snapshotPath(dir, s.name)
	os.Remove(path + ".tmp") // a snapshot a crash left half written
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		s.log.Info("no snapshot: starting empty", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("herd: %s: store: %w", s.name, err)
	}
	defer f.Close()
	start := time.Now()
	core := NewCore(s.name) // not the server's: loading counts no lines
	core.SetMaxClockSkew(s.lim.MaxClockSkew)
	st := readSnapshot(f, s.linkLineMax, func(line []byte) bool {
		r := core.Handle(line, codec.FromTime(s.now()), FromLink)
		if r.Action != Store {
			return false
		}
		s.table.Apply(r.Msg, r.Line)
		return true
	})
	s.noteTable()
	s.metrics.SnapshotLoaded.Store(int64(st.records))
	s.metrics.SnapshotBadLines.Store(uint64(st.bad))
	s.metrics.SnapshotTruncated.Store(!st.ended)
	attrs := []any{"path", path, "records", st.records, "held", s.table.Len(), "took", time.Since(start)}
	switch {
	case st.err != nil:
		s.log.Warn("snapshot unreadable past a point: starting with what was read", append(attrs, "bad_lines", st.bad, "err", st.err)...)
	case st.bad > 0 || !st.ended:
		s.log.Warn("snapshot damaged: starting with what could be read", append(attrs, "bad_lines", st.bad, "torn", !st.ended)...)
	default:
		s.log.Info("snapshot loaded", attrs...)
	}
	return nil
}

// snapshotRead is what readSnapshot found.
type snapshotRead struct {
	records int   // records read whole and taken
	bad     int   // lines that were not whole records, or records refused
	ended   bool  // the end line came, with the count of records written
	err     error // a read error that stopped the reading
}

// readSnapshot reads a snapshot from r and calls take for each record whose checksum
// matches; take reports whether it took it. A line longer than maxLine (plus its checksum)
// is damaged, and skipped to its end. Any goroutine.
func readSnapshot(r io.Reader, maxLine int, take func(line []byte) bool) snapshotRead {
	var st snapshotRead
	br := bufio.NewReaderSize(r, 64<<10)
	max := maxLine + 9
	var buf []byte
	first, want := true, -1
	for {
		line, err := readLine(br, &buf, max)
		if err == errLongLine {
			st.bad++
			continue
		}
		if err != nil {
			if err != io.EOF {
				st.err = err
			}
			if len(line) > 0 {
				st.bad++ // a torn last line
			}
			break
		}
		switch {
		case first && string(line) == snapshotMagic || first && bytes.HasPrefix(line, []byte(snapshotMagic+" ")):
		case bytes.HasPrefix(line, []byte("END ")) && want < 0:
			n, perr := strconv.Atoi(string(line[4:]))
			if perr != nil {
				st.bad++
				break
			}
			want = n
		case len(line) > 9 && line[8] == ' ' && checksumOK(line[:8], line[9:]):
			if take(line[9:]) {
				st.records++
			} else {
				st.bad++
			}
		default:
			st.bad++
		}
		first = false
	}
	st.ended = want >= 0
	return st
}

var errLongLine = errors.New("herd: snapshot line too long")

// readLine returns the next line of br without its "\n", in *buf (reused), or errLongLine
// for a line longer than max (skipped to its end), or io.EOF with what followed the last
// "\n" (a torn line, or nothing).
func readLine(br *bufio.Reader, buf *[]byte, max int) ([]byte, error) {
	*buf = (*buf)[:0]
	long := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !long {
			if len(*buf)+len(chunk) > max+1 {
				long = true
				*buf = (*buf)[:0]
			} else {
				*buf = append(*buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			if long {
				return nil, errLongLine
			}
			return *buf, err
		case long:
			return nil, errLongLine
		}
		return (*buf)[:len(*buf)-1], nil
	}
}

// checksumOK reports whether hex is the CRC-32C of line, in 8 lower-case hex digits.
func checksumOK(hex, line []byte) bool {
	var want [8]byte
	appendChecksum(want[:0], line)
	return bytes.Equal(hex, want[:])
}

// appendChecksum appends the CRC-32C of line in 8 hex digits.
func appendChecksum(dst, line []byte) []byte {
	const digits = "0123456789abcdef"
	c := crc32.Checksum(line, castagnoli)
	for i := 28; i >= 0; i -= 4 {
		dst = append(dst, digits[c>>uint(i)&0xf])
	}
	return dst
}

// newSnapshotter returns the snapshot state of the server called name, whose table has
// made changes changes (what was loaded is on disk already). Its goroutine
// (snapshotWriter) is started once the loop runs.
func newSnapshotter(dir, name string, changes uint64) *snapshotter {
	return &snapshotter{dir: dir, name: name, seen: changes, jobs: make(chan snapJob, 4), gone: make(chan struct{}),
		free: [][]byte{make([]byte, 0, snapshotChunk), make([]byte, 0, snapshotChunk)}}
}

// housekeep runs on the loop once a second (and sooner while a batch of expired records
// is left): it expires records past records.ttl, a batch at a time, and begins a snapshot
// if records changed since the last one began and none is under way.
func (s *Server) housekeep() {
	more := false
	if s.table.Expire(expireBatch) > 0 {
		s.noteTable()
		more = s.table.Oldest() != nil && s.table.Expired(s.table.Oldest())
	}
	if sn := s.snap; sn != nil && !sn.running && (s.table.Changes() != sn.seen || sn.failing) {
		sn.running, sn.bucket, sn.count, sn.seen = true, 0, 0, s.table.Changes()
		sn.jobs <- snapJob{begin: true} // the channel has room: a job is sent only for a free buffer
		s.snapPump()
	}
	if more {
		s.loop.CallSoonFunc(s.housekeep)
		return
	}
	s.loop.CallLater(snapshotInterval, s.housekeep)
}

// snapPump copies whole buckets into a free buffer and hands it to the writer; with the
// last bucket copied, it hands the end. One buffer a call; the next call comes in the next
// pass while a buffer is free, or when the writer gives one back. Loop only.
func (s *Server) snapPump() {
	sn := s.snap
	sn.pumpQueued = false
	if !sn.running || sn.bucket > DigestBuckets || len(sn.free) == 0 {
		return
	}
	buf := sn.free[len(sn.free)-1]
	sn.free = sn.free[:len(sn.free)-1]
	ttl := s.cfg.Records.TTL > 0
	for sn.bucket < DigestBuckets && len(buf) < snapshotChunk {
		for _, r := range s.table.Bucket(sn.bucket) {
			if ttl && s.table.Expired(r) {
				continue
			}
			buf = append(buf, r.Line...)
			buf = append(buf, '\n')
			sn.count++
		}
		sn.bucket++
	}
	end := sn.bucket == DigestBuckets
	if end {
		sn.bucket++ // past the end: nothing more to copy
	}
	sn.jobs <- snapJob{lines: buf, end: end}
	if !end && len(sn.free) > 0 && !sn.pumpQueued {
		sn.pumpQueued = true
		s.loop.CallSoonFunc(s.snapPump)
	}
}

// snapBuffer takes a buffer back from the writer and copies on. Loop only.
func (s *Server) snapBuffer(buf []byte) {
	sn := s.snap
	sn.free = append(sn.free, buf[:0])
	if !sn.pumpQueued {
		sn.pumpQueued = true
		s.loop.CallSoonFunc(s.snapPump)
	}
}

// snapWritten ends a snapshot on the loop: err is why it failed, or nil. Loop only.
func (s *Server) snapWritten(err error, records int, took time.Duration) {
	sn := s.snap
	sn.running = false
	if err != nil {
		s.metrics.SnapshotWriteErrors.Add(1)
		if !sn.failing {
			sn.failing = true
			s.log.Warn("snapshot not written: retrying every second", "dir", sn.dir, "err", err)
		}
		return
	}
	if sn.failing {
		sn.failing = false
		s.log.Info("snapshot written again", "dir", sn.dir)
	}
	s.metrics.SnapshotWrites.Add(1)
	s.metrics.SnapshotLastWrite.Store(time.Now().UnixNano())
	s.log.Debug("snapshot written", "records", records, "took", took)
}

// snapshotWriter is the server's snapshot goroutine: it writes what the loop hands it, and
// gives the buffers back. The final job (Shutdown, once the loop has ended) writes the
// whole table and ends the goroutine.
func (s *Server) snapshotWriter() {
	sn := s.snap
	defer close(sn.gone)
	var w *snapFile
	var werr error
	start := time.Now()
	for job := range sn.jobs {
		switch {
		case job.final:
			if w != nil {
				w.abort()
				w = nil
			}
			job.done <- s.writeTable()
			return
		case job.begin:
			w, werr = createSnapFile(sn.dir, sn.name)
			start = time.Now()
		}
		if job.lines != nil {
			if werr == nil {
				werr = w.lines(job.lines)
			}
			buf := job.lines
			if s.loop.CallSoonThreadsafe(func() { s.snapBuffer(buf) }) != nil {
				continue // the loop has ended: the final job comes next
			}
		}
		if job.end {
			n := 0
			if werr == nil {
				n = w.n
				werr = w.finish()
			} else if w != nil {
				w.abort()
			}
			w = nil
			err, took := werr, time.Since(start)
			werr = nil
			s.loop.CallSoonThreadsafe(func() { s.snapWritten(err, n, took) })
		}
	}
}

// writeTable writes a snapshot of the whole table at once, from a goroutine that owns the
// table: the loop has ended.
func (s *Server) writeTable() error {
	w, err := createSnapFile(s.snap.dir, s.snap.name)
	if err != nil {
		return err
	}
	var buf []byte
	for b := range DigestBuckets {
		for _, r := range s.table.Bucket(b) {
			if s.table.Expired(r) {
				continue
			}
			buf = append(buf, r.Line...)
			buf = append(buf, '\n')
		}
		if len(buf) >= snapshotChunk || b == DigestBuckets-1 {
			if err := w.lines(buf); err != nil {
				w.abort()
				return err
			}
			buf = buf[:0]
		}
	}
	return w.finish()
}

// finalSnapshot writes the last snapshot once the loop has ended, so that a clean stop
// loses nothing, and ends the snapshot goroutine. It returns an error if the snapshot could
// not be written (the previous one stays). Not on the loop; nothing without snapshots, or
// when the loop never ran (the table was never the loop's: nothing changed it).
func (s *Server) finalSnapshot() error {
	sn := s.snap
	if sn == nil || !s.running.Load() {
		return nil
	}
	start := time.Now()
	done := make(chan error, 1)
	sn.jobs <- snapJob{final: true, done: done}
	err := <-done
	<-sn.gone
	if err != nil {
		s.metrics.SnapshotWriteErrors.Add(1)
		s.log.Warn("last snapshot not written: the previous one stays", "dir", sn.dir, "err", err)
		return fmt.Errorf("herd: %s: last snapshot: %w", s.name, err)
	}
	s.metrics.SnapshotWrites.Add(1)
	s.log.Info("last snapshot written", "records", s.table.Len(), "took", time.Since(start))
	return nil
}

// snapFile is a snapshot being written to its temporary file.
type snapFile struct {
	f    *os.File
	w    *bufio.Writer
	path string // the snapshot's name, which the temporary file takes at the end
	n    int    // records written
	out  []byte
}

// createSnapFile creates (or truncates) the temporary file of a new snapshot and writes its
// first line.
func createSnapFile(dir, name string) (*snapFile, error) {
	path := snapshotPath(dir, name)
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	w := &snapFile{f: f, w: bufio.NewWriterSize(f, 256<<10), path: path}
	fmt.Fprintf(w.w, "%s %s\n", snapshotMagic, name)
	return w, nil
}

// lines writes the records of lines (AT lines, each ending in "\n"), each with its checksum.
func (w *snapFile) lines(lines []byte) error {
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		line := lines[:i]
		lines = lines[i+1:]
		w.out = appendChecksum(w.out[:0], line)
		w.out = append(w.out, ' ')
		w.out = append(w.out, line...)
		w.out = append(w.out, '\n')
		if _, err := w.w.Write(w.out); err != nil {
			return err
		}
		w.n++
	}
	return nil
}

// finish writes the end line, syncs the file, renames it over the snapshot and syncs the
// folder. On error the temporary file is removed and the snapshot at its name stays.
func (w *snapFile) finish() error {
	fmt.Fprintf(w.w, "END %d\n", w.n)
	err := w.w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.path+".tmp", w.path)
	}
	if err != nil {
		os.Remove(w.path + ".tmp")
		return err
	}
	return syncDir(filepath.Dir(w.path))
}

// abort drops the snapshot being written.
func (w *snapFile) abort() {
	w.f.Close()
	os.Remove(w.path + ".tmp")
}

// syncDir fsyncs a folder, so that a rename in it survives a crash of the machine.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
