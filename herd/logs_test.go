package herd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the drain goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogWriterWritesInOrder(t *testing.T) {
	var dst lockedBuffer
	w := NewLogWriter(&dst, 16)
	var want strings.Builder
	buf := []byte("line 00\n")
	for i := range 10 {
		buf[5], buf[6] = byte('0'+i/10), byte('0'+i%10)
		want.Write(buf)
		w.Write(buf) // the writer must copy: buf changes right after
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dst.String(); got != want.String() {
		t.Errorf("got %q, want %q", got, want.String())
	}
	if w.Dropped() != 0 || w.Written() != 10 {
		t.Errorf("dropped %d written %d, want 0 and 10", w.Dropped(), w.Written())
	}
	w.Write([]byte("late\n"))
	if w.Dropped() != 1 {
		t.Errorf("write after close not counted as dropped")
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct{ release chan struct{} }

func (b *blockingWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestLogWriterDropsWhenFull(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	w := NewLogWriter(bw, 4)
	// The drain goroutine takes at most one record before it blocks (bufio holds small writes,
	// but the flush blocks); the queue holds 4; so of 100 writes at least 95 are dropped, and
	// none of the Write calls blocks (the test would hang).
	big := bytes.Repeat([]byte("x"), 70<<10) // larger than bufio's buffer: each write reaches bw
	for range 100 {
		w.Write(big)
	}
	if d := w.Dropped(); d < 95 {
		t.Errorf("dropped %d of 100, want at least 95", d)
	}
	close(bw.release)
	w.Close()
}

func TestOpenLog(t *testing.T) {
	dir := t.TempDir()
	log, w, err := OpenLog(LogConfig{Dir: dir, Level: "info"}, "Hill")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("in", "line", "IAMAT a +1+1 1")
	log.Debug("hidden")
	w.Close()
	data, err := os.ReadFile(filepath.Join(dir, "Hill.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.Contains(s, `line="IAMAT a +1+1 1"`) || strings.Contains(s, "hidden") || !strings.Contains(s, "time=") {
		t.Errorf("log = %q", s)
	}
	log, w, err = OpenLog(LogConfig{Dir: "off"}, "Hill")
	if err != nil || w != nil || log.Enabled(t.Context(), 12) {
		t.Errorf("off: %v %v", w, err)
	}
}
