package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/herd-project/herd/bench/internal/result"
)

// The Places path alone: what a WHATSAT's call to Places and the cut of its body cost in each
// runtime, apart from any server. The seed report holds asyncio preferable to Node.js and
// aiohttp a fix for asyncio's lack of an HTTP client; this measures both in the same run.
const (
	placesInFlight = 200
	placesBound    = 5
	// placesLocations are asked about in turn. The fake builds each answer once, at many times
	// the cost of serving it: few, so that the building, spread over a slow
	// client's few thousand requests, does not pass for the fake's cost per request.
	placesLocations = 10
)

var placesPathScenario = &scenario{
	id: "placespath",
	title: fmt.Sprintf("The Places path alone, by runtime: a Nearby Search client, %d requests in flight, Places answering in %d ms",
		placesInFlight, placesDelay.Milliseconds()),
	impls:   placesRuntimes,
	revisit: true,
	run:     placesPath,
	note: fmt.Sprintf("No herd server: each runtime's own client of the Places API (`bench/placespath`: `main.go`, `client.py`, "+
		"`client.mjs`) keeps %d legacy Nearby Search requests in flight (a closed loop) against the fake Places "+
		"(`bench/fakeplaces`, %d ms per answer, 20 results), over at most %d keep-alive connections, asking about %s locations "+
		"in turn (the fake builds each answer once), and cuts each body's `results` to %d the way its runtime naturally would. Go as the herd does: "+
		"`herd/places` on fasthttp, then `codec.AppendPlacesBody`, which keeps Google's bytes. Python as "+
		"`bench/asyncio/server.py` does: one aiohttp `ClientSession` (`TCPConnector(limit=%d)`), `json.loads`, then "+
		"`json.dumps(indent=3)`, on asyncio and on uvloop. Node.js with nothing but its built-in `http` module "+
		"(`http.Agent({keepAlive: true, maxSockets: %d})`), `JSON.parse`, then `JSON.stringify(data, null, 3)`. Latency is "+
		"from a request's send to its cut body, by nearest rank over the window's replies. Client CPU per request is the "+
		"client's own user and system time (getrusage; Node's `process.cpuUsage`) over the window divided by the window's "+
		"replies, and client CPU that time over the window (100%% is one core). The fake Places' CPU per request is its "+
		"time from /proc (1/100 s ticks) over the client's whole run divided by every request the client sent. At %d ms an "+
		"answer, %d in flight allow %s requests/s: a runtime below that is held back by its own CPU, or by the machine's.",
		placesInFlight, placesDelay.Milliseconds(), placesInFlight, num(placesLocations), placesBound, placesInFlight,
		placesInFlight, placesDelay.Milliseconds(), placesInFlight, num(float64(placesInFlight)/placesDelay.Seconds())),
}

// placesPath runs one runtime's client against a fresh fake Places for the warm-up and the
// window, and measures the fake's CPU beside it.
func placesPath(ctx context.Context, h *harness, sc *scenario, impl, tag string) measurement {
	fake, url, err := h.startFake(ctx, sc.id, placesDelay, tag)
	if err != nil {
		return fail(sc, impl, err)
	}
	d := &deployment{extra: []*proc{fake}}
	defer d.stop()
	argv := append(h.t.clientArgv(impl), "-url", url, "-c", strconv.Itoa(placesInFlight), "-bound", strconv.Itoa(placesBound),
		"-locations", strconv.Itoa(placesLocations), "-d", goSeconds(h.o.duration), "-warmup", goSeconds(h.o.warmup))
	h.note(sc.id, implLabels[impl], argv)
	fake0, err := cpuSeconds(fake.pid())
	if err != nil {
		return fail(sc, impl, err)
	}
	m := measurement{Scenario: sc.id, Impl: impl}
	done := d.meter()
	start := time.Now()
	out, err := runCmdSplit(ctx, h.o.work, 10*time.Minute, argv...)
	wall := time.Since(start)
	done(&m)
	fake1, fakeErr := cpuSeconds(fake.pid())
	if err != nil {
		return fail(sc, impl, fmt.Errorf("client: %v: %s", err, firstLine(out.stderr)))
	}
	var r result.Result
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		return fail(sc, impl, fmt.Errorf("client output: %v: %q", err, firstLine(out.stdout)))
	}
	if err := d.check(); err != nil {
		return fail(sc, impl, err)
	}
	if r.Replies == 0 {
		return fail(sc, impl, fmt.Errorf("no replies in the window: %d errors %v %s", r.Errors, r.ErrorKinds,
			strings.Join(r.ErrorSamples, "; ")))
	}
	// The harness's clock, which the machine's and the fake's CPU are read over, not the
	// client's: an interpreter's start-up comes before the client's own clock starts.
	r.WallS = wall.Seconds()
	m.Res = &r
	if fakeErr == nil && r.RequestsAll > 0 {
		m.PlacesPerReq = (fake1 - fake0) / float64(r.RequestsAll) * 1e6
	}
	return m
}

// goSeconds writes d as a Go duration in seconds alone ("90s", "0.5s"), which each client's
// flags read (the Python and Node clients read one unit only).
func goSeconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }

var (
	// mClientPerReq is a placespath client's CPU time per reply in the window, in microseconds.
	mClientPerReq = resMetric(func(m measurement) float64 { return positive(m.Res.CPU.PerRequestUs) })
	// mClientCores is the same client's CPU over the window, in cores.
	mClientCores = resMetric(func(m measurement) float64 { return positive(m.Res.CPU.PerRequestUs * m.Res.Throughput / 1e6) })
	// mFakePerReq is the fake Places' CPU time per request it served, in microseconds.
	mFakePerReq = resMetric(func(m measurement) float64 { return positive(m.PlacesPerReq) })
)

// positive is v, or NaN (no figure) when v is not above 0.
func positive(v float64) float64 {
	if v <= 0 {
		return math.NaN()
	}
	return v
}

// placesPathTable writes the placespath scenario's table, with the commands it ran.
func (h *harness) placesPathTable(b *strings.Builder, sc *scenario) {
	fmt.Fprintf(b, "### %s (`%s`)\n\n%s\n\n", sc.title, sc.id, sc.note)
	b.WriteString("| runtime | requests/s (median, min-max) | p50 | p99 | errors | client CPU per request | client CPU | " +
		"fake Places CPU per request | other CPU |\n|" + strings.Repeat(" --- |", 9) + "\n")
	for _, im := range sc.impls {
		s := h.stat(sc.id, im, mThroughput)
		if !s.ok() {
			fmt.Fprintf(b, "| %s | %s |%s\n", implLabels[im], h.why(sc.id, im), strings.Repeat(" |", 7))
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", implLabels[im], fmtNum(s),
			us(h.stat(sc.id, im, mP50).Med), us(h.stat(sc.id, im, mP99).Med), num(sumVals(h.values(sc.id, im, mErrors))),
			fmtUs(h.stat(sc.id, im, mClientPerReq)), fmtPct(h.stat(sc.id, im, mClientCores)),
			fmtUs(h.stat(sc.id, im, mFakePerReq)), fmtPct(h.stat(sc.id, im, mOtherCPU)))
	}
	for _, im := range sc.impls {
		if n, reason := h.failures(sc.id, im); n > 0 && h.stat(sc.id, im, mThroughput).ok() {
			fmt.Fprintf(b, "\n%s: %d of its runs failed (%s).\n", implLabels[im], n, shorten(reason, 200))
		}
	}
	b.WriteString("\nThe commands (one of each; `$WORK` is the run's work directory), run with `go run ./bench/harness -only placespath`:\n\n")
	for _, c := range h.commands {
		if c.Scenario == sc.id {
			fmt.Fprintf(b, "```sh\n# %s\n%s\n```\n\n", c.What, c.Line)
		}
	}
}
