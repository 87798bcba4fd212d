package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Markers around the parts of BENCHMARKS.md written by hand; a regenerated report keeps them.
const (
	handBegin = "<!-- BEGIN HAND-WRITTEN: kept as is when the harness regenerates this file -->"
	handEnd   = "<!-- END HAND-WRITTEN -->"
	// The section "The asyncio report, revisited".
	asyncioBegin = "<!-- BEGIN HAND-WRITTEN asyncio: kept as is when the harness regenerates this file -->"
	asyncioEnd   = "<!-- END HAND-WRITTEN asyncio -->"
)

const asyncioDefault = `_To be written after the final run: the seed report's claims about asyncio (section 8,
"Performance Implications", and its recommendation), read against the figures above._`

// handWritten returns the text between begin and end in old, or def if old has none.
func handWritten(old, begin, end, def string) string {
	if _, rest, ok := strings.Cut(old, begin); ok {
		if body, _, ok := strings.Cut(rest, end); ok {
			return strings.TrimSpace(body)
		}
	}
	return def
}

const handDefault = `_To be written after the final run: what the numbers mean, which results are limited by the
load generator or the two shared cores rather than by the servers, and what would change them._`

// target is one goal of the report with its measured figure.
type target struct {
	ID       string
	What     string
	Goal     string
	Measured string
	Verdict  string // "pass", "FAIL", "n/a" or "info"
}

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

func fmtRatio(s spread) string {
	if !s.ok() {
		return "n/a"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2fx", s.Med)
	}
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", s.Med, s.Min, s.Max)
}

// fmtSpread formats s with f: the median, and the range over the runs when there are several.
func fmtSpread(s spread, f func(float64) string) string {
	if !s.ok() {
		return "n/a"
	}
	if s.N == 1 {
		return f(s.Med)
	}
	return fmt.Sprintf("%s (%s-%s)", f(s.Med), f(s.Min), f(s.Max))
}

func fmtUs(s spread) string { return fmtSpread(s, us) }

// us formats microseconds readably.
func us(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0f ms", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2f ms", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f us", v)
	default:
		return fmt.Sprintf("%.1f us", v)
	}
}

// num formats a count with thousands separators.
func num(v float64) string {
	neg := v < 0
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtNum(s spread) string { return fmtSpread(s, num) }

func (h *harness) why(id, impl string) string {
	if r := h.failure(id, impl); r != "" {
		return "n/a: " + shorten(r, 120)
	}
	if lost := sumVals(h.values(id, impl, mLost)); lost > 0 && !h.stat(id, impl, mP99).ok() {
		return fmt.Sprintf("n/a: every update was lost (%s)", num(lost))
	}
	return "n/a: not measured"
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// targets computes the report's goals from the measurements.
func (h *harness) targets(x extras) []target {
	allocs, allocErr := x.allocs, x.allocErr
	var ts []target
	ratioTarget := func(id, what, goal, scen, a, b string, f metric, ok func(float64) bool) {
		r := h.ratio(scen, a, b, f)
		t := target{ID: id, What: what, Goal: goal}
		if !r.ok() {
			t.Measured = h.why(scen, a)
			if h.failure(scen, a) == "" {
				t.Measured = h.why(scen, b)
			}
			t.Verdict = "n/a"
		} else {
			t.Measured, t.Verdict = fmtRatio(r), verdict(ok(r.Med))
		}
		ts = append(ts, t)
	}
	absTarget := func(id, what, goal, scen, impl string, f metric, show func(spread) string, ok func(float64) bool) {
		s := h.stat(scen, impl, f)
		t := target{ID: id, What: what, Goal: goal}
		if !s.ok() {
			t.Measured, t.Verdict = h.why(scen, impl), "n/a"
		} else {
			t.Measured, t.Verdict = show(s), verdict(ok(s.Med))
		}
		ts = append(ts, t)
	}
	ge := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	le := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
	for _, im := range []string{implHerd, implHerdNoLg} {
		l := implLabels[im]
		ratioTarget("1a", l+" vs Redis, 64 conns x 16 pipelined (throughput)", ">= 1.0x", "p16", im, implRedis, mThroughput, ge(1.0))
	}
	for _, im := range []string{implHerd, implHerdNoLg} {
		l := implLabels[im]
		ratioTarget("1b", l+" vs Redis, 64 conns, no pipelining (throughput)", ">= 0.95x", "p1", im, implRedis, mThroughput, ge(0.95))
	}
	for _, im := range []string{implHerd, implHerdNoLg} {
		ratioTarget("2a", implLabels[im]+" vs goroutine baseline, 10,000 conns (throughput)", ">= 1.2x", "c10k", im, implBaseline, mThroughput, ge(1.2))
	}
	ratioTarget("2b", "herd reactor vs goroutine baseline, memory per idle connection", "<= 0.33x", "idle10k", implHerd, implBaseline, mRSS, le(1.0/3))
	for _, im := range []string{implHerd, implHerdNoLg} {
		ratioTarget("3", implLabels[im]+" vs Python asyncio, five-server herd (throughput)", ">= 50x", "herd5", im, implAsyncio, mThroughput, ge(50))
	}
	r := h.ratio("herd5", implHerd, implUvloop, mThroughput)
	t := target{ID: "3", What: "herd reactor (log on) vs " + implLabels[implUvloop] + ", five-server herd", Goal: "for information", Measured: fmtRatio(r), Verdict: "info"}
	if !r.ok() {
		t.Measured = h.why("herd5", implUvloop)
	}
	ts = append(ts, t)
	for _, im := range []string{implHerd, implHerdNoLg} {
		ratioTarget("3b", implLabels[im]+" vs "+implLabels[implUvBest]+", five-server herd (throughput)", ">= 5x", "herd5", im, implUvBest, mThroughput, ge(5))
	}
	for _, im := range []string{implHerd, implHerdNoLg} {
		absTarget("4a", implLabels[im]+": propagation p99 at 1,000 updates/s", "<= 1 ms", "prop1k", im, mP99, fmtUs, le(1000))
	}
	for _, im := range []string{implHerd, implHerdNoLg} {
		absTarget("4b", implLabels[im]+": propagation p99 at 10,000 updates/s", "<= 5 ms", "prop10k", im, mP99, fmtUs, le(5000))
	}
	allowed := float64(whatsatConns) / placesDelay.Seconds()
	for _, im := range []string{implHerd, implHerdNoLg} {
		frac := resMetric(func(m measurement) float64 { return m.Res.Throughput / allowed })
		absTarget("5a", fmt.Sprintf("%s: WHATSAT replies/s as a share of the %s/s the 50 ms latency allows", implLabels[im], num(allowed)),
			">= 70%", "whatsat", im, frac, func(s spread) string {
				return fmt.Sprintf("%.0f%% (%.0f-%.0f%%)", 100*s.Med, 100*s.Min, 100*s.Max)
			}, ge(0.70))
		absTarget("5b", implLabels[im]+": IAMAT p99 on other connections during that load", "<= 2 ms", "whatsat", im, mSideP99, fmtUs, le(2000))
	}
	at := target{ID: "6", What: "allocations per IAMAT, end to end (" + allocsCommand + ")", Goal: "report", Verdict: "info"}
	switch {
	case allocErr != "":
		at.Measured, at.Verdict = shorten(allocErr, 160), "n/a"
	case len(allocs) == 0:
		at.Measured, at.Verdict = "not measured", "n/a"
	default:
		var parts []string
		for _, a := range allocs {
			parts = append(parts, fmt.Sprintf("%s: %g allocs/op, %g B/op", a.Name, a.AllocsPerOp, a.BytesPerOp))
		}
		at.Measured = strings.Join(parts, "; ")
	}
	ts = append(ts, at)
	if x.instrRan {
		it := target{ID: "7", What: "instructions per IAMAT and per WHATSAT, end to end (callgrind)", Goal: "report", Verdict: "info"}
		var parts []string
		for _, l := range x.instr {
			if l.Err == "" && l.PerReq.ok() && (l.Impl == implHerdNoLg || l.Impl == implHerd) {
				parts = append(parts, fmt.Sprintf("%s %s: %s", shortLabels[l.Impl], strings.ToUpper(l.Kind), num(l.PerReq.Med)))
			}
		}
		it.Measured = strings.Join(parts, "; ")
		if x.instrErr != "" || len(parts) == 0 {
			it.Measured, it.Verdict = shorten(cmp.Or(x.instrErr, "not measured"), 160), "n/a"
		}
		ts = append(ts, it)
	}
	return ts
}

// refs says what each throughput scenario's ratio column compares against.
var refs = map[string]string{"p16": implRedis, "p1": implRedis, "c10k": implBaseline, "herd5": implUvBest, "idle10k": implBaseline}

func (h *harness) scenarioTable(b *strings.Builder, sc *scenario) {
	impls := sc.impls
	fmt.Fprintf(b, "### %s (`%s`)\n\n", sc.title, sc.id)
	if sc.note != "" {
		b.WriteString(sc.note + "\n\n")
	}
	ref := refs[sc.id]
	switch sc.metric {
	case "rss":
		fmt.Fprintf(b, "| implementation | server memory per connection (median, min-max) | vs %s |\n| --- | --- | --- |\n", implLabels[ref])
		for _, im := range impls {
			s := h.stat(sc.id, im, mRSS)
			if !s.ok() {
				fmt.Fprintf(b, "| %s | %s | |\n", implLabels[im], h.why(sc.id, im))
				continue
			}
			fmt.Fprintf(b, "| %s | %s bytes | %s |\n", implLabels[im], fmtNum(s),
				fmtRatio(h.ratio(sc.id, im, ref, mRSS)))
		}
	case "p99":
		b.WriteString("| implementation | p50 | p99 (median, min-max) | p99.9 | max | updates lost | Hill's reply p99 | servers CPU | loadgen CPU | other CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, im := range impls {
			s := h.stat(sc.id, im, mP99)
			if !s.ok() {
				fmt.Fprintf(b, "| %s | %s | | | | | | | | |\n", implLabels[im], h.why(sc.id, im))
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %.0f%% | %.0f%% | %s |\n", implLabels[im], us(h.stat(sc.id, im, mP50).Med), fmtUs(s),
				us(h.stat(sc.id, im, mP999).Med), us(h.stat(sc.id, im, mMax).Med), num(sumVals(h.values(sc.id, im, mLost))),
				us(h.stat(sc.id, im, mReplyP99).Med), 100*h.stat(sc.id, im, mServerCPU).Med, 100*h.stat(sc.id, im, mCPU).Med,
				fmtPct(h.stat(sc.id, im, mOtherCPU)))
		}
	default:
		extra := ""
		if ref != "" {
			extra = " vs " + implLabels[ref] + " |"
		}
		side := sc.id == "whatsat"
		if side {
			extra = " IAMAT p99 alongside | fake Places CPU | server CPU per reply |"
		}
		cols := 9 + strings.Count(extra, "|")
		fmt.Fprintf(b, "| implementation | replies/s (median, min-max) | p50 | p99 | p99.9 | errors | server CPU | loadgen CPU | other CPU |%s\n", extra)
		b.WriteString("|" + strings.Repeat(" --- |", cols) + "\n")
		for _, im := range impls {
			s := h.stat(sc.id, im, mThroughput)
			if !s.ok() {
				fmt.Fprintf(b, "| %s | %s |%s\n", implLabels[im], h.why(sc.id, im), strings.Repeat(" |", cols-2))
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.0f%% | %.0f%% | %s |", implLabels[im], fmtNum(s), us(h.stat(sc.id, im, mP50).Med),
				us(h.stat(sc.id, im, mP99).Med), us(h.stat(sc.id, im, mP999).Med), num(sumVals(h.values(sc.id, im, mErrors))),
				100*h.stat(sc.id, im, mServerCPU).Med, 100*h.stat(sc.id, im, mCPU).Med, fmtPct(h.stat(sc.id, im, mOtherCPU)))
			switch {
			case side:
				fmt.Fprintf(b, " %s | %.0f%% | %s |", fmtUs(h.stat(sc.id, im, mSideP99)), 100*h.stat(sc.id, im, mPlacesCPU).Med,
					us(h.stat(sc.id, im, mCPUPerReply).Med))
			case ref != "" && im == ref:
				b.WriteString(" 1x |")
			case ref != "":
				fmt.Fprintf(b, " %s |", fmtRatio(h.ratio(sc.id, im, ref, mThroughput)))
			}
			b.WriteString("\n")
		}
	}
	for _, im := range impls {
		if n, reason := h.failures(sc.id, im); n > 0 && h.stat(sc.id, im, func(m measurement) (float64, bool) { return 0, m.Err == "" }).ok() {
			fmt.Fprintf(b, "\n%s: %d of its runs failed (%s).\n", implLabels[im], n, shorten(reason, 200))
		}
	}
	b.WriteString("\n")
	h.scenarioCharts(b, sc)
}

func sumVals(vs []float64) float64 {
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t
}

// repoPath resolves p against the repository root unless it is absolute.
func (h *harness) repoPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(h.o.repo, p)
}

// chartPath is a chart file's path as the report links it.
func (h *harness) chartPath(file string) string {
	return filepath.ToSlash(filepath.Join(h.o.charts, file))
}

// scenarioCharts links a scenario's charts that were written.
func (h *harness) scenarioCharts(b *strings.Builder, sc *scenario) {
	bars, lat := chartFiles(sc.id)
	var links []string
	if h.wrote[bars] {
		links = append(links, fmt.Sprintf("![%s](%s)", sc.id, h.chartPath(bars)))
	}
	if h.wrote[lat] {
		links = append(links, fmt.Sprintf("![%s %s by percentile](%s)", sc.id, sc.latencyName(), h.chartPath(lat)))
	}
	if len(links) > 0 {
		b.WriteString(strings.Join(links, "\n") + "\n\n")
	}
}

// slower lists, from the numbers, every comparison where the reactor was not ahead.
func (h *harness) slower() []string {
	var out []string
	for _, sc := range scenarios {
		if sc.metric != "throughput" {
			continue
		}
		for _, herdImpl := range []string{implHerd, implHerdNoLg} {
			for _, other := range sc.impls {
				if other == implHerd || other == implHerdNoLg {
					continue
				}
				r := h.ratio(sc.id, herdImpl, other, mThroughput)
				if r.ok() && r.Med < 1.0 {
					out = append(out, fmt.Sprintf("%s: %s did %s the throughput of %s.", sc.title, implLabels[herdImpl], fmtRatio(r), implLabels[other]))
				}
				p := h.ratio(sc.id, herdImpl, other, mP99)
				if p.ok() && p.Med > 1.0 {
					out = append(out, fmt.Sprintf("%s: %s had %s the p99 latency of %s.", sc.title, implLabels[herdImpl], fmtRatio(p), implLabels[other]))
				}
			}
		}
	}
	for _, sc := range scenarios {
		if sc.metric != "p99" {
			continue
		}
		for _, other := range sc.impls {
			if other == implHerd || other == implHerdNoLg {
				continue
			}
			r := h.ratio(sc.id, implHerd, other, mP99)
			if r.ok() && r.Med > 1.0 {
				out = append(out, fmt.Sprintf("%s: %s had %s the p99 propagation time of %s.", sc.title, implLabels[implHerd], fmtRatio(r), implLabels[other]))
			}
		}
	}
	return out
}

// observations are facts derived from the numbers that bear on where the reactor is not faster.
func (h *harness) observations() []string {
	var out []string
	// Pipelining: how much of each server's P=16 rate survives at P=1.
	for _, im := range []string{implHerd, implRedis, implBaseline} {
		a, b := h.stat("p1", im, mThroughput), h.stat("p16", im, mThroughput)
		if a.ok() && b.ok() && b.Med > 0 {
			out = append(out, fmt.Sprintf("Without pipelining %s keeps %.0f%% of its pipelined rate (%s/s vs %s/s): each request then costs a read and a write system call on both sides of the socket, so the kernel and the shared cores, not the server's own code, set the pace.",
				implLabels[im], 100*a.Med/b.Med, num(a.Med), num(b.Med)))
		}
	}
	// The load generator's share of the machine.
	for _, id := range []string{"p16", "p1", "c10k"} {
		c := h.stat(id, implHerd, mCPU)
		if c.ok() {
			out = append(out, fmt.Sprintf("In `%s` the load generator itself used %.0f%% of one core (of %d) while driving the reactor.", id, 100*c.Med, h.cores()))
		}
	}
	// Logging.
	for _, id := range []string{"p16", "p1", "c10k", "herd5"} {
		r := h.ratio(id, implHerdNoLg, implHerd, mThroughput)
		if r.ok() {
			out = append(out, fmt.Sprintf("In `%s` turning logging off changed the reactor's throughput by %+.0f%% (log off / log on = %s).", id, 100*(r.Med-1), fmtRatio(r)))
		}
	}
	return out
}

func (h *harness) cores() int {
	n, _ := os.ReadFile("/proc/cpuinfo")
	c := strings.Count(string(n), "\nprocessor")
	if strings.HasPrefix(string(n), "processor") {
		c++
	}
	return c
}

// writeReport regenerates BENCHMARKS.md and the charts.
func (h *harness) writeReport(ctx context.Context, x extras) error {
	env := collectEnv(ctx, h.t)
	path := h.repoPath(h.o.out)
	hand := [2]string{handDefault, asyncioDefault}
	if old, err := os.ReadFile(path); err == nil {
		hand[0] = handWritten(string(old), handBegin, handEnd, handDefault)
		hand[1] = handWritten(string(old), asyncioBegin, asyncioEnd, asyncioDefault)
	}
	chartDir := h.repoPath(h.o.charts)
	if err := os.MkdirAll(chartDir, 0o755); err != nil {
		return err
	}
	if err := h.charts(chartDir); err != nil {
		h.logf("charts: %v", err)
	}
	md := h.markdown(env, x, hand)
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	h.logf("wrote %s and charts in %s", path, chartDir)
	for _, t := range h.targets(x) {
		fmt.Fprintf(h.stdout, "%-3s %-5s %-10s %s: %s\n", t.ID, t.Verdict, t.Goal, t.What, t.Measured)
	}
	return nil
}

func (h *harness) markdown(env environment, x extras, hand [2]string) string {
	allocs, allocErr := x.allocs, x.allocErr
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	fmt.Fprintf(&b, "Generated by `go run ./bench/harness` (`bash scripts/bench.sh`) on %s from one run on one machine; "+
		"every figure below comes from that run. Do not edit by hand, except the two sections marked as hand-written, which "+
		"the harness keeps. Each scenario ran %d times for each implementation (runs interleaved across the "+
		"implementations), each run %v of measurement after %v of warm-up, with fresh server processes; tables give the "+
		"median and the min-max over the runs, and ratios are medians of the per-run ratios of runs made back to back.\n\n",
		env.Date, h.o.runs, h.o.duration, h.o.warmup)

	b.WriteString("## Machine and versions\n\n| | |\n| --- | --- |\n")
	row := func(k, v string) {
		if v == "" {
			v = "n/a"
		}
		fmt.Fprintf(&b, "| %s | %s |\n", k, v)
	}
	row("CPU", env.CPU)
	row("cores", fmt.Sprint(env.Cores))
	row("memory", env.Memory)
	row("kernel", env.Kernel)
	row("load average at the end", env.Load)
	row("Go", env.Go)
	row("gnet", env.Gnet)
	row("Redis", env.Redis)
	row("Python", env.Python)
	row("aiohttp", env.Aiohttp)
	row("uvloop", env.Uvloop)
	row("Node.js", env.Node)
	row("commit", env.Commit)
	b.WriteString("\nEverything (servers, load generator, fake Places) shares the same cores over loopback, so ratios between " +
		"implementations measured in the same run carry the conclusions, not absolute rates.\n\n")

	var unavailable []string
	for _, im := range everyImpl {
		if r, ok := h.t.missing[im]; ok {
			unavailable = append(unavailable, fmt.Sprintf("- %s: not available: %s", implLabels[im], r))
		}
	}
	if len(unavailable) > 0 {
		b.WriteString("Not measured in this run:\n\n" + strings.Join(unavailable, "\n") + "\n\n")
	}

	b.WriteString("## Targets\n\n| # | what | goal | measured (median, min-max) | |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range h.targets(x) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.ID, t.What, t.Goal, t.Measured, t.Verdict)
	}
	if busy := h.foreignLoad(); len(busy) > 0 {
		b.WriteString("\n**Other processes used the cores during some runs** (\"other CPU\": the machine's user and system time from " +
			"/proc/stat minus the servers', the fake Places' and the load generator's), so those runs' latencies and rates " +
			"are partly the other load's: " + strings.Join(busy, "; ") + ". Re-run on an idle machine for figures to rely on.\n")
	}
	b.WriteString("\n## Results\n\n")
	b.WriteString("Latencies are per request, from the write of its batch (closed loop) or from its intended send time " +
		"(open loop: propagation and the IAMAT load alongside WHATSAT), to the end of its reply. \"server CPU\" is the CPU " +
		"time of the server processes (all of them for a herd) and \"loadgen CPU\" the load generator's own, each over the " +
		"run's wall time: 100% is one core of the " + fmt.Sprint(env.Cores) + "; \"other CPU\" is what the rest of the machine " +
		"used meanwhile (user and system time of /proc/stat minus those), which should be near 0% on an idle machine.\n\n")
	b.WriteString("Charts. Under each table, a bar chart of its main figure: each bar is the median over the runs, labelled with " +
		"its value, and its whisker spans the minimum to the maximum over the runs. Beside it, the latency by percentile, " +
		"as HdrHistogram plots it: latency against percentile on an axis of 1/(1-p), so that 90%, 99%, 99.9% and 99.99% " +
		"are evenly spaced and the tail is as wide as the body; each line is one implementation, from the histograms of all " +
		"its runs merged (the load generator's `-hdr-out`), and ends at its maximum. A value axis is logarithmic (its label " +
		"says so) wherever the values on it span a factor of " + strconv.Itoa(logSpan) + " or more.\n\n")
	for _, sc := range scenarios {
		if !h.selected(sc) || sc.group != "" || sc.revisit {
			continue
		}
		h.scenarioTable(&b, sc)
	}
	h.growthTables(&b)
	b.WriteString("### Allocations per IAMAT\n\n")
	fmt.Fprintf(&b, "`%s`\n\n", allocsCommand)
	switch {
	case allocErr != "":
		b.WriteString(allocErr + "\n\n")
	case len(allocs) == 0:
		b.WriteString("Not measured in this run.\n\n")
	default:
		b.WriteString("```\n")
		for _, a := range allocs {
			b.WriteString(a.Line + "\n")
		}
		b.WriteString("```\n\n")
	}

	if x.instrRan {
		h.instructionTable(&b, x.instr, x.instrErr)
	}
	b.WriteString("## Where the reactor is not faster\n\n")
	b.WriteString("Generated from the numbers above.\n\n")
	sl := h.slower()
	if len(sl) == 0 {
		b.WriteString("In this run the reactor led every throughput comparison and no other implementation had a lower p99.\n\n")
	} else {
		for _, s := range sl {
			b.WriteString("- " + s + "\n")
		}
		b.WriteString("\n")
	}
	for _, s := range h.observations() {
		b.WriteString("- " + s + "\n")
	}
	b.WriteString("\n## Reading the numbers (hand-written)\n\n_The text between the two markers below is written by hand; " +
		"the harness keeps it as is when it regenerates this file. Everything else is generated._\n\n")
	b.WriteString(handBegin + "\n\n" + hand[0] + "\n\n" + handEnd + "\n\n")
	h.asyncioFigures(&b)
	b.WriteString("## The asyncio report, revisited (hand-written)\n\n_The text between the two markers below is written by " +
		"hand, from the figures of the section above; the harness keeps it as is._\n\n")
	b.WriteString(asyncioBegin + "\n\n" + hand[1] + "\n\n" + asyncioEnd + "\n\n")

	b.WriteString("## How it was run\n\n")
	b.WriteString("```sh\nbash scripts/bench.sh        # = go run ./bench/harness: builds, runs everything, rewrites this file and bench/charts/\n```\n\n")
	b.WriteString("The harness builds each binary with `go build -o $WORK/bin/NAME` (`./cmd/herd`, `./bench/baseline`, " +
		"`./bench/fakeplaces`, `./bench/loadgen`, `./bench/harness/inproc`), writes a config per run with fresh loopback ports, " +
		"starts the servers, waits until each listens (and, for `herd5`, until an update made at Hill is known at Campbell), " +
		"runs the load generator and stops the servers with SIGTERM. Every Go process runs with the default GOMAXPROCS (the number of cores).\n\n")
	b.WriteString(h.herdModes())
	b.WriteString("One example of each command:\n\n")
	last := ""
	for _, c := range h.commands {
		if c.Scenario != last {
			fmt.Fprintf(&b, "`%s`:\n\n", c.Scenario)
			last = c.Scenario
		}
		fmt.Fprintf(&b, "```sh\n# %s\n%s\n```\n\n", c.What, c.Line)
	}
	if len(h.configs) > 0 {
		b.WriteString("Configs (ports are picked fresh for each run; the reactor with logging off and the servers' log directories differ only in `[log] dir`):\n\n")
		keys := make([]string, 0, len(h.configs))
		for k := range h.configs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s:\n\n```toml\n%s```\n\n", k, h.configs[k])
		}
	}
	return b.String()
}

// herdModes says how each implementation's five-server herd ran (herd5, prop1k, prop10k).
func (h *harness) herdModes() string {
	var b strings.Builder
	b.WriteString("How each five-server herd (`herd5`, `prop1k`, `prop10k`) ran:\n\n")
	if h.o.herdProcs {
		b.WriteString("- every implementation: one process per server (run with `-herd-procs`): `herd serve -config F NAME`, " +
			"`baseline serve -config F NAME`, `server.py --config F NAME`; five Go processes each with GOMAXPROCS equal to " +
			"the cores then compete for them with the load generator.\n")
	} else {
		b.WriteString("- herd reactor (log on and off): one process holding all five servers, one event loop each, as a user runs a " +
			"herd on one machine: `herd run -config F` in `herd5`. In `prop1k` and `prop10k` the config also names `Probe`, the " +
			"load generator's listener posing as a neighbour of Campbell (Campbell dials it and floods to it), which `herd run` " +
			"would start itself; there the five servers are named to `inproc -impl herd -config F Hill Jaquez Smith Singleton " +
			"Campbell` (`bench/harness/inproc`), which builds them as `herd run` does (`herd.NewServer` for each, one shared " +
			"Places provider) in one process and leaves `Probe` to the load generator.\n")
		b.WriteString("- goroutine baseline: the same, one process: `baseline run -config F` in `herd5`, `inproc -impl baseline -config F " +
			"Hill Jaquez Smith Singleton Campbell` with the probe.\n")
		b.WriteString("- Python asyncio and asyncio + uvloop: one process per server, `server.py --config F [--uvloop] NAME`, as the " +
			"seed's design runs them (one event loop per process).\n")
		b.WriteString("- `go run ./bench/harness -herd-procs` runs the Go herds one process per server too (`herd serve`, `baseline " +
			"serve`) for comparison.\n")
	}
	b.WriteString("\n")
	return b.String()
}

func fmtPct(s spread) string {
	if !s.ok() {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*s.Med)
}

// foreignLoad lists the scenarios and implementations whose runs shared the machine with other
// processes using more than a tenth of a core (median over the runs), or one run more than half.
func (h *harness) foreignLoad() []string {
	var out []string
	for _, sc := range scenarios {
		for _, im := range sc.impls {
			s := h.stat(sc.id, im, mOtherCPU)
			if s.ok() && (s.Med > 0.1 || s.Max > 0.5) {
				out = append(out, fmt.Sprintf("`%s` %s %.0f%% (%.0f-%.0f%%) of a core", sc.id, implLabels[im], 100*s.Med, 100*s.Min, 100*s.Max))
			}
		}
	}
	return out
}
