package herd

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// LogWriter is an io.Writer that never blocks its caller: Write copies the bytes into a buffered
// channel that one goroutine drains into a bufio.Writer over the destination, flushing whenever the
// channel runs empty. When the channel is full the record is dropped and counted.
//
// Write may be called from any goroutine (slog handlers call it with one whole record at a time).
// Close stops the drain goroutine after writing what was queued; writes after Close are dropped.
type LogWriter struct {
	ch      chan *[]byte
	quit    chan struct{}
	done    chan struct{}
	dst     io.Writer
	closer  io.Closer
	dropped atomic.Uint64
	written atomic.Uint64
	closed  atomic.Bool
	once    sync.Once
	pool    sync.Pool
}

// NewLogWriter starts a LogWriter over dst with room for queue records (default 8192 when
// queue <= 0). If dst is an io.Closer, Close closes it.
func NewLogWriter(dst io.Writer, queue int) *LogWriter {
	if queue <= 0 {
		queue = 8192
	}
	w := &LogWriter{
		ch:   make(chan *[]byte, queue),
		quit: make(chan struct{}),
		done: make(chan struct{}),
		dst:  dst,
	}
	if c, ok := dst.(io.Closer); ok {
		w.closer = c
	}
	go w.drain()
	return w
}

// Write queues a copy of p; it never blocks. It always reports len(p), nil: a dropped record is
// counted in Dropped, not returned as an error (logging must not fail the caller).
func (w *LogWriter) Write(p []byte) (int, error) {
	if w.closed.Load() {
		w.dropped.Add(1)
		return len(p), nil
	}
	b, _ := w.pool.Get().(*[]byte)
	if b == nil {
		b = new([]byte)
	}
	*b = append((*b)[:0], p...)
	select {
	case w.ch <- b:
	default:
		w.dropped.Add(1)
		w.pool.Put(b)
	}
	return len(p), nil
}

func (w *LogWriter) drain() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.dst, 64<<10)
	write := func(b *[]byte) {
		_, _ = bw.Write(*b)
		w.written.Add(1)
		if cap(*b) <= 4096 {
			w.pool.Put(b)
		}
	}
	for {
		select {
		case b := <-w.ch:
			write(b)
			if len(w.ch) == 0 {
				_ = bw.Flush()
			}
		case <-w.quit:
			for {
				select {
				case b := <-w.ch:
					write(b)
				default:
					_ = bw.Flush()
					return
				}
			}
		}
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

// OpenLog opens the log of server name as the config says: <Dir>/<name>.log, appended to, through
// a LogWriter. With logging off it returns a logger that discards everything and a nil writer.
// The caller closes the writer after the last log call.
func OpenLog(c LogConfig, name string) (*slog.Logger, *LogWriter, error) {
	if c.Off() {
		return discardLogger, nil, nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("herd: log dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("herd: log file: %w", err)
	}
	w := NewLogWriter(f, 0)
	return NewLogger(w, c), w, nil
}

// NewLogger returns a slog.Logger writing records to w in the config's format and level.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	if c.Off() {
		return discardLogger
	}
	opts := &slog.HandlerOptions{Level: logLevel(c.Level)}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
