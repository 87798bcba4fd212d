// Command harness runs every benchmark scenario against every server implementation, each in
// processes of its own, and regenerates BENCHMARKS.md (with PNG charts) from the results: the
// reactor server (cmd/herd, logging on and off), the goroutine-per-connection baseline
// (bench/baseline), the Python asyncio baselines (bench/asyncio: the seed's design, server.py,
// and the best asyncio design, best.py, each plain and on uvloop) and Redis (inline SET) as the
// reference single-threaded reactor, all driven by bench/loadgen. A Go server's five-server
// herd is one process (herd run, baseline run; -herd-procs: one per server), a Python herd one
// process per server. Besides the scenarios it measures how cost grows (memory per record and
// the IAMAT rate by records held, a restarted server's resync time, propagation along chains)
// and counts the instructions per request under valgrind's callgrind. The placespath scenario
// runs no server: it measures a WHATSAT's Places call and the cut of its body alone, in a
// client of each runtime (bench/placespath: Go, Python's aiohttp on asyncio and uvloop,
// Node.js), for the figures of "The asyncio report, revisited". Every port it or its servers
// listen on comes from -ports.
//
//	go run ./bench/harness            the full run (about 10 minutes on two cores), writes BENCHMARKS.md
//	go run ./bench/harness -smoke     seconds: start everything, check the replies, write nothing
//
// An implementation that is missing or does not build is reported as not available, with the
// reason (Node.js, say, which scripts/deps.sh does not install); the other results are still
// measured.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/herd-project/herd/internal/cli"

	"github.com/herd-project/herd/internal/ephemeral"
)

func main() { cli.Main(run, cli.Options{}) }

type options struct {
	smoke    bool
	runs     int
	duration time.Duration
	warmup   time.Duration
	only     map[string]bool
	impls    map[string]bool
	out      string
	charts   string
	repo     string
	work     string
	keep     bool
	verbose  bool
	allocs   bool
	// instructions counts instructions per request under callgrind (valgrind).
	instructions bool
	// herdProcs runs every server of a multi-server herd as its own process for the Go
	// servers too (by default each Go herd is one process, as herd run and baseline run are).
	herdProcs bool
	bins      map[string]string // prebuilt binaries by name, instead of go build
	ports     *portRange        // -ports; nil: the default range
}

const usageText = `harness runs every benchmark scenario against every server implementation and
regenerates BENCHMARKS.md and its charts from scratch (or, with -smoke, only checks that every
implementation starts and answers correctly).

Usage: go run ./bench/harness [flags]

Scenarios (-only takes these ids, comma-separated):
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.FlagSet("harness", stderr, func(w io.Writer) {
		_, _ = io.WriteString(w, usageText)
		for _, s := range scenarios {
			if s.group == "" {
				fmt.Fprintf(w, "  %-12s %s\n", s.id, s.title)
			}
		}
		_, _ = io.WriteString(w, "\nHow cost grows (-only takes a group, or one of its sizes):\n")
		for _, g := range groups {
			var ids []string
			for _, s := range scenarios {
				if s.group == g.id {
					ids = append(ids, s.id)
				}
			}
			fmt.Fprintf(w, "  %-12s %s: %s\n", g.id, g.title, strings.Join(ids, ", "))
		}
		fmt.Fprintf(w, "\nImplementations (-impls): %s\nand placespath's clients: %s\n\nFlags:\n", strings.Join(allImpls, ", "),
			strings.Join(placesRuntimes, ", "))
	})
	var only, impls, bins, ports string
	fs.BoolVar(&o.smoke, "smoke", false, "only start every implementation and check its replies (seconds); write no report")
	fs.IntVar(&o.runs, "runs", 3, "runs of each scenario for each implementation (the report gives the median and min-max)")
	fs.DurationVar(&o.duration, "d", 3*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before measuring in each run")
	fs.StringVar(&only, "only", "", "run only these scenario `ids` (comma-separated; default all)")
	fs.StringVar(&impls, "impls", "", "run only these `implementations` (comma-separated; default all)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "report path, relative to the repository root unless absolute")
	fs.StringVar(&o.charts, "charts", "bench/charts", "chart directory, relative to the repository root unless absolute")
	fs.StringVar(&o.repo, "repo", "", "repository root (default: the directory holding go.mod above the working directory)")
	fs.StringVar(&o.work, "work", "", "work directory for binaries, configs and logs (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (server logs, configs)")
	fs.BoolVar(&o.verbose, "v", false, "log every command")
	fs.BoolVar(&o.allocs, "allocs", true, "measure allocations per IAMAT with go test -bench BenchmarkIAMAT ./herd/ (-only allocs: this alone)")
	fs.BoolVar(&o.instructions, "instructions", true, "count the instructions per IAMAT and per WHATSAT of each Go server under valgrind's callgrind (-only instructions: this alone)")
	fs.BoolVar(&o.herdProcs, "herd-procs", false, "run each server of a multi-server herd as its own process for the Go servers too (herd serve NAME, baseline serve NAME), as Python's always are; default: one process per herd (herd run, baseline run)")
	fs.StringVar(&bins, "bin", "", "use prebuilt binaries instead of building them: `name=path,...` (names: loadgen, herd, baseline, fakeplaces, inproc, placespath)")
	fs.StringVar(&ports, "ports", "", "take every port the harness and its servers listen on from this `range` LO-HI (e.g. 20000-29999; default: 10000 up to the kernel's ephemeral range)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("harness: unexpected argument %q", fs.Arg(0))
	}
	if ports != "" {
		r, err := parsePorts(ports)
		if err != nil {
			return nil, err
		}
		o.ports = &r
	}
	if o.runs < 1 || o.duration <= 0 || o.warmup < 0 {
		return nil, errors.New("harness: -runs must be at least 1 and -d positive")
	}
	o.bins = map[string]string{}
	for _, kv := range strings.Split(bins, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("harness: -bin %q: want name=path", kv)
		}
		if v, err := filepath.Abs(v); err == nil {
			o.bins[k] = v
		}
	}
	o.only = set(only)
	o.impls = set(impls)
	for id := range o.only {
		if scenarioByID(id) == nil && growthSizes[id] == nil && id != "allocs" && id != "instructions" {
			return nil, fmt.Errorf("harness: unknown scenario %q", id)
		}
	}
	for im := range o.impls {
		if implLabels[im] == "" {
			return nil, fmt.Errorf("harness: unknown implementation %q", im)
		}
	}
	return o, nil
}

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

var allImpls = []string{implHerd, implHerdNoLg, implBaseline, implAsyncio, implUvloop, implBest, implUvBest, implRedis}

// everyImpl is every name -impls takes: the servers, then placespath's clients.
var everyImpl = append(append([]string(nil), allImpls...), placesRuntimes...)

// findRepo walks up from dir to the directory holding go.mod.
func findRepo(dir string) (string, error) {
	for {
		if exists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("harness: no go.mod above the working directory (use -repo)")
		}
		dir = up
	}
}

// run is the whole command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if o.repo, err = findRepo(wd); err != nil {
			return err
		}
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "herd-bench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.work)
		}
	}
	// The servers inherit the limit: a Python server or Redis holding 10,000 connections
	// needs more than the usual 1,024 descriptors. (Go raises its own soft limit, but puts the
	// old one back for the processes it starts, unless the program sets it itself.)
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "harness: raising the open-file limit: %v\n", err)
	}
	h := &harness{o: o, stdout: stdout, stderr: stderr, started: time.Now()}
	h.logf("work directory %s", o.work)
	if o.ports != nil {
		setPorts(*o.ports)
		if low := ephemeral.Low(); o.ports.hi >= low {
			h.logf("warning: -ports %s reaches into the kernel's ephemeral range (from %d): an outgoing connection may hold a port a server is about to bind", o.ports, low)
		}
	}
	h.t = prepare(ctx, o.repo, o.work, o.bins, h.logf)
	if r, ok := h.t.missing["loadgen"]; ok {
		return fmt.Errorf("harness: the load generator is not available: %s", r)
	}
	for _, im := range everyImpl {
		if r, ok := h.t.missing[im]; ok {
			h.logf("%s not available: %s", im, r)
		}
	}
	if o.smoke {
		return h.smoke(ctx)
	}
	return h.full(ctx)
}
