package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
	"github.com/herd-project/herd/internal/testutil"

	"github.com/herd-project/herd/internal/ephemeral"
)

// TestSmoke builds every implementation, starts each one and checks its replies
// (go run ./bench/harness -smoke). It needs redis-server and /usr/bin/python3 with aiohttp.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke test of every server implementation: skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("smoke test needs redis-server in PATH (apt-get install redis-server)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import aiohttp").Run(); err != nil {
		t.Skip("smoke test needs /usr/bin/python3 with aiohttp (apt-get install python3-aiohttp)")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := findRepo(wd)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err = run(context.Background(), []string{"-smoke", "-repo", repo, "-work", t.TempDir()}, &out, &errb)
	t.Logf("smoke:\n%s", out.String())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, errb.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(line, "not available") {
			t.Logf("not checked: %s", line)
		}
	}
}

func TestTopologyConfig(t *testing.T) {
	tp, err := newTopology("five")
	if err != nil {
		t.Fatal(err)
	}
	tp.probe, tp.probeOf = "127.0.0.1:1", "Campbell"
	tp.placesURL, tp.placesMax = "http://127.0.0.1:2", 1000
	cfg := tp.toml()
	for _, want := range []string{
		`provider = "google"`, `url = "http://127.0.0.1:2"`, "max_conns = 1000", `dir = "off"`,
		`peers = ["Singleton", "Smith", "Probe"]`, "name = \"Probe\"\naddr = \"127.0.0.1:1\"\nlink = \"plain\"\npeers = [\"Campbell\"]",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	ports := map[int]bool{}
	for _, s := range tp.servers {
		if s.port == 0 || ports[s.port] || s.peerPort == 0 || ports[s.peerPort] || s.port == s.peerPort {
			t.Errorf("server %s has ports %d and %d (duplicate or zero)", s.name, s.port, s.peerPort)
		}
		if !strings.Contains(cfg, fmt.Sprintf("addr = %q\npeer_addr = \"127.0.0.1:%d\"", s.addr(), s.peerPort)) {
			t.Errorf("config lacks %s's peer_addr:\n%s", s.name, cfg)
		}
		ports[s.port], ports[s.peerPort] = true, true
	}
	if _, err := newTopology("seven"); err == nil {
		t.Error("unknown topology accepted")
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkIAMAT-2            	 2009056	      1161 ns/op	       0 B/op	       0 allocs/op
BenchmarkIAMATPipelined-2   	  149875	     11780.5 ns/op	      16 B/op	       1 allocs/op
BenchmarkOther-2   	  10	     5 ns/op
PASS
`
	got := parseBench(out)
	want := []allocLine{
		{Name: "BenchmarkIAMAT-2", NsPerOp: 1161, BytesPerOp: 0, AllocsPerOp: 0},
		{Name: "BenchmarkIAMATPipelined-2", NsPerOp: 11780.5, BytesPerOp: 16, AllocsPerOp: 1},
		{Name: "BenchmarkOther-2", NsPerOp: 5, AllocsPerOp: -1},
	}
	if len(got) != len(want) {
		t.Fatalf("parseBench: %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		g.Line = ""
		if g != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, g, want[i])
		}
	}
}

func TestSummarizeVals(t *testing.T) {
	tests := []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{3}, spread{1, 3, 3, 3}},
		{[]float64{5, 1, 3}, spread{3, 3, 1, 5}},
		{[]float64{4, 1, 3, 2}, spread{4, 2.5, 1, 4}},
	}
	for _, tc := range tests {
		if got := summarizeVals(tc.in); got != tc.want {
			t.Errorf("summarizeVals(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func res(thr, p99 float64) *result.Result {
	return &result.Result{Throughput: thr, Latency: result.Summary{Count: 1, P99: p99}, Seconds: 1}
}

// synthetic returns a harness holding made-up measurements.
func synthetic() *harness {
	h := &harness{o: &options{runs: 3, charts: "bench/charts"}, t: &tools{missing: map[string]string{implUvloop: "no uvloop"}}}
	add := func(sc, impl string, run int, r *result.Result) {
		h.ms = append(h.ms, measurement{Scenario: sc, Impl: impl, Run: run, Res: r})
	}
	for run := 1; run <= 3; run++ {
		f := float64(run)
		add("p16", implHerd, run, res(400e3+f*1e3, 900))
		add("p16", implRedis, run, res(300e3, 800))
		add("p1", implHerd, run, res(90e3, 900))
		add("p1", implRedis, run, res(100e3, 800))
		add("prop1k", implHerd, run, res(0, 500+f))
		add("idle10k", implHerd, run, &result.Result{RSSPerConn: 2000})
		add("idle10k", implBaseline, run, &result.Result{RSSPerConn: 10000})
	}
	h.ms = append(h.ms, measurement{Scenario: "herd5", Impl: implAsyncio, Run: 1, Err: "not available: no python"})
	for run := 1; run <= 3; run++ {
		f := float64(run)
		// herd5: the reactor 6x the best asyncio + uvloop design, 1.5x in run 3.
		add("herd5", implHerd, run, res(30e3, 900))
		best := 5e3
		if run == 3 {
			best = 20e3
		}
		add("herd5", implUvBest, run, res(best, 9000))
		for _, n := range []int{10000, 100000, 1000000} {
			h.ms = append(h.ms, measurement{Scenario: groupRecords + sizeName(n), Impl: implHerdNoLg, Run: run, Size: n,
				Res: res(500e3-float64(n)/10, 1000), RSSPerRecord: 200 + f, HeapPerRecord: 150})
			h.ms = append(h.ms, measurement{Scenario: groupResync + sizeName(n), Impl: implHerd, Run: run, Size: n,
				ResyncS: float64(n) / 1e6, ResyncTookS: float64(n) / 2e6, Received: n})
		}
		for _, n := range []int{2, 5, 9} {
			h.ms = append(h.ms, measurement{Scenario: groupChain + strconv.Itoa(n), Impl: implHerd, Run: run, Size: n,
				Res: withHist(res(0, 100*float64(n)+f), int64(n)*100e3)})
		}
		add("p1", implBaseline, run, withHist(res(50e3, 2000), 2e6))
		m := measurement{Scenario: "whatsat", Impl: implUvBest, Run: run, Res: res(1000, 50e3), ServerCPU: 0.5}
		h.ms = append(h.ms, m)
	}
	h.ms = append(h.ms, measurement{Scenario: groupResync + "1m", Impl: implHerd, Run: 4, Err: "preload: too slow"})
	for i := range h.ms {
		m := &h.ms[i]
		if m.Scenario == "p1" && m.Impl == implHerd {
			m.Res = withHist(m.Res, 1e6)
			m.AllocsPerReq, m.AllocBytesPerReq, m.HasAllocs = 0.25, 12, true
		}
	}
	return h
}

// withHist gives r a latency histogram of 1,000 values from 1 us to about top ns.
func withHist(r *result.Result, top int64) *result.Result {
	hist := hdrhistogram.New(1000, 100e9, 3)
	for i := int64(1); i <= 1000; i++ {
		_ = hist.RecordValue(1000 + top*i*i/1e6)
	}
	r.Hists = map[string]*hdrhistogram.Histogram{"latency": hist}
	return r
}

func TestTargets(t *testing.T) {
	h := synthetic()
	got := map[string]string{}
	for _, tg := range h.targets(extras{allocErr: "not available: no benchmark"}) {
		got[tg.ID+" "+tg.What] = tg.Verdict + " " + tg.Measured
	}
	check := func(key, want string) {
		t.Helper()
		for k, v := range got {
			if strings.HasPrefix(k, key) {
				if !strings.HasPrefix(v, want) {
					t.Errorf("%s: %q, want prefix %q", k, v, want)
				}
				return
			}
		}
		t.Errorf("no target %q in %v", key, got)
	}
	check("1a herd reactor (log on)", "pass 1.34x")
	check("1b herd reactor (log on)", "FAIL 0.90x")
	check("2b", "pass 0.20x")
	check("3 herd reactor (log on) vs Python asyncio,", "n/a n/a: not available: no python")
	check("4a herd reactor (log on)", "pass 502 us")
	check("4b herd reactor (log on)", "n/a")
	check("6", "n/a not available: no benchmark")
	check("3b herd reactor (log on) vs Python asyncio + uvloop (best design)", "pass 6.00x (1.50-6.00)")
	check("3b herd reactor (log off)", "n/a")
}

func TestMarkdownKeepsHandWritten(t *testing.T) {
	h := synthetic()
	dir := t.TempDir()
	h.o.repo = dir
	h.o.out = "BENCHMARKS.md"
	h.o.charts = filepath.Join(dir, "charts")
	old := "# old\n" + handBegin + "\n\nWords written by hand.\n\n" + handEnd + "\nold tail\n" +
		asyncioBegin + "\nWhat the seed report got right.\n" + asyncioEnd + "\n"
	testutil.WriteFile(t, dir, "BENCHMARKS.md", old)
	h.stderr, h.stdout = io.Discard, io.Discard
	h.t.repo = dir
	if err := h.writeReport(context.Background(), extras{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{"Words written by hand.", "## Targets", "| 1a |", "## Where the reactor is not faster",
		"did 0.90x", "goroutine baseline",
		asyncioBegin + "\n\nWhat the seed report got right.\n\n" + asyncioEnd,
		"## Figures for \"The asyncio report, revisited\"",
		"| herd reactor (log on) | 2,000 B | 0.25 | 12.0 B |",
		"whisker spans the minimum to the maximum over the runs",
		"#### Resync time of a restarted server, by records the herd holds (`resync`)",
		"herd reactor (log on), 1,000,000: 1 of its runs failed (preload: too slow).",
		"| goroutine baseline | 10,000 | n/a: not measured |",
		"| herd reactor (log off) | 100,000 | 202 (201-203) bytes | 150 (150-150) bytes | 490,000 (490,000-490,000) |",
		"| herd reactor (log on) | 10,000 | 10 ms (10 ms-10 ms) | 5.00 ms | 10,000 |",
		"| herd reactor (log on) | 9 | ",
		"![p1 latency by percentile](" + filepath.ToSlash(filepath.Join(dir, "charts", "p1-latency.png")) + ")",
		"![Propagation p99 along a chain at 1,000 updates/s](" + filepath.ToSlash(filepath.Join(dir, "charts", "chain.png")) + ")",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Every chart written is linked from the text, and every chart linked was written.
	ents, err := os.ReadDir(filepath.Join(dir, "charts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.Contains(md, "/charts/"+e.Name()+")") {
			t.Errorf("chart %s is not linked from the report", e.Name())
		}
	}
	for _, want := range []string{"p16.png", "p1.png", "p1-latency.png", "idle10k.png", "herd5.png", "records-memory.png",
		"records-heap.png", "records-rate.png", "resync.png", "chain.png", "chain-latency.png"} {
		if _, err := os.Stat(filepath.Join(dir, "charts", want)); err != nil {
			t.Errorf("chart not written: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "charts", "p16-latency.png")); err == nil {
		t.Error("a latency chart was written for p16, whose runs have no histogram")
	}
	if strings.Contains(md, "old tail") {
		t.Error("report kept text outside the hand-written section")
	}
}

func TestModuleVersion(t *testing.T) {
	dir := t.TempDir()
	gomod := testutil.WriteFile(t, dir, "go.mod", "module x\n\nrequire (\n\tgithub.com/panjf2000/gnet/v2 v2.9.7 // indirect\n)\nrequire github.com/a/b v1.0.0\n")
	if v := moduleVersion(gomod, "github.com/panjf2000/gnet/v2"); v != "v2.9.7" {
		t.Errorf("gnet version %q", v)
	}
	if v := moduleVersion(gomod, "github.com/a/b"); v != "v1.0.0" {
		t.Errorf("a/b version %q", v)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-only", "nope"}, {"-impls", "nope"}, {"-runs", "0"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
	o, err := parseFlags([]string{"-only", "p16,p1", "-impls", "herd,redis"}, io.Discard)
	if err != nil || !o.only["p1"] || !o.impls["redis"] || len(o.only) != 2 {
		t.Errorf("parseFlags: %+v, %v", o, err)
	}
}

func TestFreePortBelowEphemeralRange(t *testing.T) {
	low := ephemeral.Low()
	seen := map[int]bool{}
	for range 20 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if low-10000 >= 1000 && (p < 10000 || p >= low) {
			t.Errorf("port %d outside 10000-%d", p, low-1)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want portRange
		ok   bool
	}{
		{"20000-29999", portRange{20000, 29999}, true},
		{" 40000 - 40099 ", portRange{40000, 40099}, true},
		{"20000", portRange{}, false},
		{"20000-", portRange{}, false},
		{"a-b", portRange{}, false},
		{"30000-20000", portRange{}, false},
		{"0-200", portRange{}, false},
		{"65500-65536", portRange{}, false},
		{"20000-20010", portRange{}, false}, // too few
	} {
		got, err := parsePorts(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parsePorts(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if _, err := parseFlags([]string{"-ports", "1-2"}, io.Discard); err == nil {
		t.Error("-ports 1-2 accepted")
	}
	o, err := parseFlags([]string{"-ports", "21000-21999"}, io.Discard)
	if err != nil || o.ports == nil || *o.ports != (portRange{21000, 21999}) {
		t.Errorf("-ports 21000-21999: %+v, %v", o, err)
	}
}

// withPorts makes freePort use r for the rest of the test.
func withPorts(t *testing.T, r portRange) {
	old := ports.Load()
	setPorts(r)
	t.Cleanup(func() { ports.Store(old) })
}

// TestPortRange checks that every port of a run comes from -ports: the ones freePort hands
// out, and so each server's client and peer port in a topology's config, and that a range
// with no free port left is a clear error.
func TestPortRange(t *testing.T) {
	r := portRange{24100, 24199}
	withPorts(t, r)
	seen := map[int]bool{}
	for range 50 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < r.lo || p > r.hi || seen[p] {
			t.Fatalf("port %d: outside %v or handed out twice", p, r)
		}
		seen[p] = true
	}
	tp, err := newTopology("five")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tp.servers {
		for _, p := range []int{s.port, s.peerPort} {
			if p < r.lo || p > r.hi {
				t.Errorf("server %s has port %d, outside %v", s.name, p, r)
			}
		}
	}

	// A range whose every port is taken.
	ln := testutil.Listen(t)
	p := ln.Addr().(*net.TCPAddr).Port
	withPorts(t, portRange{p, p})
	if got, err := freePort(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no free port in %d-%d", p, p)) {
		t.Errorf("freePort with its one port taken = %d, %v; want an error naming the range", got, err)
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1234 (herd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0", 3.0, true},
		{"99 (a b) c) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 0.1, true},
		{"1234 herd S", 0, false},
		{"1 (x) S 1 2", 0, false},
	}
	for _, tc := range tests {
		got, err := parseStatCPU(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if v, err := cpuSeconds(os.Getpid()); err != nil || v < 0 {
		t.Errorf("cpuSeconds(self) = %v, %v", v, err)
	}
}

func TestHerdArgv(t *testing.T) {
	tl := &tools{bin: map[string]string{"herd": "/b/herd", "baseline": "/b/baseline", "inproc": "/b/inproc"}}
	plain, err := newTopology("five")
	if err != nil {
		t.Fatal(err)
	}
	probed, err := newTopology("five")
	if err != nil {
		t.Fatal(err)
	}
	probed.probe, probed.probeOf = "127.0.0.1:1", "Campbell"
	five := "Hill Jaquez Smith Singleton Campbell"
	for _, tc := range []struct {
		impl string
		tp   *topology
		want string
	}{
		{implHerd, plain, "/b/herd run -config F"},
		{implHerdNoLg, plain, "/b/herd run -config F"},
		{implBaseline, plain, "/b/baseline run -config F"},
		{implHerd, probed, "/b/inproc -impl herd -config F " + five},
		{implBaseline, probed, "/b/inproc -impl baseline -config F " + five},
		{implAsyncio, plain, ""},
		{implUvloop, probed, ""},
	} {
		got := strings.Join(tl.herdArgv(tc.impl, "F", tc.tp), " ")
		if got != tc.want {
			t.Errorf("herdArgv(%s, probe %q) = %q, want %q", tc.impl, tc.tp.probe, got, tc.want)
		}
	}
}

func TestParseStatBusy(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want float64
		ok   bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 20 30 5000 40 5 5 3 7 0\ncpu0 1 2 3 4\n", 1.50, true},
		{"cpu  100 0 100 900 0\n", 2.00, true},
		{"cpu0 1 2 3 4 5\n", 0, false},
		{"cpu  1 x 3 4 5\n", 0, false},
		{"", 0, false},
	} {
		got, err := parseStatBusy(tc.stat)
		if (err == nil) != tc.ok || (tc.ok && math.Abs(got-tc.want) > 1e-9) {
			t.Errorf("parseStatBusy(%q) = %v, %v; want %v, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseResync(t *testing.T) {
	log := `time=2026-11-30T10:00:00.100Z level=INFO msg=listening server=Jaquez addr=127.0.0.1:1 peer_addr=127.0.0.1:2
time=2026-11-30T10:00:00.105Z level=INFO msg="link up" server=Jaquez peer=Hill remote=127.0.0.1:3 dialled_by=Jaquez records=0
time=2026-11-30T10:00:00.350Z level=INFO msg="resync done" server=Jaquez peer=Hill sent=0 received=100000 bytes=9000000 took=244.5ms
`
	rt, err := parseResync(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if rt.total != 250*time.Millisecond || rt.took != 244500*time.Microsecond || rt.received != 100000 {
		t.Errorf("parseResync = %+v, want 250ms, 244.5ms, 100000", rt)
	}
	if _, err := parseResync(strings.NewReader("time=2026-11-30T10:00:00.100Z level=INFO msg=listening\n")); err == nil {
		t.Error("a log with no resync done parsed")
	}
	f := logFields(`time=x level=INFO msg="a \"quoted\" one" in="IAMAT a b c" n=3`)
	if f["msg"] != `a "quoted" one` || f["in"] != "IAMAT a b c" || f["n"] != "3" || f["level"] != "INFO" {
		t.Errorf("logFields = %q", f)
	}
}

func TestMetricValue(t *testing.T) {
	text := `# HELP go_memstats_mallocs_total Total number of heap objects allocated.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total{server="Hill"} 1.234e+06
go_memstats_mallocs_total_other 5
herd_records{server="Hill"} 42
go_memstats_alloc_bytes_total 7
`
	for _, tc := range []struct {
		name string
		want float64
		ok   bool
	}{
		{"go_memstats_mallocs_total", 1.234e6, true},
		{"herd_records", 42, true},
		{"go_memstats_alloc_bytes_total", 7, true},
		{"go_memstats", 0, false},
		{"nothing", 0, false},
	} {
		if v, ok := metricValue(text, tc.name); v != tc.want || ok != tc.ok {
			t.Errorf("metricValue(%s) = %v, %v; want %v, %v", tc.name, v, ok, tc.want, tc.ok)
		}
	}
}

func TestParseCallgrindTotals(t *testing.T) {
	out := "version: 1\ncreator: callgrind-3.19.0\ndesc: Trigger: dump 1000\nevents: Ir\nfn=(1) main\n0 5\nsummary: 16615088\ntotals: 16615088\n"
	if v, err := parseCallgrindTotals(strings.NewReader(out)); err != nil || v != 16615088 {
		t.Errorf("parseCallgrindTotals = %v, %v", v, err)
	}
	if v, err := parseCallgrindTotals(strings.NewReader("events: Ir\nsummary: 12\n")); err != nil || v != 12 {
		t.Errorf("summary only: %v, %v", v, err)
	}
	for _, bad := range []string{"events: Ir\n", "totals: many\n"} {
		if _, err := parseCallgrindTotals(strings.NewReader(bad)); err == nil {
			t.Errorf("parseCallgrindTotals(%q) succeeded", bad)
		}
	}
}

func TestChainTopology(t *testing.T) {
	tp, err := newTopology("chain5")
	if err != nil {
		t.Fatal(err)
	}
	tp.probe, tp.probeOf = "127.0.0.1:1", "S5"
	if len(tp.servers) != 5 {
		t.Fatalf("%d servers", len(tp.servers))
	}
	cfg := tp.toml()
	for _, want := range []string{"name = \"S1\"", "peers = [\"S2\"]", "peers = [\"S5\"]", "name = \"S5\"", "peers = [\"Probe\"]"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("chain config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "admin_addr") {
		t.Error("admin listeners without takeAdminPorts")
	}
	if err := tp.takeAdminPorts(implHerd); err != nil || !strings.Contains(tp.toml(), "admin_addr = \"127.0.0.1:") {
		t.Errorf("takeAdminPorts: %v", err)
	}
	for _, bad := range []string{"chain1", "chain65", "chainx"} {
		if _, err := newTopology(bad); err == nil {
			t.Errorf("newTopology(%q) succeeded", bad)
		}
	}
	if _, err := parseFlags([]string{"-only", "records,chain5,instructions"}, io.Discard); err != nil {
		t.Errorf("-only with a group, a size and instructions: %v", err)
	}
}

func TestWantLog(t *testing.T) {
	for _, tc := range []struct {
		vs   []float64
		want bool
	}{
		{[]float64{1, 2, 19}, false},
		{[]float64{1, 20}, true},
		{[]float64{0.5, 4000}, true},
		{[]float64{0, 4000}, false}, // a log axis cannot show 0
	} {
		if got := wantLog(tc.vs); got != tc.want {
			t.Errorf("wantLog(%v) = %v", tc.vs, got)
		}
	}
	ts := percentileTicks{}.Ticks(0, 3)
	var labels []string
	for _, tk := range ts {
		labels = append(labels, tk.Label)
	}
	if strings.Join(labels, " ") != "0% 90% 99% 99.9%" {
		t.Errorf("percentile ticks %q", labels)
	}
}

func TestInstructionTable(t *testing.T) {
	h := synthetic()
	x := extras{instrRan: true, instr: []instrLine{
		{Impl: implHerdNoLg, Kind: "iamat", PerReq: summarizeVals([]float64{7021, 6971, 7241})},
		{Impl: implHerdNoLg, Kind: "whatsat", PerReq: summarizeVals([]float64{1.4e6})},
		{Impl: implBaseline, Kind: "iamat", Err: "callgrind_control -z: exit status 1"},
	}}
	var b strings.Builder
	h.instructionTable(&b, x.instr, "")
	for _, want := range []string{
		"| herd reactor (log off) | 7,021 (6,971-7,241) | 1,400,000 |",
		"| goroutine baseline | n/a: callgrind_control -z: exit status 1 | n/a: not measured |",
		"1000 and 11000 for IAMAT, 100 and 600 for WHATSAT",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("instruction table lacks %q:\n%s", want, b.String())
		}
	}
	var tg target
	for _, tt := range h.targets(x) {
		if tt.ID == "7" {
			tg = tt
		}
	}
	if tg.Measured != "herd, no log IAMAT: 7,021; herd, no log WHATSAT: 1,400,000" {
		t.Errorf("target 7: %+v", tg)
	}
	b.Reset()
	h.instructionTable(&b, nil, "not available: valgrind not found")
	if !strings.Contains(b.String(), "not available: valgrind not found") {
		t.Errorf("a missing valgrind is not said:\n%s", b.String())
	}
}

func TestPlacesPathTable(t *testing.T) {
	h := synthetic()
	h.t.missing[rtNode] = "node not found in PATH (Node.js is not installed here)"
	h.ms = append(h.ms, measurement{Scenario: "placespath", Impl: rtNode, Run: 1, Err: "not available: " + h.t.missing[rtNode]})
	for run := 1; run <= 3; run++ {
		r := res(3600+float64(run), 52e3)
		r.Latency.P50 = 51e3
		r.CPU.PerRequestUs = 200 + float64(run)
		h.ms = append(h.ms, measurement{Scenario: "placespath", Impl: rtGo, Run: run, Res: r, PlacesPerReq: 20})
	}
	py := res(600, 300e3)
	py.CPU.PerRequestUs, py.Latency.P50 = 1500, 250e3
	h.ms = append(h.ms, measurement{Scenario: "placespath", Impl: rtAsyncio, Run: 1, Res: py, PlacesPerReq: 25},
		measurement{Scenario: "placespath", Impl: rtAsyncio, Run: 2, Err: "client: exit status 1: Traceback"})
	h.o.work, h.o.repo = "/w", "/repo"
	h.note("placespath", implLabels[rtGo], []string{"/w/bin/placespath", "-url", "http://127.0.0.1:1", "-d", goSeconds(1500 * time.Millisecond)})
	md := h.markdown(environment{}, extras{}, [2]string{handDefault, asyncioDefault})
	figures := strings.Index(md, "## Figures for \"The asyncio report, revisited\"")
	table := strings.Index(md, "### The Places path alone, by runtime")
	if figures < 0 || table < figures || strings.Count(md, "### The Places path alone") != 1 {
		t.Fatalf("the placespath table is not once among the figures for the revisited report (at %d, figures at %d)", table, figures)
	}
	for _, want := range []string{
		"| Go: fasthttp, codec's cut (the herd's own path) | 3,602 (3,601-3,603) | 51 ms | 52 ms | 0 | 202 us (201 us-203 us) | 73% | 20.0 us (20.0 us-20.0 us) |",
		"| Python: aiohttp on asyncio, json | 600 | 250 ms | 300 ms | 0 | 1.50 ms | 90% | 25.0 us |",
		"| Node.js: http, JSON | n/a: not available: node not found in PATH (Node.js is not installed here) |",
		"Python: aiohttp on asyncio, json: 1 of its runs failed (client: exit status 1: Traceback).",
		"- Node.js: http, JSON: not available: node not found in PATH",
		"$WORK/bin/placespath -url http://127.0.0.1:1 -d 1.5s",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md[table:])
		}
	}
	if s := goSeconds(90 * time.Second); s != "90s" {
		t.Errorf("goSeconds(90s) = %q", s)
	}
	o, err := parseFlags([]string{"-only", "placespath", "-impls", "node-http,go-fasthttp"}, io.Discard)
	if err != nil || !o.only["placespath"] || !o.impls[rtNode] {
		t.Errorf("-only placespath with two of its runtimes: %v", err)
	}
}
