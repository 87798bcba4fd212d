package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// How cost grows: three groups of scenarios, each run at three sizes.
const (
	groupRecords = "records" // memory per record and the IAMAT rate, by records held
	groupResync  = "resync"  // a restarted server's resync time, by records the herd holds
	groupChain   = "chain"   // propagation p99 along a chain, by servers in it
)

// growthSizes are the sizes of each group: records held, or servers in the chain.
var growthSizes = map[string][]int{
	groupRecords: {10000, 100000, 1000000},
	groupResync:  {10000, 100000, 1000000},
	groupChain:   {2, 5, 9},
}

// groups says what each group is, for the usage text and the report.
var groups = []struct{ id, title, note string }{
	{groupRecords, "Server memory per record and IAMAT rate, by records held",
		"One server, logging off. Its records are preloaded with one IAMAT per client id (64 connections, 16 " +
			"pipelined); the server's resident memory (VmRSS) and, for the reactor, its live heap (`go_memstats_heap_alloc_bytes` " +
			"on its admin listener, right after a collection forced through `/debug/pprof/heap?gc=1`) are read before and after, " +
			"and the growth divided by the records. The resident memory of a Go server also holds the heap the collector may " +
			"fill before its next cycle (GOGC=100: up to the live heap again) and memory not yet returned to the system. " +
			"Then IAMATs that update those same records (64 connections, 16 pipelined) measure the rate with that many records held."},
	{groupResync, "Resync time of a restarted server, by records the herd holds",
		"Two servers, Hill and Jaquez, linked; the records are preloaded at Hill (flooded to Jaquez) with logging off. " +
			"Jaquez is stopped (SIGTERM) and started again, empty, with logging on: the time is from its `listening` log " +
			"record to its link's `resync done` record (the log's times are to the millisecond), and \"resync (as logged)\" is the " +
			"`took` of that record, from the link's hello to the end of the resync on the server's own clock. The records " +
			"received are checked against those held. The goroutine baseline is not measured: it logs no end of its resync " +
			"and has no admin listener to count its records."},
	{groupChain, "Propagation along a chain, by servers in it",
		"Servers S1 - S2 - ... - Sn in a line, the load generator's probe a neighbour of Sn; updates at 1,000/s at S1, " +
			"timed from their intended send time until Sn floods them to the probe (n hops, the last one to the probe)."},
}

// growthScenarios are the scenarios of the three groups, one per size.
func growthScenarios() []*scenario {
	var out []*scenario
	for _, n := range growthSizes[groupRecords] {
		out = append(out, &scenario{id: groupRecords + sizeName(n), group: groupRecords, size: n,
			title: fmt.Sprintf("memory per record and IAMAT rate, %s records", num(float64(n))),
			impls: []string{implHerdNoLg, implBaseline}, run: records(n)})
	}
	for _, n := range growthSizes[groupResync] {
		out = append(out, &scenario{id: groupResync + sizeName(n), group: groupResync, size: n,
			title: fmt.Sprintf("resync of a restarted server, %s records", num(float64(n))),
			impls: []string{implHerd}, run: resync(n)})
	}
	for _, n := range growthSizes[groupChain] {
		out = append(out, &scenario{id: groupChain + strconv.Itoa(n), group: groupChain, size: n,
			title: fmt.Sprintf("propagation along a chain of %d servers at 1,000 updates/s", n),
			impls: []string{implHerd, implBaseline}, run: chain(n)})
	}
	return out
}

// sizeName writes a record count as 10k, 100k, 1m.
func sizeName(n int) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return strconv.Itoa(n/1000000) + "m"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// preload sends one IAMAT for each of n client ids to addr, 64 connections 16 pipelined.
func (h *harness) preload(ctx context.Context, scenario, addr string, n int) error {
	r, err := h.loadgen(ctx, scenario, "loadgen (preload)", "-scenario", "iamat", "-addr", addr, "-c", "64", "-P", "16",
		"-clients", strconv.Itoa(n), "-n", strconv.Itoa(n), "-prefix", "r", "-d", "30m")
	if err == nil && (r.Replies != uint64(n) || r.Errors > 0) {
		err = fmt.Errorf("preload: %d replies to %d IAMATs, %d errors %v", r.Replies, n, r.Errors, r.ErrorSamples)
	}
	return err
}

// records measures memory per record and the IAMAT rate with n records held.
func records(n int) func(context.Context, *harness, *scenario, string, string) measurement {
	return func(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
		tp, d, err := h.deploy(ctx, sc, impl, tag, "single", func(tp *topology) error {
			tp.noLog, tp.placesURL = true, "http://127.0.0.1:9" // no dataset in the memory
			return tp.takeAdminPorts(impl)
		})
		if err != nil {
			return fail(sc, impl, err)
		}
		defer d.stop()
		s := tp.servers[0]
		admin := s.adminAddr()
		if impl == implBaseline {
			admin = "" // the baseline's admin listener has no pprof to force a collection with
		}
		heap0, heapErr := liveHeap(ctx, admin)
		rss0, err := readRSS(d.procs[0].pid())
		if err == nil {
			err = h.preload(ctx, sc.id, s.addr(), n)
		}
		if err != nil {
			return fail(sc, impl, err)
		}
		heap1, heapErr1 := liveHeap(ctx, admin)
		rss1, err := readRSS(d.procs[0].pid())
		if err != nil {
			return fail(sc, impl, err)
		}
		done := d.meter()
		res, err := h.loadgen(ctx, sc.id, "loadgen", append([]string{"-scenario", "iamat", "-addr", s.addr(), "-c", "64", "-P", "16",
			"-clients", strconv.Itoa(n), "-prefix", "r"}, h.window()...)...)
		m := finish(sc, impl, d, res, err)
		done(&m)
		m.Size = n
		m.RSSPerRecord = float64(rss1-rss0) / float64(n)
		if heapErr == nil && heapErr1 == nil {
			m.HeapPerRecord = (heap1 - heap0) / float64(n)
		}
		return m
	}
}

// resync measures how long a server that restarts into a herd of n records takes to hold them.
func resync(n int) func(context.Context, *harness, *scenario, string, string) measurement {
	return func(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
		tp := &topology{servers: []server{{name: "Hill", peers: []string{"Jaquez"}}, {name: "Jaquez"}}, noLog: true}
		for i := range tp.servers {
			if err := tp.servers[i].takePorts(); err != nil {
				return fail(sc, impl, err)
			}
		}
		if err := tp.takeAdminPorts(impl); err != nil {
			return fail(sc, impl, err)
		}
		old := h.o.herdProcs
		h.o.herdProcs = true // each server its own process, so that one can restart
		d, err := h.startServers(ctx, sc.id, impl, tp, tag)
		h.o.herdProcs = old
		if err != nil {
			return fail(sc, impl, err)
		}
		defer func() { d.stop() }()
		hill, jaq := tp.servers[0], tp.servers[1]
		if err := h.preload(ctx, sc.id, hill.addr(), n); err != nil {
			return fail(sc, impl, err)
		}
		if err := waitRecords(ctx, jaq.adminAddr(), n, 10*time.Minute); err != nil {
			return fail(sc, impl, fmt.Errorf("the preload at Jaquez: %w", err))
		}
		d.procs[1].stop()
		// Jaquez again, empty, with its log on: the config differs only in [log].
		logDir := filepath.Join(h.o.work, tag+"-restart-logs")
		tp.noLog, tp.logDir = false, logDir
		cfg := filepath.Join(h.o.work, tag+"-restart.toml")
		if err := os.WriteFile(cfg, []byte(tp.toml()), 0o644); err != nil {
			return fail(sc, impl, err)
		}
		argv := h.t.argv(impl, cfg, jaq.name)
		h.note(sc.id, implLabels[impl]+" (the restart)", argv)
		p, err := startProc(impl+" Jaquez", jaq.addr(), filepath.Join(h.o.work, tag+"-Jaquez-restart.out"), h.o.work, nil, argv...)
		if err != nil {
			return fail(sc, impl, err)
		}
		d.procs[1] = p
		if err := waitRecords(ctx, jaq.adminAddr(), n, 10*time.Minute); err != nil {
			return fail(sc, impl, fmt.Errorf("the resync at the restarted Jaquez: %w", err))
		}
		var rt resyncTimes
		deadline := time.Now().Add(30 * time.Second)
		for {
			rt, err = parseResyncLog(filepath.Join(logDir, "Jaquez.log"))
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err == nil {
			err = d.check()
		}
		if err != nil {
			return fail(sc, impl, err)
		}
		return measurement{Scenario: sc.id, Impl: impl, Size: n, ResyncS: rt.total.Seconds(), ResyncTookS: rt.took.Seconds(),
			Received: rt.received}
	}
}

// chain measures propagation along a chain of n servers.
func chain(n int) func(context.Context, *harness, *scenario, string, string) measurement {
	return func(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
		m := h.propagate(ctx, sc, impl, tag, "chain"+strconv.Itoa(n), 1000, 1)
		m.Size = n
		return m
	}
}

// resyncTimes is what a restarted server's log says of its resync.
type resyncTimes struct {
	total    time.Duration // from "listening" to the last "resync done"
	took     time.Duration // the last "resync done" record's own took
	received int           // records its neighbours sent it
}

// parseResyncLog reads a server's log: the time from its "listening" record to its last
// "resync done" record, that record's took, and the records received in every resync.
func parseResyncLog(path string) (resyncTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return resyncTimes{}, err
	}
	defer f.Close()
	return parseResync(f)
}

func parseResync(r io.Reader) (resyncTimes, error) {
	var rt resyncTimes
	var listening, done time.Time
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := logFields(sc.Text())
		switch fields["msg"] {
		case "listening":
			listening, _ = time.Parse(time.RFC3339Nano, fields["time"])
		case "resync done":
			if t, err := time.Parse(time.RFC3339Nano, fields["time"]); err == nil {
				done = t
			}
			rt.took, _ = time.ParseDuration(fields["took"])
			n, _ := strconv.Atoi(fields["received"])
			rt.received += n
		}
	}
	if err := sc.Err(); err != nil {
		return rt, err
	}
	if listening.IsZero() || done.IsZero() {
		return rt, errors.New("harness: no \"listening\" and \"resync done\" records in the log")
	}
	rt.total = done.Sub(listening)
	return rt, nil
}

// logFields splits one slog text record into its keys and values (quoted values unquoted).
func logFields(line string) map[string]string {
	m := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		k, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		m[k] = v
		line = rest
	}
	return m
}

// scrape returns the Prometheus text of a server's admin listener's /metrics.
func scrape(ctx context.Context, admin, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("harness: %s%s: %s", admin, path, resp.Status)
	}
	return string(b), err
}

// metricValue returns the value of the first series of the named metric in Prometheus text.
func metricValue(text, name string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			i := strings.IndexByte(rest, '}')
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// liveHeap forces a collection in the server (through its pprof heap profile) and returns its
// live heap in bytes.
func liveHeap(ctx context.Context, admin string) (float64, error) {
	if admin == "" {
		return 0, errors.New("harness: no admin listener")
	}
	if _, err := scrape(ctx, admin, "/debug/pprof/heap?gc=1"); err != nil {
		return 0, err
	}
	text, err := scrape(ctx, admin, "/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := metricValue(text, "go_memstats_heap_alloc_bytes")
	if !ok {
		return 0, errors.New("harness: no go_memstats_heap_alloc_bytes in /metrics")
	}
	return v, nil
}

// waitRecords waits until the server behind admin holds at least n records.
func waitRecords(ctx context.Context, admin string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := -1.0
	for {
		if text, err := scrape(ctx, admin, "/metrics"); err == nil {
			if v, ok := metricValue(text, "herd_records"); ok {
				last = v
				if v >= float64(n) {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v records after %v, want %d", last, timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readRSS returns VmRSS of process pid in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, errors.New("harness: no VmRSS in /proc status")
}

// growth metrics.
var (
	mRSSPerRecord  = func(m measurement) (float64, bool) { return m.RSSPerRecord, m.Err == "" && m.Size > 0 }
	mHeapPerRecord = func(m measurement) (float64, bool) { return m.HeapPerRecord, m.Err == "" && m.HeapPerRecord > 0 }
	mResync        = func(m measurement) (float64, bool) { return m.ResyncS * 1e3, m.Err == "" && m.ResyncS > 0 }
	mResyncTook    = func(m measurement) (float64, bool) { return m.ResyncTookS * 1e3, m.Err == "" && m.ResyncTookS > 0 }
	mReceived      = func(m measurement) (float64, bool) { return float64(m.Received), m.Err == "" && m.Received > 0 }
)

// members returns the selected scenarios of a group.
func (h *harness) members(group string) []*scenario {
	var out []*scenario
	for _, sc := range scenarios {
		if sc.group == group && h.selected(sc) {
			out = append(out, sc)
		}
	}
	return out
}

// growthTables writes the report's section on how cost grows.
func (h *harness) growthTables(b *strings.Builder) {
	first := true
	for _, g := range groups {
		ms := h.members(g.id)
		if len(ms) == 0 {
			continue
		}
		if first {
			b.WriteString("### How cost grows\n\n")
			first = false
		}
		fmt.Fprintf(b, "#### %s (`%s`)\n\n%s\n\n", g.title, g.id, g.note)
		switch g.id {
		case groupRecords:
			b.WriteString("| implementation | records held | memory per record (VmRSS) | live heap per record | IAMAT/s with them held (median, min-max) | p99 |\n| --- | --- | --- | --- | --- | --- |\n")
		case groupResync:
			b.WriteString("| implementation | records | listening -> resync done (median, min-max) | resync (as logged) | records received |\n| --- | --- | --- | --- | --- |\n")
		case groupChain:
			b.WriteString("| implementation | servers | p50 | p99 (median, min-max) | p99.9 | updates lost | S1's reply p99 |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		}
		for _, im := range ms[0].impls {
			for _, sc := range ms {
				size := num(float64(sc.size))
				if !h.stat(sc.id, im, func(m measurement) (float64, bool) { return 0, m.Err == "" }).ok() {
					fmt.Fprintf(b, "| %s | %s | %s |\n", implLabels[im], size, h.why(sc.id, im))
					continue
				}
				switch g.id {
				case groupRecords:
					heap := "n/a"
					if s := h.stat(sc.id, im, mHeapPerRecord); s.ok() {
						heap = fmtNum(s) + " bytes"
					}
					fmt.Fprintf(b, "| %s | %s | %s bytes | %s | %s | %s |\n", implLabels[im], size, fmtNum(h.stat(sc.id, im, mRSSPerRecord)),
						heap, fmtNum(h.stat(sc.id, im, mThroughput)), us(h.stat(sc.id, im, mP99).Med))
				case groupResync:
					fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", implLabels[im], size, fmtSpread(h.stat(sc.id, im, mResync), ms1),
						ms1(h.stat(sc.id, im, mResyncTook).Med), num(h.stat(sc.id, im, mReceived).Med))
				case groupChain:
					fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", implLabels[im], size, us(h.stat(sc.id, im, mP50).Med),
						fmtUs(h.stat(sc.id, im, mP99)), us(h.stat(sc.id, im, mP999).Med), num(sumVals(h.values(sc.id, im, mLost))),
						us(h.stat(sc.id, im, mReplyP99).Med))
				}
			}
		}
		for _, im := range ms[0].impls {
			for _, sc := range ms {
				if n, reason := h.failures(sc.id, im); n > 0 && h.failure(sc.id, im) == "" {
					fmt.Fprintf(b, "\n%s, %s: %d of its runs failed (%s).\n", implLabels[im], num(float64(sc.size)), n, shorten(reason, 200))
				}
			}
		}
		b.WriteString("\n")
		for _, c := range growthChartList(g.id) {
			if h.wrote[c.file] {
				fmt.Fprintf(b, "![%s](%s)\n", c.title, h.chartPath(c.file))
			}
		}
		b.WriteString("\n")
	}
}

// ms1 formats milliseconds.
func ms1(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return us(v * 1e3)
}

// growthChart is one chart of a group: a figure against the group's size, a line per
// implementation with min-max whiskers.
type growthChart struct {
	file, title, ylabel string
	f                   metric
}

func growthChartList(group string) []growthChart {
	switch group {
	case groupRecords:
		return []growthChart{
			{"records-memory.png", "Server memory per record (VmRSS)", "bytes per record", mRSSPerRecord},
			{"records-heap.png", "Live heap per record (reactor)", "bytes per record", mHeapPerRecord},
			{"records-rate.png", "IAMAT rate by records held (64 conns x 16 pipelined)", "replies/s", mThroughput},
			{"records-latency.png", "IAMAT latency by records held", "", nil},
		}
	case groupResync:
		return []growthChart{{"resync.png", "Resync of a restarted server: listening -> resync done", "ms", mResync}}
	case groupChain:
		return []growthChart{
			{"chain.png", "Propagation p99 along a chain at 1,000 updates/s", "p99 propagation time (us)", mP99},
			{"chain-latency.png", "Propagation time along a chain", "", nil},
		}
	}
	return nil
}

// growthCharts writes the charts of every group that ran.
func (h *harness) growthCharts(dir string) error {
	for _, g := range groups {
		ms := h.members(g.id)
		if len(ms) == 0 {
			continue
		}
		xlabel := "records held"
		if g.id == groupChain {
			xlabel = "servers in the chain"
		}
		for _, c := range growthChartList(g.id) {
			var err error
			var ok bool
			if c.f == nil {
				ok, err = h.groupLatencyChart(filepath.Join(dir, c.file), c.title, ms)
			} else {
				ok, err = h.sizeChart(filepath.Join(dir, c.file), c.title, xlabel, c.ylabel, g.id != groupChain, ms, c.f)
			}
			if err != nil {
				return err
			}
			h.wrote[c.file] = ok
		}
	}
	return nil
}

// sizeChart plots f against the scenarios' sizes, one line per implementation.
func (h *harness) sizeChart(path, title, xlabel, ylabel string, logX bool, ms []*scenario, f metric) (bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top, p.Legend.Left = true, true
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	type line struct {
		name string
		pts  plotter.XYs
		ss   []spread
	}
	var lines []line
	var all []float64
	for _, im := range ms[0].impls {
		var l line
		for _, sc := range ms {
			s := h.stat(sc.id, im, f)
			if !s.ok() {
				continue
			}
			l.pts = append(l.pts, plotter.XY{X: float64(sc.size), Y: s.Med})
			l.ss = append(l.ss, s)
			all = append(all, s.Min, s.Max)
		}
		if len(l.pts) > 0 {
			l.name = shortLabels[im]
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return false, nil
	}
	if wantLog(all) {
		useLog(p, slicesMin(all))
	} else {
		linear(p)
	}
	for i, l := range lines {
		lp, pts, err := plotter.NewLinePoints(l.pts)
		if err != nil {
			return false, err
		}
		lp.Color, pts.Color, pts.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		eb, err := plotter.NewYErrorBars(sizeBars{l.pts, l.ss})
		if err != nil {
			return false, err
		}
		eb.Color = plotutil.Color(i)
		p.Add(lp, pts, eb)
		p.Legend.Add(l.name, lp, pts)
	}
	return true, save(p, path, vg.Points(480), vg.Points(320))
}

// sizeBars are min-max whiskers at each point of a size chart.
type sizeBars struct {
	pts plotter.XYs
	ss  []spread
}

func (s sizeBars) Len() int                    { return len(s.pts) }
func (s sizeBars) XY(i int) (float64, float64) { return s.pts[i].X, s.pts[i].Y }
func (s sizeBars) YError(i int) (float64, float64) {
	return s.ss[i].Med - s.ss[i].Min, s.ss[i].Max - s.ss[i].Med
}

// groupLatencyChart plots the latency percentiles of each implementation at each size.
func (h *harness) groupLatencyChart(path, title string, ms []*scenario) (bool, error) {
	var ss []series
	for _, im := range ms[0].impls {
		for _, sc := range ms {
			hist := h.mergedHist(sc.id, im, "latency")
			if hist == nil {
				continue
			}
			size := sizeName(sc.size)
			if sc.group == groupChain {
				size = strconv.Itoa(sc.size) + " servers"
			}
			ss = append(ss, series{shortLabels[im] + ", " + size, percentilePoints(hist)})
		}
	}
	ylabel := "latency (ms)"
	if ms[0].group == groupChain {
		ylabel = "propagation time (ms)"
	}
	return percentileChart(path, title, ylabel, ss)
}

// allocations starts measuring the allocations of the one server process of d (admin: its
// admin listener, "" if it has none); the returned function records them per request of the
// load generator's run into m. A Go server's count is the growth of the Go runtime's malloc
// and allocated-bytes counters, less one scrape's own (measured by two scrapes back to back);
// a server without them gets the growth of its VmRSS.
func (h *harness) allocations(ctx context.Context, d *deployment, admin string) func(m *measurement) {
	pid := d.procs[0].pid()
	rss0, rssErr := readRSS(pid)
	type counts struct{ objects, bytes float64 }
	read := func() (counts, bool) {
		if admin == "" {
			return counts{}, false
		}
		text, err := scrape(ctx, admin, "/metrics")
		if err != nil {
			return counts{}, false
		}
		o, ok1 := metricValue(text, "go_memstats_mallocs_total")
		b, ok2 := metricValue(text, "go_memstats_alloc_bytes_total")
		return counts{o, b}, ok1 && ok2
	}
	a, ok := read()
	b, ok2 := read()
	c0 := b
	scrapeCost := counts{b.objects - a.objects, b.bytes - a.bytes}
	return func(m *measurement) {
		if m.Err != "" || m.Res == nil || m.Res.RequestsAll == 0 {
			return
		}
		n := float64(m.Res.RequestsAll)
		if c1, ok3 := read(); ok && ok2 && ok3 {
			m.AllocsPerReq = (c1.objects - c0.objects - scrapeCost.objects) / n
			m.AllocBytesPerReq = (c1.bytes - c0.bytes - scrapeCost.bytes) / n
			m.HasAllocs = true
		}
		if rss1, err := readRSS(pid); err == nil && rssErr == nil {
			m.RSSPerReq = float64(rss1-rss0) / n
			m.HasRSSPerReq = true
		}
	}
}
