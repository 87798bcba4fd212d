package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
	"github.com/herd-project/herd/internal/testutil"
)

// lineServer is a tiny herd-like server: IAMAT gets an AT line, WHATSAT an AT line, a JSON
// body and a blank line, SET "+OK\r\n"; anything else "? line". Every AT line it makes is
// also passed to flood, when set.
type lineServer struct {
	ln    net.Listener
	flood func(at []byte)
}

func startLineServer(t *testing.T, flood func([]byte)) *lineServer {
	t.Helper()
	s := &lineServer{ln: testutil.Listen(t), flood: flood}
	testutil.Serve(t, s.ln, s.serve)
	return s
}

func (s *lineServer) addr() string { return s.ln.Addr().String() }

func (s *lineServer) serve(c net.Conn) {
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		var out string
		switch {
		case len(f) == 4 && f[0] == "IAMAT":
			out = "AT Test +0.000000001 " + f[1] + " " + f[2] + " " + f[3] + "\n"
			if s.flood != nil {
				s.flood([]byte(out))
			}
		case len(f) == 4 && f[0] == "WHATSAT":
			out = "AT Test +0.000000001 " + f[1] + " +34.068930-118.445127 1.5\n" +
				"{\n   \"html_attributions\" : [],\n   \"results\" : [ {}, {} ],\n   \"status\" : \"OK\"\n}\n\n"
		case len(f) == 3 && f[0] == "SET":
			out = "+OK\r\n"
		default:
			out = "? " + strings.TrimRight(string(line), "\n") + "\n"
		}
		bw.WriteString(out)
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

func runJSON(t *testing.T, args ...string) *result.Result {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), append(args, "-json", "-quiet"), &out, &errb); err != nil {
		t.Fatalf("run %v: %v\nstderr: %s", args, err, errb.String())
	}
	var r result.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	return &r
}

func TestClosedLoopCounts(t *testing.T) {
	s := startLineServer(t, nil)
	tests := []struct {
		scenario string
		extra    []string
		kinds    map[string]uint64
	}{
		{"iamat", nil, map[string]uint64{"iamat": 3000}},
		{"whatsat", []string{"-bound", "2"}, map[string]uint64{"whatsat": 3000}},
		{"mixed", []string{"-mix", "0.25"}, map[string]uint64{"iamat": 2250, "whatsat": 750}},
		{"raw", []string{"-template", "SET k:%d v"}, map[string]uint64{"raw": 3000}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			args := append([]string{"-scenario", tc.scenario, "-addr", s.addr(), "-c", "3", "-P", "10",
				"-n", "3000", "-d", "1m", "-check", "-server", "Test", "-clients", "50"}, tc.extra...)
			r := runJSON(t, args...)
			if r.Errors != 0 {
				t.Fatalf("errors %d: %v %v", r.Errors, r.ErrorKinds, r.ErrorSamples)
			}
			if r.Requests != 3000 || r.Replies != 3000 || r.Checked != 3000 {
				t.Errorf("requests %d replies %d checked %d, want 3000 each", r.Requests, r.Replies, r.Checked)
			}
			all := uint64(3000)
			if tc.scenario == "whatsat" || tc.scenario == "mixed" {
				all += 50 // an IAMAT for each client id first
			}
			if r.RequestsAll != all {
				t.Errorf("requests in all %d, want %d", r.RequestsAll, all)
			}
			if r.Latency.Count != 3000 {
				t.Errorf("histogram holds %d values, want 3000", r.Latency.Count)
			}
			if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
				t.Errorf("percentiles out of order: %+v", r.Latency)
			}
			for k, v := range tc.kinds {
				if r.Kinds[k] != v {
					t.Errorf("kind %s: %d replies, want %d (all: %v)", k, r.Kinds[k], v, r.Kinds)
				}
			}
		})
	}
}

func TestDurationBoundedStops(t *testing.T) {
	s := startLineServer(t, nil)
	r := runJSON(t, "-addr", s.addr(), "-c", "2", "-P", "4", "-d", "200ms", "-warmup", "50ms")
	if r.Replies == 0 || r.Errors != 0 {
		t.Fatalf("replies %d errors %d %v", r.Replies, r.Errors, r.ErrorSamples)
	}
	if r.Throughput <= 0 || r.CPU.UserS+r.CPU.SystemS <= 0 {
		t.Errorf("throughput %v cpu %+v", r.Throughput, r.CPU)
	}
}

func TestOpenLoopRate(t *testing.T) {
	s := startLineServer(t, nil)
	r := runJSON(t, "-addr", s.addr(), "-c", "4", "-rate", "2000", "-d", "500ms")
	// The schedule is exact: 2000/s for 0.5 s is 1000 requests, whatever the machine's speed.
	if r.Requests != 1000 || r.RequestsAll != 1000 || r.Replies != 1000 || r.Errors != 0 {
		t.Fatalf("requests %d replies %d errors %d %v", r.Requests, r.Replies, r.Errors, r.ErrorSamples)
	}
}

func TestInvalidRepliesCounted(t *testing.T) {
	s := startLineServer(t, nil)
	// The test server answers "? ..." to a raw GET; the loadgen counts those as errors.
	r := runJSON(t, "-scenario", "raw", "-template", "GET k:%d", "-addr", s.addr(), "-c", "1", "-n", "10", "-d", "1m")
	if r.ErrorKinds["invalid"] != 0 {
		t.Fatalf("raw scenario treats '?' as an error reply: %v", r.ErrorKinds)
	}
	r = runJSON(t, "-scenario", "raw", "-template", "GET k:%d", "-raw-ok", "+OK", "-check", "-addr", s.addr(), "-c", "1", "-n", "10", "-d", "1m")
	if r.ErrorKinds["check"] != 10 {
		t.Fatalf("check errors %v, want 10", r.ErrorKinds)
	}
}

func TestCheckCatchesWrongEcho(t *testing.T) {
	tests := []struct {
		req, reply string
		kind       uint8
		ok         bool
	}{
		{"IAMAT a +1+2 3.5\n", "AT S +0.000000000 a +1+2 3.5\n", kindIAMAT, true},
		{"IAMAT a +1+2 3.5\n", "AT S +0.000000000 b +1+2 3.5\n", kindIAMAT, false},
		{"IAMAT a +1+2 3.5\n", "AT S +0.000000000 a +1+3 3.5\n", kindIAMAT, false},
		{"IAMAT a +1+2 3.5\n", "AT S +0.000000000 a +1+2 3.6\n", kindIAMAT, false},
		{"IAMAT a +1+2 3.5\n", "AT S 0.000000000 a +1+2 3.5\n", kindIAMAT, false},
		{"IAMAT a +1+2 3.5\n", "AT S +0.00000000 a +1+2 3.5\n", kindIAMAT, false},
		{"IAMAT a +1+2 3.5\n", "AT X +0.000000000 a +1+2 3.5\n", kindIAMAT, false},
		{"WHATSAT a 10 1\n", "AT S -1.000000000 a +1+2 3.5\n{\n \"results\" : [ {} ],\n \"status\" : \"OK\"\n}\n\n", kindWHATSAT, true},
		{"WHATSAT a 10 1\n", "AT S -1.000000000 a +1+2 3.5\n{\n \"results\" : [ {}, {} ],\n \"status\" : \"OK\"\n}\n\n", kindWHATSAT, false},
		{"WHATSAT a 10 1\n", "AT S -1.000000000 a +1+2 3.5\n{ \"results\" : [] }\n\n", kindWHATSAT, false},
		{"SET k v\n", "+OK\r\n", kindRaw, true},
		{"SET k v\n", "-ERR\r\n", kindRaw, false},
	}
	for _, tc := range tests {
		err := checkReply([]byte(tc.req), []byte(tc.reply), tc.kind, "S", "+OK", 1)
		if (err == nil) != tc.ok {
			t.Errorf("checkReply(%q, %q) = %v, want ok %v", tc.req, tc.reply, err, tc.ok)
		}
	}
}

// TestScannerEverySplit feeds a stream of replies split at every offset and demands the
// same reply boundaries.
func TestScannerEverySplit(t *testing.T) {
	stream := "AT S +0.000000000 a +1+2 3\n" +
		"AT S +0.000000000 a +1+2 3\n{\n \"a\" : 1\n}\n\n" +
		"? WHATSAT x 1 1\n" +
		"AT S +0.000000000 a +1+2 3\n\n" + // no body at all
		"AT S +0.000000000 b +1+2 3\n"
	kinds := []uint8{kindIAMAT, kindWHATSAT, kindWHATSAT, kindWHATSAT, kindIAMAT}
	want := []int{27, 27 + 41, 27 + 41 + 16, 27 + 41 + 16 + 28, 27 + 41 + 16 + 28 + 27}
	wantInvalid := []bool{false, false, true, false, false}
	for split := 0; split <= len(stream); split++ {
		var sc replyScanner
		sc.bad = '?'
		var ends []int
		var invs []bool
		off := 0
		for _, chunk := range []string{stream[:split], stream[split:]} {
			p := []byte(chunk)
			for len(p) > 0 {
				if len(ends) == len(kinds) {
					t.Fatalf("split %d: bytes left over: %q", split, p)
				}
				n, done, inv := sc.scan(p, kinds[len(ends)])
				p = p[n:]
				off += n
				if done {
					ends = append(ends, off)
					invs = append(invs, inv)
				}
			}
		}
		if len(ends) != len(want) {
			t.Fatalf("split %d: %d replies %v, want %v", split, len(ends), ends, want)
		}
		for i := range want {
			if ends[i] != want[i] || invs[i] != wantInvalid[i] {
				t.Fatalf("split %d: ends %v invalid %v, want %v %v", split, ends, invs, want, wantInvalid)
			}
		}
	}
}

// fakeClock is a timeline: now moves only when the test says so.
type fakeClock struct{ t time.Duration }

func (c *fakeClock) now() time.Duration    { return c.t }
func (c *fakeClock) sleep(d time.Duration) { c.t += d }

// TestOpenLoopLatencyFromIntendedTime stalls the sender and checks that every request queued
// behind the stall is charged from its intended send time, not from when it was written.
func TestOpenLoopLatencyFromIntendedTime(t *testing.T) {
	clk := &fakeClock{}
	corp, err := newCorpus(&options{scenario: "iamat", clients: 10, prefix: "c", radius: "1", bound: 1}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	q := &pending{}
	var wire bytes.Buffer
	s := &sender{
		p:   pacer{s: schedule{rate: 1000}, conn: 0, nconn: 1},
		q:   q,
		st:  &stream{c: corp, nconn: 1},
		clk: clk,
		w:   &wire,
	}
	rc := &receiver{q: q, sc: replyScanner{bad: '?'}}

	// t=0: request 0 is due.
	if n, _ := s.step(clk.t); n != 1 {
		t.Fatalf("at 0: sent %d, want 1", n)
	}
	// The server answers at 0.5 ms.
	if err := rc.feed([]byte("AT S +0.000000000 c0 +1+2 3\n"), 500*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if len(rc.lats) != 1 || rc.lats[0] != int64(500*time.Microsecond) {
		t.Fatalf("latencies %v, want [0.5ms]", rc.lats)
	}
	// The sender stalls until 10 ms: requests 1..10 are due and go out together.
	clk.t = 10 * time.Millisecond
	if n, _ := s.step(clk.t); n != 10 {
		t.Fatalf("at 10ms: sent %d, want 10", n)
	}
	if got := bytes.Count(wire.Bytes(), []byte("\n")); got != 11 {
		t.Fatalf("wire holds %d lines, want 11", got)
	}
	// All ten replies arrive at 12 ms: latencies 11, 10, ..., 2 ms.
	replies := bytes.Repeat([]byte("AT S +0.000000000 c0 +1+2 3\n"), 10)
	if err := rc.feed(replies, 12*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if len(rc.lats) != 10 {
		t.Fatalf("%d latencies, want 10", len(rc.lats))
	}
	for i, l := range rc.lats {
		want := time.Duration(11-i) * time.Millisecond
		if time.Duration(l) != want {
			t.Errorf("request %d: latency %v, want %v (from its intended time)", i+1, time.Duration(l), want)
		}
	}
	// Nothing is due before 11 ms.
	clk.t = 10*time.Millisecond + 999*time.Microsecond
	if n, _ := s.step(clk.t); n != 0 {
		t.Errorf("at 10.999ms: sent %d, want 0", n)
	}
	if err := rc.feed([]byte("AT x\n"), clk.t); err == nil {
		t.Error("a reply with nothing pending was accepted")
	}
}

func TestScheduleSpreadsConnections(t *testing.T) {
	s := schedule{rate: 1000}
	p0 := pacer{s: s, conn: 0, nconn: 4}
	p3 := pacer{s: s, conn: 3, nconn: 4}
	if p0.next() != 0 || p3.next() != 3*time.Millisecond {
		t.Errorf("first intended times %v %v, want 0 3ms", p0.next(), p3.next())
	}
	if _, n := p3.take(10 * time.Millisecond); n != 2 { // requests 3 and 7
		t.Errorf("connection 3 took %d by 10ms, want 2", n)
	}
	lim := pacer{s: s, nconn: 1, limit: 5}
	if _, n := lim.take(time.Second); n != 5 {
		t.Errorf("limited pacer took %d, want 5", n)
	}
}

func TestProbeMatching(t *testing.T) {
	ln := testutil.Listen(t)
	p := newProbe(ln, "run1-")
	clk := &fakeClock{}
	p.sched, p.clk, p.measure = schedule{rate: 1000}, clk, 2*time.Millisecond
	lines := []struct {
		line string
		at   time.Duration
	}{
		{"AT Hill +0.1 run1-x5 +1+2 3.0\n", 6 * time.Millisecond},      // seq 5 meant for 5ms: 1ms
		{"AT Hill +0.1 run1-x5 +1+2 3.0\n", 7 * time.Millisecond},      // duplicate
		{"AT Hill +0.1 run1-x1 +1+2 3.0\n", 9 * time.Millisecond},      // warm-up request: not timed
		{"AT Hill +0.1 run0-x7 +1+2 3.0\n", 9 * time.Millisecond},      // another run
		{"AT Hill +0.1 run1-xz +1+2 3.0\n", 9 * time.Millisecond},      // not a number
		{"IAMAT run1-x8 +1+2 3.0\n", 9 * time.Millisecond},             // not an AT line
		{"AT\tHill  +0.1 run1-x8 +1+2 3.0\r\n", 12 * time.Millisecond}, // seq 8: 4ms
	}
	for _, l := range lines {
		p.line([]byte(l.line), l.at)
	}
	if p.received != 2 || p.dups != 1 {
		t.Fatalf("received %d dups %d, want 2 1", p.received, p.dups)
	}
	s := summarize(p.hist)
	if s.Count != 2 || s.Max < 3990 || s.Max > 4010 || s.P50 < 995 || s.P50 > 1005 {
		t.Errorf("summary %+v, want 1ms and 4ms", s)
	}
	select {
	case <-p.warm:
		t.Fatal("warm closed without a warm-up line")
	default:
	}
	p.line([]byte("AT Hill +0.1 run1-w3 +1+2 3.0\n"), 0)
	select {
	case <-p.warm:
	default:
		t.Fatal("a warm-up line did not open the gate")
	}
}

// TestPropagationEndToEnd runs the propagation scenario against a server that floods every
// AT line to the probe over a link it dials.
func TestPropagationEndToEnd(t *testing.T) {
	probeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var link net.Conn
	flood := func(at []byte) {
		mu.Lock()
		defer mu.Unlock()
		if link == nil {
			c, err := net.Dial("tcp", probeLn.Addr().String())
			if err != nil {
				return
			}
			link = c
		}
		link.Write(at)
	}
	s := startLineServer(t, flood)
	t.Cleanup(func() {
		mu.Lock()
		if link != nil {
			link.Close()
		}
		mu.Unlock()
	})
	o, err := parseFlags([]string{"-scenario", "propagation", "-addr", s.addr(), "-c", "2", "-rate", "1000", "-d", "300ms", "-quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(context.Background(), o, io.Discard)
	r.probeLn = probeLn
	res, err := r.propagation()
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 300 || res.Received != 300 || res.Lost != 0 || res.Errors != 0 {
		t.Fatalf("sent %d received %d lost %d errors %d %v", res.Sent, res.Received, res.Lost, res.Errors, res.ErrorSamples)
	}
	if res.Latency.Count != 300 || res.ReplyLatency == nil || res.ReplyLatency.Count != 300 {
		t.Errorf("latency counts %d / %v", res.Latency.Count, res.ReplyLatency)
	}
	path := filepath.Join(t.TempDir(), "prop.hdr")
	if err := writeHdrLog(path, time.Now(), r.hists); err != nil {
		t.Fatal(err)
	}
	hs := readHdrLog(t, path)
	if len(hs) != 2 || hs[0].Tag() != "latency" || hs[1].Tag() != "reply" || summarize(hs[0]) != res.Latency || summarize(hs[1]) != *res.ReplyLatency {
		t.Errorf("-hdr-out of a propagation run: %d histograms, want latency and reply as in the result", len(hs))
	}
}

func TestIdleReadsRSS(t *testing.T) {
	s := startLineServer(t, nil)
	r := runJSON(t, "-scenario", "idle", "-addr", s.addr(), "-c", "20", "-pid", itoa(os.Getpid()), "-settle", "10ms")
	if r.IdleConns != 20 || r.RSSBefore <= 0 || r.RSSAfter <= 0 || r.Errors != 0 {
		t.Fatalf("%+v", r)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseRSS(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"Name:\tx\nVmRSS:\t  1234 kB\nVmHWM:\t 9 kB\n", 1234 << 10, true},
		{"Name:\tx\n", 0, false},
		{"VmRSS:\t12 MB\n", 0, false},
	}
	for _, tc := range tests {
		got, err := parseRSS([]byte(tc.in))
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseRSS(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-c", "0"},
		{"-scenario", "propagation"},
		{"-scenario", "idle"},
		{"-check", "-rate", "10"},
		{"-scenario", "raw", "-template", "SET k v"},
		{"extra"},
	} {
		err := run(context.Background(), append(args, "-addr", "127.0.0.1:1"), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func TestGeneratorAllocs(t *testing.T) {
	corp, err := newCorpus(&options{scenario: "mixed", clients: 100, prefix: "c", radius: "1", bound: 1, mix: 0.3}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{c: corp, nconn: 3}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = buf[:0]
		for range 16 {
			buf, _ = st.next(buf, 0)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

func BenchmarkScan(b *testing.B) {
	data := bytes.Repeat([]byte("AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\n"), 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var sc replyScanner
		p := data
		for len(p) > 0 {
			n, _, _ := sc.scan(p, kindIAMAT)
			p = p[n:]
		}
	}
}

// readHdrLog reads every histogram of an HdrHistogram log.
func readHdrLog(t *testing.T, path string) []*hdrhistogram.Histogram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr := hdrhistogram.NewHistogramLogReader(f)
	var hs []*hdrhistogram.Histogram
	for {
		h, err := lr.NextIntervalHistogram()
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		if h == nil {
			return hs
		}
		hs = append(hs, h)
	}
}

// TestHdrOutRoundTrip writes a run's histogram with -hdr-out and reads it back with
// HdrHistogram's log reader: the same count and percentiles as the JSON result.
func TestHdrOutRoundTrip(t *testing.T) {
	s := startLineServer(t, nil)
	path := filepath.Join(t.TempDir(), "run.hdr")
	r := runJSON(t, "-addr", s.addr(), "-c", "2", "-P", "8", "-n", "2000", "-d", "1m", "-hdr-out", path)
	hs := readHdrLog(t, path)
	if len(hs) != 1 {
		t.Fatalf("%d histograms in the log, want 1", len(hs))
	}
	h := hs[0]
	if h.Tag() != "latency" || h.TotalCount() != 2000 || h.TotalCount() != r.Latency.Count {
		t.Fatalf("histogram tag %q count %d; want latency and %d", h.Tag(), h.TotalCount(), r.Latency.Count)
	}
	if got := summarize(h); got != r.Latency {
		t.Errorf("percentiles read back %+v, want %+v", got, r.Latency)
	}
	if h.StartTimeMs() <= 0 || h.EndTimeMs() < h.StartTimeMs() {
		t.Errorf("interval %d..%d ms", h.StartTimeMs(), h.EndTimeMs())
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "#[Histogram log format version 1.3]") || !strings.Contains(string(b), "Tag=latency,") {
		t.Errorf("not HdrHistogram's log format:\n%s", b)
	}
	if err := run(context.Background(), []string{"-addr", s.addr(), "-n", "1", "-hdr-out", filepath.Join(t.TempDir(), "no", "such", "dir")}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-hdr-out") {
		t.Errorf("an -hdr-out that cannot be written: %v", err)
	}
}

// TestProgressCountsMeasuredOnly runs a WHATSAT load, which first sends an IAMAT for every
// client id, with a warm-up: the progress bar's count is the measured replies alone.
func TestProgressCountsMeasuredOnly(t *testing.T) {
	s := startLineServer(t, nil)
	o, err := parseFlags([]string{"-scenario", "whatsat", "-addr", s.addr(), "-c", "2", "-clients", "500",
		"-warmup", "100ms", "-d", "300ms", "-quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(context.Background(), o, io.Discard)
	res, err := r.load()
	if err != nil {
		t.Fatal(err)
	}
	if res.Replies == 0 || r.st.progress.Load() != res.Replies {
		t.Errorf("progress counted %d replies, the run measured %d", r.st.progress.Load(), res.Replies)
	}
}

func TestLiveProgress(t *testing.T) {
	st := newStats(2)
	lv := live{st: st}
	t0 := time.Unix(1000, 0)
	if _, _, _, ok := lv.sample(t0); ok {
		t.Error("a first sample gave figures")
	}
	// 1,000 replies in 0.5 s: 990 at 100 us, 10 at 5 ms.
	for i := range 1000 {
		sh := st.shard(i)
		v := int64(100e3)
		if i%100 == 0 {
			v = 5e6
		}
		sh.hist.RecordValue(v)
	}
	st.progress.Add(1000)
	n, rate, p99, ok := lv.sample(t0.Add(500 * time.Millisecond))
	if !ok || n != 1000 || rate != 0 {
		t.Errorf("after 0.5 s: %d replies, rate %v, ok %v; want 1000, no rate yet", n, rate, ok)
	}
	n, rate, p99, _ = lv.sample(t0.Add(time.Second))
	if n != 1000 || rate != 1000 || p99 < 99*time.Microsecond || p99 > 101*time.Microsecond {
		t.Errorf("after 1 s: %d replies, %v/s, p99 %v; want 1000, 1000/s, 100us", n, rate, p99)
	}
	// The next second: 10 replies, all slow. The p99 is theirs alone.
	for range 10 {
		st.shard(0).hist.RecordValue(5e6)
	}
	st.progress.Add(10)
	n, rate, p99, _ = lv.sample(t0.Add(2 * time.Second))
	if n != 1010 || rate != 10 || p99 < 4990*time.Microsecond || p99 > 5010*time.Microsecond {
		t.Errorf("after 2 s: %d replies, %v/s, p99 %v; want 1010, 10/s, 5ms", n, rate, p99)
	}
	if got := progressText("iamat", 1010, 10, 5*time.Millisecond); got != "iamat 1010 replies 10/s p99 5ms" {
		t.Errorf("progressText = %q", got)
	}
}
