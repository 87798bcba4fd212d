package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/herd-project/herd/bench/internal/result"
)

// scenario is one benchmark: which implementations it runs and how one run goes.
type scenario struct {
	id     string
	title  string
	impls  []string
	metric string // what the charts and ratios compare: "throughput", "p99" or "rss"; "" in a group
	group  string // how cost grows: the group (records, resync, chain) this scenario is a size of
	size   int    // in a group: records held, or servers in the chain
	// revisit puts the scenario's table among the figures for "The asyncio report,
	// revisited" instead of under Results (placespath: clients, not servers).
	revisit bool
	note    string // what the scenario asks, in the report under its title
	run     func(ctx context.Context, h *harness, sc *scenario, impl string, tag string) measurement
}

// Fixed parameters of the scenarios.
const (
	pipelineDepth = 16
	manyConns     = 10000
	herdConns     = 64
	whatsatConns  = 1000
	// whatsatClients is how many distinct client ids (each at its own location) the WHATSAT
	// load asks about. Connection i asks for ids i, i+1000, i+2000, ... with one request
	// outstanding, so no two requests in flight are the same and none is shared (SPEC §7
	// shares identical requests in flight): every WHATSAT costs a real Places call.
	whatsatClients = 10000
	placesDelay    = 50 * time.Millisecond
	sideRate       = 2000 // IAMAT/s on other connections during the WHATSAT load
	sideConns      = 16
)

var goServers = []string{implHerd, implHerdNoLg, implBaseline}

// everyServer is every herd server implementation: the Go servers and both Python designs.
var everyServer = append(append([]string(nil), goServers...), pythonImpls...)

var scenarios = []*scenario{
	{id: "p16", title: "IAMAT, one server, 64 connections, 16 pipelined", metric: "throughput",
		impls: []string{implHerd, implHerdNoLg, implBaseline, implRedis}, run: single(64, pipelineDepth)},
	{id: "p1", title: "IAMAT, one server, 64 connections, no pipelining", metric: "throughput",
		impls: append(append([]string(nil), everyServer...), implRedis), run: single(64, 1), note: p1Note},
	{id: "c10k", title: "IAMAT, one server, 10,000 connections", metric: "throughput",
		impls: goServers, run: single(manyConns, 1)},
	{id: "idle10k", title: "10,000 idle connections: server memory per connection", metric: "rss",
		impls: append(append([]string(nil), everyServer...), implRedis), run: idle},
	{id: "herd5", title: "IAMAT at Hill of the five-server herd (flooding), 64 connections", metric: "throughput",
		impls: everyServer, run: herd5},
	{id: "prop1k", title: "Propagation Hill -> Campbell at 1,000 updates/s", metric: "p99",
		impls: everyServer, run: propagation(1000, 1)},
	{id: "prop10k", title: "Propagation Hill -> Campbell at 10,000 updates/s", metric: "p99",
		impls: goServers, run: propagation(10000, 4)},
	{id: "whatsat", title: "WHATSAT, 1,000 clients, Places answering in 50 ms, with IAMAT load alongside", metric: "throughput",
		impls: everyServer, run: whatsat, note: "1,000 connections, each with one WHATSAT outstanding (closed loop), over 10,000 distinct " +
			"client ids, each at its own location: no two requests in flight are identical, so none is shared and every " +
			"WHATSAT is a real call to the fake Places (`bench/fakeplaces`, 50 ms per answer, Google's body cut to the bound " +
			"of 5). Each server may keep 1,000 connections to it. Alongside, 16 other connections send 2,000 IAMAT/s open " +
			"loop; their p99 is the \"IAMAT p99 alongside\" column. At 50 ms per answer, 1,000 connections allow 20,000 replies/s."},
}

func init() { scenarios = append(append(scenarios, placesPathScenario), growthScenarios()...) }

// selected reports whether -only asks for sc (by its id or its group's).
func (h *harness) selected(sc *scenario) bool {
	return len(h.o.only) == 0 || h.o.only[sc.id] || (sc.group != "" && h.o.only[sc.group])
}

func scenarioByID(id string) *scenario {
	for _, s := range scenarios {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (h *harness) window() []string {
	return []string{"-d", h.o.duration.String(), "-warmup", h.o.warmup.String()}
}

func fail(sc *scenario, impl string, err error) measurement {
	return measurement{Scenario: sc.id, Impl: impl, Err: err.Error()}
}

// finish turns a loadgen result into a measurement, checking that the servers survived.
func finish(sc *scenario, impl string, d *deployment, res *result.Result, err error) measurement {
	if err == nil {
		err = d.check()
	}
	if err != nil {
		return fail(sc, impl, err)
	}
	return measurement{Scenario: sc.id, Impl: impl, Res: res}
}

// deploy starts the servers of a topology of kind (see newTopology), changed first by edit
// if given, for a run of sc under impl. The caller stops the deployment.
func (h *harness) deploy(ctx context.Context, sc *scenario, impl, tag, kind string, edit func(*topology) error) (*topology, *deployment, error) {
	tp, err := newTopology(kind)
	if err != nil {
		return nil, nil, err
	}
	if edit != nil {
		if err := edit(tp); err != nil {
			return nil, nil, err
		}
	}
	d, err := h.startServers(ctx, sc.id, impl, tp, tag)
	if err != nil {
		return nil, nil, err
	}
	return tp, d, nil
}

const p1Note = "Besides the rates, each server's allocations per request are measured here: for the Go servers the " +
	"growth of `go_memstats_mallocs_total` and `go_memstats_alloc_bytes_total` (the Go runtime's counts, on the " +
	"server's admin listener) over the load generator's run, less what one scrape itself allocates (two scrapes back " +
	"to back before the run), divided by every request of the run, warm-up included; for the others, which have no " +
	"such counter, the growth of the server's VmRSS over the run per request (what stays allocated, not what was " +
	"allocated and freed). See the figures for \"The asyncio report, revisited\"."

// single measures closed-loop IAMAT (Redis: inline SET) on one server with no neighbours.
// Without pipelining it also measures the server's allocations per request (see p1Note).
func single(conns, depth int) func(context.Context, *harness, *scenario, string, string) measurement {
	return func(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
		tp, d, err := h.deploy(ctx, sc, impl, tag, "single", func(tp *topology) error {
			if depth > 1 {
				return nil
			}
			return tp.takeAdminPorts(impl)
		})
		if err != nil {
			return fail(sc, impl, err)
		}
		defer d.stop()
		allocs := func(*measurement) {}
		if depth == 1 && impl != implRedis {
			allocs = h.allocations(ctx, d, tp.servers[0].adminAddr())
		}
		args := []string{"-addr", tp.servers[0].addr(), "-c", strconv.Itoa(conns), "-P", strconv.Itoa(depth)}
		what := "loadgen"
		if impl == implRedis {
			args = append(args, "-scenario", "raw", "-template", "SET k:%d v")
			what = "loadgen (Redis)"
		} else {
			args = append(args, "-scenario", "iamat")
		}
		done := d.meter()
		res, err := h.loadgen(ctx, sc.id, what, append(args, h.window()...)...)
		m := finish(sc, impl, d, res, err)
		done(&m)
		allocs(&m)
		return m
	}
}

// idle measures the server's resident memory per idle connection.
func idle(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
	tp, d, err := h.deploy(ctx, sc, impl, tag, "single", func(tp *topology) error {
		// A Places provider that loads no dataset (it is never called here): memory the
		// server allocated and freed at start (the offline dataset) would otherwise be reused
		// by the connections and hide their cost.
		tp.placesURL = "http://127.0.0.1:9"
		return nil
	})
	if err != nil {
		return fail(sc, impl, err)
	}
	defer d.stop()
	res, err := h.loadgen(ctx, sc.id, "loadgen", "-scenario", "idle", "-addr", tp.servers[0].addr(),
		"-c", strconv.Itoa(manyConns), "-pid", strconv.Itoa(d.procs[0].pid()), "-settle", "2s",
		// A Python server takes its 10,000 connections through a listen backlog of 100: the
		// dials that overflow it are retried by the kernel after 1, 3, 7 s...
		"-timeout", "5m")
	return finish(sc, impl, d, res, err)
}

// herd5 measures IAMAT at Hill of the five-server herd, every update flooded.
func herd5(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
	tp, d, err := h.deploy(ctx, sc, impl, tag, "five", nil)
	if err != nil {
		return fail(sc, impl, err)
	}
	defer d.stop()
	if err := waitLinked(ctx, tp, 30*time.Second); err != nil {
		return fail(sc, impl, err)
	}
	done := d.meter()
	res, err := h.loadgen(ctx, sc.id, "loadgen", append([]string{"-scenario", "iamat", "-addr", tp.servers[0].addr(),
		"-c", strconv.Itoa(herdConns), "-P", "1"}, h.window()...)...)
	m := finish(sc, impl, d, res, err)
	done(&m)
	return m
}

// propagation times updates from Hill until Campbell floods them to the probe.
func propagation(rate, conns int) func(context.Context, *harness, *scenario, string, string) measurement {
	return func(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
		return h.propagate(ctx, sc, impl, tag, "five", rate, conns)
	}
}

// propagate times updates, rate a second over conns connections, from the first server of
// a topology of kind until its last server floods them to the probe, its neighbour.
func (h *harness) propagate(ctx context.Context, sc *scenario, impl, tag, kind string, rate, conns int) measurement {
	tp, d, err := h.deploy(ctx, sc, impl, tag, kind, func(tp *topology) error {
		port, err := freePort()
		tp.probe, tp.probeOf = fmt.Sprintf("127.0.0.1:%d", port), tp.servers[len(tp.servers)-1].name
		return err
	})
	if err != nil {
		return fail(sc, impl, err)
	}
	defer d.stop()
	done := d.meter()
	res, err := h.loadgen(ctx, sc.id, "loadgen", append([]string{"-scenario", "propagation",
		"-addr", tp.servers[0].addr(), "-listen", tp.probe, "-rate", strconv.Itoa(rate), "-c", strconv.Itoa(conns)},
		h.window()...)...)
	m := finish(sc, impl, d, res, err)
	done(&m)
	return m
}

// whatsat drives WHATSAT on 1,000 connections against a Places API that answers in 50 ms,
// while an open-loop IAMAT load on other connections measures the latency everyone else sees.
func whatsat(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
	if r, ok := h.t.missing[impl]; ok {
		return fail(sc, impl, fmt.Errorf("not available: %s", r))
	}
	fake, url, err := h.startFake(ctx, sc.id, placesDelay, tag)
	if err != nil {
		return fail(sc, impl, err)
	}
	tp, d, err := h.deploy(ctx, sc, impl, tag, "single", func(tp *topology) error {
		tp.placesURL = url
		// One upstream connection per client: the default pool (64) would cap replies at
		// 64 / 50 ms = 1,280/s whatever the server's design.
		tp.placesMax = whatsatConns
		return nil
	})
	if err != nil {
		fake.stop()
		return fail(sc, impl, err)
	}
	d.extra = append(d.extra, fake)
	defer d.stop()
	addr := tp.servers[0].addr()
	done := d.meter()
	var wg sync.WaitGroup
	var side *result.Result
	var sideErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		// WHATSAT's loadgen first sends an IAMAT per client: start measuring a little later,
		// and stop a little earlier, so this window lies inside the WHATSAT one.
		sd := max(h.o.duration-500*time.Millisecond, time.Second)
		side, sideErr = h.loadgen(ctx, sc.id, "loadgen (IAMAT alongside)", "-scenario", "iamat", "-addr", addr,
			"-prefix", "side", "-rate", strconv.Itoa(sideRate), "-c", strconv.Itoa(sideConns),
			"-d", sd.String(), "-warmup", (h.o.warmup + 500*time.Millisecond).String())
	}()
	res, err := h.loadgen(ctx, sc.id, "loadgen", append([]string{"-scenario", "whatsat", "-addr", addr,
		"-c", strconv.Itoa(whatsatConns), "-P", "1", "-clients", strconv.Itoa(whatsatClients)}, h.window()...)...)
	wg.Wait()
	if err == nil {
		err = sideErr
	}
	m := finish(sc, impl, d, res, err)
	m.Side = side
	done(&m)
	return m
}

// full runs every selected scenario and writes the report.
func (h *harness) full(ctx context.Context) error {
	if b0, err := machineBusy(); err == nil {
		// Nothing of ours runs yet: whatever the cores do now is other processes' work.
		time.Sleep(time.Second)
		if b1, err := machineBusy(); err == nil && b1-b0 > 0.2 {
			h.logf("warning: other processes are using %.0f%% of a core before the run starts; the figures will share the cores with them", 100*(b1-b0))
		}
	}
	for _, sc := range scenarios {
		if !h.selected(sc) {
			continue
		}
		var impls []string
		for _, im := range sc.impls {
			if len(h.o.impls) > 0 && !h.o.impls[im] {
				continue
			}
			if r, ok := h.t.missing[im]; ok {
				h.ms = append(h.ms, measurement{Scenario: sc.id, Impl: im, Err: "not available: " + r})
				continue
			}
			impls = append(impls, im)
		}
		// Runs interleave the implementations, so slow drift of the machine hits all alike.
		for run := 1; run <= h.o.runs; run++ {
			for _, im := range impls {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				start := time.Now()
				m := sc.run(ctx, h, sc, im, h.tag(sc.id, im, strconv.Itoa(run)))
				m.Run = run
				h.ms = append(h.ms, m)
				h.logf("%-8s run %d/%d %-11s %s (%.1fs)", sc.id, run, h.o.runs, im, m.brief(), time.Since(start).Seconds())
			}
		}
	}
	if b, err := json.MarshalIndent(h.ms, "", "  "); err == nil {
		path := filepath.Join(h.o.work, "results.json")
		if err := os.WriteFile(path, b, 0o644); err == nil && h.o.keep {
			h.logf("raw results in %s", path)
		}
	}
	var x extras
	if h.o.allocs && (len(h.o.only) == 0 || h.o.only["allocs"]) {
		x.allocs, x.allocErr = h.measureAllocs(ctx)
		if x.allocErr != "" {
			h.logf("allocations: %s", x.allocErr)
		}
	}
	if h.o.instructions && (len(h.o.only) == 0 || h.o.only["instructions"]) {
		x.instr, x.instrErr = h.measureInstructions(ctx)
		if x.instrErr != "" {
			h.logf("instructions: %s", x.instrErr)
		}
		x.instrRan = true
	}
	return h.writeReport(ctx, x)
}

// extras are the measurements made apart from the scenarios: the herd package's allocation
// benchmarks and the instruction counts.
type extras struct {
	allocs   []allocLine
	allocErr string
	instr    []instrLine
	instrErr string
	instrRan bool
}

// brief is a one-line summary of a measurement for the progress log.
func (m measurement) brief() string {
	if m.Err != "" {
		return "FAILED: " + m.Err
	}
	if m.Res == nil {
		return fmt.Sprintf("resync of %s records: %.1f ms from listening (%.1f ms as logged), %d received",
			num(float64(m.Size)), m.ResyncS*1e3, m.ResyncTookS*1e3, m.Received)
	}
	r := m.Res
	s := ""
	if m.RSSPerRecord != 0 {
		s = fmt.Sprintf("%.0f bytes/record (VmRSS), %.0f (heap); ", m.RSSPerRecord, m.HeapPerRecord)
	}
	switch r.Scenario {
	case "idle":
		s += fmt.Sprintf("%.0f bytes/conn", r.RSSPerConn)
	case "propagation":
		s += fmt.Sprintf("p50 %.0fus p99 %.0fus lost %d", r.Latency.P50, r.Latency.P99, r.Lost)
	case "placespath":
		s += fmt.Sprintf("%.0f/s p50 %.0fus p99 %.0fus, client CPU %.0fus a request, fake Places %.0fus", r.Throughput,
			r.Latency.P50, r.Latency.P99, r.CPU.PerRequestUs, m.PlacesPerReq)
	default:
		s += fmt.Sprintf("%.0f/s p50 %.0fus p99 %.0fus", r.Throughput, r.Latency.P50, r.Latency.P99)
	}
	if m.Side != nil {
		s += fmt.Sprintf("; IAMAT alongside p99 %.0fus", m.Side.Latency.P99)
	}
	if o, ok := mOtherCPU(m); ok && o > 0.1 {
		s += fmt.Sprintf(" (other processes used %.0f%% of a core)", 100*o)
	}
	if r.Errors > 0 {
		s += fmt.Sprintf(" errors %d %v", r.Errors, r.ErrorKinds)
	}
	return s
}
