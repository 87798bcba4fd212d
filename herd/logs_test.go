package herd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// logNumbers returns the n=<number> of each record of a log, in order.
func logNumbers(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, m := range regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=rec n=(\d+)$`).FindAllSubmatch(data, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		ns = append(ns, n)
	}
	if len(ns) != bytes.Count(data, []byte("\n")) {
		t.Errorf("%s: %d records of %d lines: a line is not a whole record:\n%s", path, len(ns), bytes.Count(data, []byte("\n")), data)
	}
	return ns
}

// logrotate's way: the file is moved away, then Reopen (SIGHUP) makes the writer open a new
// one at the path. Every record is in one file or the other, whole, once, and in order:
// those logged before the move, those logged while the move and the reopen happen, and
// those after, which are in the new file. With the built-in rotation (lumberjack) too.
func TestLogReopenAfterMove(t *testing.T) {
	for _, maxSize := range []ByteSize{0, 1 << 20} {
		t.Run("max_size="+maxSize.String(), func(t *testing.T) {
			dir := t.TempDir()
			log, w, err := OpenLog(LogConfig{Dir: dir, Level: "info", MaxSize: maxSize, MaxFiles: 3}, "Hill")
			if err != nil {
				t.Fatal(err)
			}
			const n = 100 // three times n records, fewer than the queue holds: none dropped
			for i := range n {
				log.Info("rec", "n", i)
			}
			during := make(chan struct{})
			go func() {
				defer close(during)
				for i := n; i < 2*n; i++ {
					log.Info("rec", "n", i)
				}
			}()
			path := filepath.Join(dir, "Hill.log")
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			if err := w.Reopen(); err != nil {
				t.Fatal(err)
			}
			<-during
			for i := 2 * n; i < 3*n; i++ {
				log.Info("rec", "n", i)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			moved, fresh := logNumbers(t, path+".1"), logNumbers(t, path)
			all := append(moved, fresh...)
			if len(all) != 3*n || w.Dropped() != 0 {
				t.Fatalf("%d records in the two files (%d dropped), want %d", len(all), w.Dropped(), 3*n)
			}
			for i, v := range all {
				if v != i {
					t.Fatalf("record %d is n=%d: lost, repeated or out of order (moved %v, new %v)", i, v, moved, fresh)
				}
			}
			if len(fresh) < n {
				t.Errorf("the new file has %d records, want at least the %d logged after the reopen", len(fresh), n)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("new file: %v, mode %v, want 0644", err, fi.Mode().Perm())
			}
		})
	}
}

// log.max_size rotates a server's file, and log.max_files bounds how many rotated files stay.
func TestLogRotatesAtMaxSize(t *testing.T) {
	dir := t.TempDir()
	_, w, err := OpenLog(LogConfig{Dir: dir, Level: "info", MaxSize: 1 << 20, MaxFiles: 2}, "Hill")
	if err != nil {
		t.Fatal(err)
	}
	rec := append(bytes.Repeat([]byte("x"), 1023), '\n')
	for range 5 * 16 { // 5 MiB in batches of 64 KiB
		b := logPool.Get()
		b.B = b.B[:0]
		for range 64 {
			b.B = append(b.B, rec...)
		}
		w.WriteBatch(b, 64)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 0 {
		t.Fatalf("%d records dropped", w.Dropped())
	}
	var files []string
	// lumberjack removes the oldest files on a goroutine of its own, after each rotation.
	testutil.WaitFor(t, "two rotated files and the current one", func() bool {
		files, _ = filepath.Glob(filepath.Join(dir, "Hill*.log"))
		return len(files) == 3
	})
	backups := 0
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 || fi.Size()%1024 != 0 {
			t.Errorf("%s: %d bytes, want at most 1 MiB of whole records", f, fi.Size())
		}
		if regexp.MustCompile(`/Hill-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log$`).MatchString(f) {
			backups++
		}
	}
	if backups != 2 {
		t.Errorf("files %v: want Hill.log and two rotated Hill-<time>.log", files)
	}
}

// JSON records keep one type per field whoever writes them (the loop's hand-appended records
// or slog): the time is always a string in one layout, addresses are strings, durations are
// numbers (nanoseconds). Two linked servers make the records of a link too.
func TestJSONLogOneTypePerField(t *testing.T) {
	var dst testutil.SyncBuffer
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	cfg.Log = LogConfig{Dir: "off", Level: "debug", Format: "json"}
	h := startHerd(t, cfg, WithLogOutput(&dst))
	a, b := h.Server("A"), h.Server("B")
	testutil.WaitFor(t, "the link", func() bool { return a.Metrics().LinksUp.Load() == 1 && b.Metrics().LinksUp.Load() == 1 })
	if err := h.SetLinkFault("A", "B", LinkCut); err != nil {
		t.Fatal(err)
	}
	if err := h.SetLinkFault("A", "B", NoFault); err != nil {
		t.Fatal(err)
	}
	c := testutil.Dial(t, a.Addr().String())
	c.Send("IAMAT kiwi +34.068930-118.445127 1621464827.959498503\nWHATSAT kiwi 10 2\nNOPE\n")
	c.Line()
	c.Reply()
	c.ReadAll()
	testutil.Stop(t, h.Shutdown)

	timeRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)
	kinds := make(map[string]string)   // field: JSON type
	firstIn := make(map[string]string) // field: the record that set its type
	msgs := make(map[string]bool)
	for i, l := range strings.Split(strings.TrimSuffix(dst.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
		msgs[fmt.Sprint(rec["msg"])] = true
		for k, v := range rec {
			kind := fmt.Sprintf("%T", v)
			if prev, ok := kinds[k]; ok && prev != kind {
				t.Errorf("field %q is %s in %s but %s in %s", k, prev, firstIn[k], kind, l)
			} else if !ok {
				kinds[k], firstIn[k] = kind, l
			}
		}
		if ts, _ := rec["time"].(string); !timeRE.MatchString(ts) {
			t.Errorf("time %v is not in the one layout: %s", rec["time"], l)
		}
	}
	for _, m := range []string{"listening", "link up", "link fault", "link down", "reply", "in", "out", "places answer", "stopped"} {
		if !msgs[m] {
			t.Errorf("no %q record among %v", m, msgs)
		}
	}
	for k, want := range map[string]string{"addr": "string", "remote": "string", "fault": "string", "conn": "float64", "took": "float64"} {
		if kinds[k] != want {
			t.Errorf("field %q is %q, want %s", k, kinds[k], want)
		}
	}
}

// A connection that closes without sending a byte (a health probe, a port scan) writes
// nothing at INFO: one DEBUG record, when it closes. A client that sends a line has its
// open, eof and close records.
func TestProbeConnectionLogsNoInfo(t *testing.T) {
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			var dst testutil.SyncBuffer
			cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
			cfg.Log = LogConfig{Dir: "off", Level: level}
			s := startServer(t, cfg, "Hill", WithLogOutput(&dst))
			for range 3 {
				probe, err := net.Dial("tcp", s.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				probe.Close()
			}
			testutil.WaitFor(t, "the probes to be gone", func() bool {
				return s.Metrics().ClientsTotal.Load() == 3 && s.Metrics().ClientsOpen.Load() == 0
			})
			c := testutil.Dial(t, s.Addr().String())
			c.Send("IAMAT b +1+1 1\n")
			c.Line()
			c.TCP.CloseWrite()
			c.EOF()
			testutil.Stop(t, s.Shutdown)
			log := dst.String()
			for _, msg := range []string{"open", "eof", "close"} {
				if n := strings.Count(log, " level=INFO msg="+msg+" "); n != 1 {
					t.Errorf("%d INFO %q records, want 1 (the client's only):\n%s", n, msg, log)
				}
			}
			want := 0
			if level == "debug" {
				want = 3
			}
			if n := strings.Count(log, ` level=DEBUG msg="close without data" server=Hill conn=`); n != want {
				t.Errorf("%d DEBUG records of connections without data, want %d:\n%s", n, want, log)
			}
		})
	}
}

// TestServerLogsEveryLinkLine: at INFO every AT line a neighbour sends on its link has a
// record, with the neighbour's name and what came of it: an update stored and passed on, and a
// duplicate that changed nothing. The flood it causes is in that record, not in one more.
func TestServerLogsEveryLinkLine(t *testing.T) {
	lnB, lnC := testutil.Listen(t), testutil.Listen(t)
	connsB, _ := fakeNeighbour(t, "B", lnB)
	connsC, _ := fakeNeighbour(t, "C", lnC)
	var dst testutil.SyncBuffer
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B", "C"}},
		ServerConfig{Name: "B", PeerAddr: lnB.Addr().String()}, ServerConfig{Name: "C", PeerAddr: lnC.Addr().String()})
	a := startServer(t, cfg, "A", WithLogOutput(&dst), WithClock(fixedClock(1_700_000_000, 0)))
	b := testutil.Recv(t, connsB, "A's link to B")
	c := testutil.Recv(t, connsC, "A's link to C")
	testutil.WaitFor(t, "the links up", func() bool { return a.Metrics().LinksUp.Load() == 2 })
	const line = "AT B +0.000000000 f +1+1 1699999999"
	b.send(line + "\n" + line + "\n")
	if _, got := c.until("AT "); got != line {
		t.Fatalf("C got %q, want %q", got, line)
	}
	testutil.WaitFor(t, "the duplicate", func() bool { return a.Metrics().Stale.Load() == 1 })
	testutil.Stop(t, a.Shutdown)

	log := dst.String()
	in := `msg=in server=A peer=B in="` + regexp.QuoteMeta(line) + `" result=`
	want := []string{in + `flooded\n`, in + `stale\n`}
	rest := log
	for _, w := range want {
		loc := regexp.MustCompile(w).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("no record %q in order in log:\n%s", w, log)
		}
		rest = rest[loc[1]:]
	}
	if strings.Contains(log, "msg=flood") {
		t.Errorf("a neighbour's update is logged twice, as a flood too:\n%s", log)
	}
}
