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
	"strings"
	"testing"

	"github.com/herd-project/herd/bench/internal/result"
	"github.com/herd-project/herd/internal/testutil"
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
	return h
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
}

func TestMarkdownKeepsHandWritten(t *testing.T) {
	h := synthetic()
	dir := t.TempDir()
	h.o.repo = dir
	h.o.out = "BENCHMARKS.md"
	h.o.charts = filepath.Join(dir, "charts")
	old := "# old\n" + handBegin + "\n\nWords written by hand.\n\n" + handEnd + "\nold tail\n"
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
		"did 0.90x", "goroutine baseline"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "old tail") {
		t.Error("report kept text outside the hand-written section")
	}
	if _, err := os.Stat(filepath.Join(dir, "charts", "p16.png")); err != nil {
		t.Errorf("chart not written: %v", err)
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
	low := ephemeralLow()
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
	portMu.Lock()
	old := ports
	portMu.Unlock()
	setPorts(r)
	t.Cleanup(func() {
		portMu.Lock()
		ports, nextPort = old, 0
		portMu.Unlock()
	})
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
