package main

import (
	"fmt"
	"math"
	"strings"
)

// Figures for "The asyncio report, revisited": what each runtime costs, from the scenarios of
// the same run, one row per implementation.
var (
	// mCPUPerReply is the servers' CPU time per reply, in microseconds: their CPU over the
	// run (in cores) divided by the rate of replies in the window.
	mCPUPerReply = resMetric(func(m measurement) float64 {
		if m.Res.Throughput <= 0 {
			return math.NaN()
		}
		return m.ServerCPU / m.Res.Throughput * 1e6
	})
	mAllocsPerReq = func(m measurement) (float64, bool) { return m.AllocsPerReq, m.Err == "" && m.HasAllocs }
	mAllocBytes   = func(m measurement) (float64, bool) { return m.AllocBytesPerReq, m.Err == "" && m.HasAllocs }
	mRSSPerReq    = func(m measurement) (float64, bool) { return m.RSSPerReq, m.Err == "" && m.HasRSSPerReq }
)

// revisitColumns are the figures of the section, each from one scenario.
var revisitColumns = []struct {
	head, scenario string
	f              metric
	show           func(float64) string
}{
	{"memory per idle connection (`idle10k`)", "idle10k", mRSS, func(v float64) string { return num(v) + " B" }},
	{"heap objects allocated per IAMAT (`p1`)", "p1", mAllocsPerReq, func(v float64) string { return fmt.Sprintf("%.2f", v) }},
	{"bytes allocated per IAMAT (`p1`)", "p1", mAllocBytes, func(v float64) string { return fmt.Sprintf("%.1f B", v) }},
	{"VmRSS growth per IAMAT (`p1`)", "p1", mRSSPerReq, func(v float64) string { return fmt.Sprintf("%.2f B", v) }},
	{"server CPU per IAMAT (`p1`)", "p1", mCPUPerReply, us},
	{"server CPU per WHATSAT reply (`whatsat`)", "whatsat", mCPUPerReply, us},
	{"WHATSAT replies/s (`whatsat`)", "whatsat", mThroughput, num},
	{"IAMAT p99 alongside WHATSAT (`whatsat`)", "whatsat", mSideP99, us},
	{"five-server herd IAMAT/s (`herd5`)", "herd5", mThroughput, num},
	{"propagation p99, five servers (`prop1k`)", "prop1k", mP99, us},
}

// asyncioFigures writes the generated section that "The asyncio report, revisited" draws on.
func (h *harness) asyncioFigures(b *strings.Builder) {
	b.WriteString("## Figures for \"The asyncio report, revisited\"\n\n")
	b.WriteString("Generated from the scenarios above, of this one run (medians over the runs): one row per " +
		"implementation, each figure from the scenario named in its column. The seed's design is the original report's " +
		"(a new connection per flooded update); the best design is what asyncio can do with the same protocol " +
		"(`bench/asyncio/best.py`: protocols, a persistent link per neighbour with a writer task, a full resync on " +
		"link-up). Heap objects and bytes allocated come from the Go runtime's own counters on the server's admin " +
		"listener; Python has no such counter that is cheap to read (tracemalloc slows every allocation), so its column " +
		"is the growth of its resident memory instead, which counts what stays allocated, not what is allocated and " +
		"freed. Server CPU per reply is the servers' CPU time over the run divided by the replies' rate; for WHATSAT it " +
		"is the cost of the Places path in each runtime (the HTTP client, the JSON, the cut to the bound), the fake " +
		"Places' own CPU apart. The table after this one measures that path alone, with no server around it, in Go, " +
		"Python (aiohttp on asyncio and on uvloop) and Node.js (`placespath`).\n\n")
	heads := []string{"implementation"}
	for _, c := range revisitColumns {
		heads = append(heads, c.head)
	}
	b.WriteString("| " + strings.Join(heads, " | ") + " |\n|" + strings.Repeat(" --- |", len(heads)) + "\n")
	for _, im := range append(append([]string(nil), everyServer...), implRedis) {
		cells := []string{implLabels[im]}
		some := false
		for _, c := range revisitColumns {
			s := h.stat(c.scenario, im, c.f)
			if !s.ok() {
				cells = append(cells, "")
				continue
			}
			some = true
			cells = append(cells, c.show(s.Med))
		}
		if some {
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	b.WriteString("\nAn empty cell: the scenario did not run for that implementation in this run, or has no such figure " +
		"for it (see the scenario's own table for why).\n\n")
	if h.selected(placesPathScenario) {
		h.placesPathTable(b, placesPathScenario)
	}
}
