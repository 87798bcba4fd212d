package herd

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/bytebufferpool"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/herd-project/herd/reactor"
)

// Log queue bounds: a LogWriter holds at most this many batches and this many bytes waiting for
// the disk; past either, new batches are dropped (and their records counted).
const (
	logQueueBatches = 1024
	logQueueBytes   = 64 << 20
	// logBatchMax hands a server's batch to the writer once it holds this much: one write of
	// the writer's per 64 KiB, about 300 records, and a buffer that stays in the cache.
	logBatchMax = 64 << 10
	// logFlushDelay bounds how long a record waits on the loop for its batch to fill: a quiet
	// server's records reach the writer this long after the first of them at most.
	logFlushDelay = 10 * time.Millisecond
)

// logPool holds the buffers of log batches: the loop fills one, the writer goroutine returns it.
var logPool bytebufferpool.Pool

// logBatch is a run of whole records (each ending "\n") and how many there are.
type logBatch struct {
	b *bytebufferpool.ByteBuffer
	n int
}

// LogWriter is an io.Writer that never blocks its caller: records go, as batches, through a
// bounded channel to one goroutine that writes them to the destination through a bufio.Writer,
// flushing whenever the channel runs empty. When the channel is full (logQueueBatches batches or
// logQueueBytes bytes waiting) the batch is dropped and its records counted in Dropped. Every
// write the destination sees holds whole records, so writers that share a destination (the
// servers of a process on standard error) never cut each other's lines.
//
// Write and WriteBatch may be called from any goroutine. Close stops the goroutine after writing
// what was queued; records written after Close are dropped.
type LogWriter struct {
	ch      chan logBatch
	reopen  chan chan error
	quit    chan struct{}
	done    chan struct{}
	dst     io.Writer
	closer  io.Closer
	queued  atomic.Int64 // bytes in ch
	max     int64
	dropped atomic.Uint64
	written atomic.Uint64
	closed  atomic.Bool
	once    sync.Once
}

// NewLogWriter starts a LogWriter over dst with room for queue batches (default 1024 when
// queue <= 0). If dst is an io.Closer, Close closes it.
func NewLogWriter(dst io.Writer, queue int) *LogWriter {
	if queue <= 0 {
		queue = logQueueBatches
	}
	w := &LogWriter{
		ch:     make(chan logBatch, queue),
		reopen: make(chan chan error),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		dst:    dst,
		max:    logQueueBytes,
	}
	if c, ok := dst.(io.Closer); ok {
		w.closer = c
	}
	go w.drain()
	return w
}

// Write queues a copy of p as one record; it never blocks. It always reports len(p), nil: a
// dropped record is counted in Dropped, not returned as an error (logging must not fail the
// caller). slog handlers call it with one whole record at a time.
func (w *LogWriter) Write(p []byte) (int, error) {
	b := logPool.Get()
	b.B = append(b.B[:0], p...)
	w.WriteBatch(b, 1)
	return len(p), nil
}

// WriteBatch queues b, which holds records whole records, and takes it: the caller must not
// touch b again (the writer returns it to the pool). It never blocks; a batch that finds the
// queue full, or the writer closed, is dropped and its records counted in Dropped.
func (w *LogWriter) WriteBatch(b *bytebufferpool.ByteBuffer, records int) {
	n := int64(len(b.B))
	if w.closed.Load() {
		w.dropped.Add(uint64(records))
		logPool.Put(b)
		return
	}
	if w.queued.Add(n) > w.max {
		w.queued.Add(-n)
		w.dropped.Add(uint64(records))
		logPool.Put(b)
		return
	}
	select {
	case w.ch <- logBatch{b, records}:
	default:
		w.queued.Add(-n)
		w.dropped.Add(uint64(records))
		logPool.Put(b)
	}
}

// drain writes the queued batches. A batch big enough (a loop pass's worth) goes to the
// destination in one write of its own; small ones (single slog records) gather in a bufio
// buffer, flushed before a big one, before one that would not fit (so no write cuts a record)
// and whenever the queue runs empty. A reopen is done between two batches, after a flush.
func (w *LogWriter) drain() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.dst, 16<<10)
	write := func(lb logBatch) {
		if n := len(lb.b.B); n >= 4<<10 || n > bw.Available() {
			_ = bw.Flush()
		}
		if len(lb.b.B) >= 4<<10 {
			_, _ = w.dst.Write(lb.b.B)
		} else {
			_, _ = bw.Write(lb.b.B)
		}
		w.queued.Add(-int64(len(lb.b.B)))
		w.written.Add(uint64(lb.n))
		logPool.Put(lb.b)
	}
	for {
		select {
		case lb := <-w.ch:
			write(lb)
			if len(w.ch) == 0 {
				_ = bw.Flush()
			}
		case res := <-w.reopen:
			_ = bw.Flush()
			var err error
			if r, ok := w.dst.(reopener); ok {
				err = r.Reopen()
			}
			res <- err
		case <-w.quit:
			for {
				select {
				case lb := <-w.ch:
					write(lb)
				default:
					_ = bw.Flush()
					return
				}
			}
		}
	}
}

// reopener is a destination that can let go of its file and open the one now at its path.
type reopener interface{ Reopen() error }

// Reopen has the writer's goroutine flush what it holds and reopen the destination (a log
// file: the file now at its path, created if it was moved away, as after logrotate), between
// two batches: every record goes whole to the old file or to the new one. It waits for the
// reopen and returns its error; on error the old file stays in use. A destination that is
// not a file (standard error, a test's buffer) is left as it is. Records queued before the
// call may land in either file. Any goroutine; nil after Close.
func (w *LogWriter) Reopen() error {
	res := make(chan error, 1)
	select {
	case w.reopen <- res:
		return <-res
	case <-w.done:
		return nil
	case <-w.quit:
		return nil
	}
}

// Dropped returns how many records were dropped because the queue was full or the writer closed.
func (w *LogWriter) Dropped() uint64 { return w.dropped.Load() }

// Written returns how many records reached the destination's buffer.
func (w *LogWriter) Written() uint64 { return w.written.Load() }

// Close writes what is queued, flushes, closes the destination if it is a Closer, and stops the
// goroutine. Any goroutine may call it, more than once.
func (w *LogWriter) Close() error {
	var err error
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.quit)
		<-w.done
		if w.closer != nil {
			err = w.closer.Close()
		}
	})
	return err
}

// discardLogger is a logger whose handler is never enabled (no formatting cost).
var discardLogger = slog.New(slog.DiscardHandler)

// OpenLog opens the log of server name as the config says: <Dir>/<name>.log, appended to and
// rotated at log.max_size, or standard error for log.dir "-", through a LogWriter. With
// logging off it returns a logger that discards everything and a nil writer.
// The caller closes the writer after the last log call. (A Server logs its hot-path records
// without slog, see serverLog; OpenLog is for code that logs only through slog.)
func OpenLog(c LogConfig, name string) (*slog.Logger, *LogWriter, error) {
	if c.Off() {
		return discardLogger, nil, nil
	}
	w, err := openLogFile(c, name)
	if err != nil {
		return nil, nil, err
	}
	return NewLogger(w, c), w, nil
}

// openLogFile opens the log of server name through a LogWriter: <Dir>/<name>.log for
// appending, rotated at MaxSize if set, or standard error for Dir "-".
func openLogFile(c LogConfig, name string) (*LogWriter, error) {
	if c.Stderr() {
		return NewLogWriter(stderrLog{}, 0), nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("herd: log dir: %w", err)
	}
	path := filepath.Join(c.Dir, name+".log")
	f, err := createLog(path)
	if err != nil {
		return nil, err
	}
	if c.MaxSize <= 0 {
		return NewLogWriter(&logFile{path: path, f: f}, 0), nil
	}
	// lumberjack opens the file itself, at the first write; it was opened above so that a bad
	// path fails here, with the config.
	f.Close()
	return NewLogWriter(&rotatingLog{lj: &lumberjack.Logger{
		Filename:   path,
		MaxSize:    int((c.MaxSize + 1<<20 - 1) >> 20),
		MaxBackups: c.MaxFiles,
	}}, 0), nil
}

// createLog opens the log file at path for appending, creating it if need be.
func createLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("herd: log file: %w", err)
	}
	return f, nil
}

// logFile is a log file that Reopen replaces with the file at its path (created if it was
// moved away). Only the LogWriter's goroutine uses it.
type logFile struct {
	path string
	f    *os.File
}

func (l *logFile) Write(p []byte) (int, error) { return l.f.Write(p) }
func (l *logFile) Close() error                { return l.f.Close() }

// Reopen opens the file at the path, then closes the old one: if the open fails, the old file
// stays in use.
func (l *logFile) Reopen() error {
	f, err := createLog(l.path)
	if err != nil {
		return err
	}
	old := l.f
	l.f = f
	return old.Close()
}

// rotatingLog is a log file that lumberjack rotates by size; Reopen closes it, and the next
// write opens the file at its path (lumberjack's own rule: append to it, or rotate it first if
// it is full). lumberjack starts a goroutine to remove old files at the first open, which
// stays for the life of the process: one per server. Only the LogWriter's goroutine uses it.
type rotatingLog struct {
	lj     *lumberjack.Logger
	opened bool // the file was made sure of since the last reopen
}

// Write makes sure, once after each reopen, that the file exists before lumberjack opens it:
// lumberjack would create a missing one 0600, where the rotated files keep the mode of the
// file they were.
func (r *rotatingLog) Write(p []byte) (int, error) {
	if !r.opened {
		r.opened = true
		if f, err := createLog(r.lj.Filename); err == nil {
			f.Close()
		}
	}
	return r.lj.Write(p)
}

func (r *rotatingLog) Close() error { return r.lj.Close() }

// Reopen closes the file: the next write opens the one then at the path.
func (r *rotatingLog) Reopen() error {
	r.opened = false
	return r.lj.Close()
}

// stderrLog writes to the process's standard error, which it never closes.
type stderrLog struct{}

func (stderrLog) Write(p []byte) (int, error) { return os.Stderr.Write(p) }

// NewLogger returns a slog.Logger writing records to w in the config's format and level.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	if c.Off() {
		return discardLogger
	}
	return newSlog(w, c)
}

// newSlog is NewLogger without the check of log.dir (a server given its own output). Its JSON
// records keep one type and one form per field, the ones serverLog writes (see jsonAttr).
func newSlog(w io.Writer, c LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(c.Level)}
	if c.Format == "json" {
		opts.ReplaceAttr = jsonAttr
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// jsonAttr writes the time as the text records do (and serverLog's JSON ones), to the
// millisecond, not in slog's JSON form (RFC 3339 with up to 9 digits); and a value with a
// String method (a net.Addr, a LinkFault) as that string, as the text form does, where
// slog's JSON form would marshal its fields (an address as {"IP":...,"Port":...}).
func jsonAttr(groups []string, a slog.Attr) slog.Attr {
	v := a.Value
	switch {
	case len(groups) == 0 && a.Key == slog.TimeKey && v.Kind() == slog.KindTime:
		return slog.String(slog.TimeKey, v.Time().Format(timeLayout))
	case v.Kind() == slog.KindAny:
		if _, isErr := v.Any().(error); isErr {
			return a // slog writes an error's text already
		}
		if st, ok := v.Any().(fmt.Stringer); ok {
			return slog.String(a.Key, st.String())
		}
	}
	return a
}

func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// timeLayout is slog's own: RFC 3339 with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// serverLog is a server's log. Its records look exactly like slog's TextHandler (or
// JSONHandler) records, but the frequent ones (every line in and out, floods, connections,
// Places calls) are appended by hand on the loop, without slog and without allocating:
//
//	time=2026-11-26T05:29:02.123Z level=INFO msg=in server=Hill conn=12 in="WHATSAT kiwi 10 5"
//
// Records gather in one buffer, which goes to the LogWriter once it holds logBatchMax bytes,
// or logFlushDelay after the first record it holds, whichever comes first: at full load one
// hand-off (and one write) per 64 KiB, and no work per loop pass. The time of a record is the
// time its event began (reactor.Loop.EventTime: one clock read per event), formatted once
// per millisecond. Rare events go through slog (s.log), whose handler writes into the same
// buffer when called on the loop (so the file keeps the loop's order) and straight to the
// LogWriter otherwise (so such a record may come before loop records made up to
// logFlushDelay earlier).
//
// The append methods (begin, the field methods, end) are loop only, and only between
// begin and end; begin must only be called when the level is enabled (Server.logInfo).
type serverLog struct {
	w     *LogWriter // nil: logging off
	loop  *reactor.Loop
	name  string
	json  bool
	buf   *bytebufferpool.ByteBuffer
	n     int  // records in buf
	armed bool // a flush is due (timer set) for the records in buf
	timer *time.Timer
	ts    []byte // the time of tsMs, formatted
	tsMs  int64
	heads []recordHead
	flush func()
}

// recordHead is the fixed part of the records of one level and message after their time
// (" level=INFO msg=reply server=Hill"), made once.
type recordHead struct {
	level slog.Level
	msg   string
	b     []byte
}

func newServerLog(w *LogWriter, c LogConfig, name string, loop *reactor.Loop) *serverLog {
	g := &serverLog{w: w, loop: loop, name: name, json: c.Format == "json", tsMs: -1}
	g.flush = g.flushDue
	return g
}

// arm makes the records gathered from now on reach the writer within logFlushDelay. The
// timer keeps real time (whatever the loop's clock) and posts the flush to the loop.
func (g *serverLog) arm() {
	g.armed = true
	if g.timer == nil {
		g.timer = time.AfterFunc(logFlushDelay, func() { _ = g.loop.CallSoonThreadsafe(g.flush) })
		return
	}
	g.timer.Reset(logFlushDelay)
}

// flushDue is the flush armed by the first record of a batch.
func (g *serverLog) flushDue() {
	g.armed = false
	g.handOff()
}

// handOff gives the records gathered so far to the writer.
func (g *serverLog) handOff() {
	if g.buf == nil || g.n == 0 {
		return
	}
	g.w.WriteBatch(g.buf, g.n)
	g.buf, g.n = nil, 0
}

// final hands off what is left, once the loop has stopped (any goroutine then).
func (g *serverLog) final() {
	if g != nil {
		if g.timer != nil {
			g.timer.Stop()
		}
		g.handOff()
	}
}

// raw appends a whole record formatted elsewhere (slog's, on the loop).
func (g *serverLog) raw(p []byte) {
	if !g.armed {
		g.arm()
	}
	if g.buf == nil {
		g.buf = logPool.Get()
	}
	g.buf.B = append(g.buf.B, p...)
	g.n++
	if len(g.buf.B) >= logBatchMax {
		g.handOff()
	}
}

// stamp returns the time of the records being made, formatted.
func (g *serverLog) stamp() []byte {
	now := g.loop.EventTime()
	if ms := now.UnixMilli(); ms != g.tsMs {
		g.tsMs = ms
		g.ts = now.AppendFormat(g.ts[:0], timeLayout)
	}
	return g.ts
}

// head returns the fixed part of the records of level and msg, made at the first of them.
// The messages are the callers' constants, a dozen at most: a linear search finds them (by
// the string's pointer, at once) faster than a map would.
func (g *serverLog) head(level slog.Level, msg string) []byte {
	for i := range g.heads {
		if h := &g.heads[i]; h.msg == msg && h.level == level {
			return h.b
		}
	}
	var b []byte
	if g.json {
		b = append(b, `","level":"`...)
		b = append(b, levelText(level)...)
		b = append(b, `","msg":`...)
		b = appendQuoted(b, msg, true)
		b = append(b, `,"server":`...)
		b = appendQuoted(b, g.name, true)
	} else {
		b = append(b, " level="...)
		b = append(b, levelText(level)...)
		b = append(b, " msg="...)
		b = appendText(b, msg)
		b = append(b, " server="...)
		b = appendText(b, g.name)
	}
	g.heads = append(g.heads, recordHead{level, msg, b})
	return b
}

func levelText(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "DEBUG"
	case slog.LevelWarn:
		return "WARN"
	case slog.LevelError:
		return "ERROR"
	}
	return "INFO"
}

// begin starts a record: time, level, msg and the server's name.
func (g *serverLog) begin(level slog.Level, msg string) {
	if !g.armed {
		g.arm()
	}
	if g.buf == nil {
		g.buf = logPool.Get()
	}
	b := g.buf.B
	if g.json {
		b = append(b, `{"time":"`...)
	} else {
		b = append(b, "time="...)
	}
	b = append(b, g.stamp()...)
	g.buf.B = append(b, g.head(level, msg)...)
}

func (g *serverLog) key(k string) []byte {
	b := g.buf.B
	if g.json {
		b = append(b, ',', '"')
		b = append(b, k...)
		return append(b, '"', ':')
	}
	b = append(b, ' ')
	b = append(b, k...)
	return append(b, '=')
}

func (g *serverLog) uint(k string, v uint64) { g.buf.B = strconv.AppendUint(g.key(k), v, 10) }
func (g *serverLog) int(k string, v int)     { g.buf.B = strconv.AppendInt(g.key(k), int64(v), 10) }

// str appends a string field, quoted when it must be (always in JSON).
func (g *serverLog) str(k, v string) {
	if g.json {
		g.buf.B = appendQuoted(g.key(k), v, true)
	} else {
		g.buf.B = appendText(g.key(k), v)
	}
}

// line appends a protocol line, always quoted (it holds spaces).
func (g *serverLog) line(k string, v []byte) { g.buf.B = appendQuoted(g.key(k), v, g.json) }

// dur appends a duration as slog does: text "1.5ms", JSON nanoseconds.
func (g *serverLog) dur(k string, d time.Duration) {
	if g.json {
		g.buf.B = strconv.AppendInt(g.key(k), int64(d), 10)
	} else {
		g.buf.B = append(g.key(k), d.String()...)
	}
}

// end finishes the record.
func (g *serverLog) end() {
	if g.json {
		g.buf.B = append(g.buf.B, '}', '\n')
	} else {
		g.buf.B = append(g.buf.B, '\n')
	}
	g.n++
	if len(g.buf.B) >= logBatchMax {
		g.handOff()
	}
}

// appendText appends s bare when slog's TextHandler would (no space, '=', quote or control
// byte), else quoted.
func appendText[T string | []byte](b []byte, s T) []byte {
	if len(s) == 0 {
		return append(b, '"', '"')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f {
			return appendQuoted(b, s, false)
		}
	}
	return append(b, s...)
}

const hexDigits = "0123456789abcdef"

// plain marks the bytes appendQuoted copies as they are: printable ASCII but the quote and the
// backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun returns the index of the first byte at or after i that appendQuoted cannot copy
// as it is (see plain), or len(s). It tests eight bytes at a time, a third of the
// instructions of a table lookup per byte: the lines logged are printable ASCII but for a
// rare quote.
func plainRun[T string | []byte](s T, i int) int {
	const (
		ones   = 0x0101010101010101
		highs  = 0x8080808080808080
		spaces = 0x2020202020202020
		quotes = 0x2222222222222222
		slashs = 0x5c5c5c5c5c5c5c5c
	)
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
		// The high bit of a byte of m is set where the byte is below 0x20 (w-spaces
		// borrows), 0x7f or above (w+ones carries, or w has it), a quote or a backslash
		// (the xor is zero and borrows). Bytes of 0x80 or more may set more bits, and a
		// borrow or a carry may set a bit in the byte above: never below the first byte
		// that must be escaped, which the lowest bit set is.
		m := ((w - spaces) | (w + ones) | w | ((w ^ quotes) - ones) | ((w ^ slashs) - ones)) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// appendQuoted appends s in double quotes, escaping as little as a reader needs: the quote,
// the backslash, control bytes (\t, \r, \n, else \xNN in text and \u00NN in JSON) and bytes that
// are not UTF-8 (\xNN in text, U+FFFD in JSON). Valid UTF-8 passes through.
func appendQuoted[T string | []byte](b []byte, s T, json bool) []byte {
	b = append(b, '"')
	start, i := 0, 0
	for {
		i = plainRun(s, i)
		if i == len(s) {
			break
		}
		c := s[i]
		size := 1
		if c >= 0x80 {
			var r rune
			r, size = utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			if r != utf8.RuneError || size > 1 {
				i += size
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case json && c >= 0x80:
			b = append(b, `\ufffd`...)
		case json:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// logSink is the io.Writer under a server's slog handler: on the loop a record joins the pass's
// batch (keeping the file in the loop's order), elsewhere it goes to the LogWriter on its own.
type logSink struct{ g *serverLog }

func (k logSink) Write(p []byte) (int, error) {
	g := k.g
	if g.loop != nil && g.loop.OnLoop() {
		g.raw(p)
		return len(p), nil
	}
	return g.w.Write(p)
}
