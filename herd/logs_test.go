package herd

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/herd-project/herd/internal/testutil"
	"github.com/herd-project/herd/reactor"
)

func TestLogWriterWritesInOrder(t *testing.T) {
	var dst testutil.SyncBuffer
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

func TestAppendQuoted(t *testing.T) {
	tests := []struct {
		in, text, json string
	}{
		{"IAMAT a +1+1 1", `"IAMAT a +1+1 1"`, `"IAMAT a +1+1 1"`},
		{"", `""`, `""`},
		{`say "hi" \ bye`, `"say \"hi\" \\ bye"`, `"say \"hi\" \\ bye"`},
		{"tab\there\r", `"tab\there\r"`, `"tab\there\r"`},
		{"bell\x07del\x7f", `"bell\x07del\x7f"`, `"bell\u0007del\u007f"`},
		{"café ☕", `"café ☕"`, `"café ☕"`},
		{"bad\xffutf8\xc3", `"bad\xffutf8\xc3"`, `"bad\ufffdutf8\ufffd"`},
	}
	for _, tt := range tests {
		if got := string(appendQuoted(nil, []byte(tt.in), false)); got != tt.text {
			t.Errorf("appendQuoted(%q, text) = %s, want %s", tt.in, got, tt.text)
		}
		got := appendQuoted(nil, tt.in, true)
		if string(got) != tt.json {
			t.Errorf("appendQuoted(%q, json) = %s, want %s", tt.in, got, tt.json)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendQuoted(%q, json) = %s: not JSON: %v", tt.in, got, err)
		} else if utf8.ValidString(tt.in) && back != tt.in {
			t.Errorf("appendQuoted(%q, json) decodes to %q", tt.in, back)
		}
	}
}

// Hand-appended records read like slog's own: the text form parses as logfmt the way slog
// writes it, and the JSON form is JSON with slog's keys.
func TestServerLogRecordForms(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var dst testutil.SyncBuffer
			w := NewLogWriter(&dst, 0)
			g := newServerLog(w, LogConfig{Format: format}, "Hill", reactor.New(reactor.Options{}))
			g.begin(slog.LevelInfo, "in")
			g.uint("conn", 7)
			g.line("line", []byte(`IAMAT "x" +1+1 1`))
			g.dur("took", 1500*time.Microsecond)
			g.str("why", "a reason")
			g.end()
			g.final() // the loop never runs here: hand the batch off by hand
			w.Close()
			got := dst.String()
			if format == "json" {
				var rec map[string]any
				if err := json.Unmarshal([]byte(got), &rec); err != nil {
					t.Fatalf("%s: %v", got, err)
				}
				want := map[string]any{"level": "INFO", "msg": "in", "server": "Hill", "conn": 7.0,
					"line": `IAMAT "x" +1+1 1`, "took": 1.5e6, "why": "a reason"}
				for k, v := range want {
					if rec[k] != v {
						t.Errorf("%s = %v, want %v (record %s)", k, rec[k], v, got)
					}
				}
				if _, err := time.Parse(time.RFC3339, rec["time"].(string)); err != nil {
					t.Errorf("time: %v", err)
				}
				return
			}
			re := regexp.MustCompile(`^time=\S+ level=INFO msg=in server=Hill conn=7 line="IAMAT \\"x\\" \+1\+1 1" took=1.5ms why="a reason"\n$`)
			if !re.MatchString(got) {
				t.Errorf("record %q", got)
			}
			ts := strings.TrimPrefix(strings.Fields(got)[0], "time=")
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				t.Errorf("time: %v", err)
			}
		})
	}
}

func TestWriteBatchDropsWholeBatches(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	w := NewLogWriter(bw, 1)
	big := bytes.Repeat([]byte("x"), 70<<10)
	for range 10 {
		b := logPool.Get()
		b.B = append(b.B[:0], big...)
		w.WriteBatch(b, 3) // never blocks
	}
	// At most one batch is being written and one queued: at least 8 batches of 3 dropped.
	if d := w.Dropped(); d < 24 || d%3 != 0 {
		t.Errorf("dropped %d records, want at least 24, in whole batches of 3", d)
	}
	close(bw.release)
	w.Close()
	if w.Written()+w.Dropped() != 30 {
		t.Errorf("written %d + dropped %d, want 30", w.Written(), w.Dropped())
	}
}

// A running server logs every line in and out (a line and its immediate reply in one record),
// connections, in the loop's order, and the rare records slog formats land in the same file in
// their place.
func TestServerLogsEveryLine(t *testing.T) {
	var dst testutil.SyncBuffer
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", WithLogOutput(&dst), hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n" + "IAMAT b +1+1 1\n")
	c.Line()
	c.Line()
	c.Send("WHATSAT b 10 2\n")
	c.Reply()
	c.Send("NOPE x\n")
	if got := c.Line(); got != "? NOPE x\n" {
		t.Fatalf("reply %q", got)
	}
	c.ReadAll()
	testutil.Stop(t, s.Shutdown)

	log := dst.String()
	want := []string{
		`msg=listening server=Hill`,
		`msg=open server=Hill conn=`,
		`msg=reply server=Hill conn=\d+ in="` + regexp.QuoteMeta(kiwiIAMAT) + `" out="AT Hill \+\d+\.\d{9} kiwi.cs.ucla.edu `,
		`msg=reply server=Hill conn=\d+ in="IAMAT b \+1\+1 1" out="AT Hill `,
		`msg=in server=Hill conn=\d+ in="WHATSAT b 10 2"\n`,
		`msg="places call" server=Hill provider=stub request=\+1,\+1,10000\n`,
		`msg="places answer" server=Hill request=\+1,\+1,10000 took=\S+ bytes=\d+\n`,
		`msg=out server=Hill conn=\d+ out="AT Hill \S+ b \+1\+1 1" bytes=\d+\n`,
		`msg=reply server=Hill conn=\d+ in="NOPE x" out="\? NOPE x"`,
		`msg=invalid server=Hill conn=\d+ why="codec: invalid command: unknown command"`,
		`msg=close server=Hill conn=`,
		`msg=stopped server=Hill log_dropped=0`,
	}
	rest := log
	for _, w := range want {
		loc := regexp.MustCompile(w).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("no record %q in order in log:\n%s", w, log)
		}
		rest = rest[loc[1]:]
	}
	for i, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if !strings.HasPrefix(l, "time=") || !strings.Contains(l, " level=") {
			t.Errorf("log line %d is not a record: %q", i+1, l)
		}
	}
}
