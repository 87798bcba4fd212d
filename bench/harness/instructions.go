package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Instruction counts: the server runs under valgrind's callgrind, whose counts of executed
// instructions do not depend on the machine's load or clock. Its counters are zeroed, n
// requests are sent one at a time on one loopback connection, and the counters dumped
// (callgrind_control, which reaches the process through valgrind's gdbserver, not a signal:
// callgrind asserts on the signals a Go server takes at a stop). The difference between a run
// of instrLong and one of instrShort requests, divided by the difference in requests, is the
// cost of one request end to end in the server's own code (the kernel's work is not counted):
// reading it, answering it, writing the reply, the loop around them; what every run pays once
// (the connection, the WHATSAT load's IAMAT per client id) cancels out.
const (
	instrPairs   = 3   // short/long pairs; the report gives the median and the range
	instrClients = 100 // WHATSAT: client ids asked about (each primed with one IAMAT per run)
)

// instrCounts are, for each request kind, the requests sent before the first pair (tables,
// buffers and pools at their size) and the request counts of a short and a long run. A
// WHATSAT costs about a hundred times an IAMAT (its Places call, the body's scan and cut),
// and takes about 30 ms under callgrind: fewer of them give as steady a figure.
var instrCounts = map[string][3]int{"iamat": {2000, 1000, 11000}, "whatsat": {200, 100, 600}}

// instrImpls are the servers counted: their binaries are built without cgo, which valgrind
// cannot follow through a Go program's thread start.
var instrImpls = []string{implHerdNoLg, implHerd, implBaseline}

// instrLine is one implementation's instructions per request of one kind.
type instrLine struct {
	Impl, Kind string
	PerReq     spread
	Err        string
}

const instrCommand = "GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=F SERVER; " +
	"then per run: callgrind_control -z PID; loadgen -c 1 -P 1 -n N ...; callgrind_control --dump PID"

// measureInstructions counts the instructions per IAMAT and per WHATSAT of each server; a
// reason instead when valgrind or the static builds are not available.
func (h *harness) measureInstructions(ctx context.Context) ([]instrLine, string) {
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, "not available: " + tool + " not found (apt-get install valgrind; scripts/deps.sh bench installs it)"
		}
	}
	bins := map[string]string{}
	for name, pkg := range map[string]string{"herd": "./cmd/herd", "baseline": "./bench/baseline"} {
		path := filepath.Join(h.o.work, "bin", name+"-static")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path, pkg)
		cmd.Dir, cmd.Env = h.o.repo, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, "not available: CGO_ENABLED=0 go build " + pkg + " failed: " + firstLine(string(out)+" "+err.Error())
		}
		bins[name] = path
	}
	var out []instrLine
	for _, im := range instrImpls {
		for _, kind := range []string{"iamat", "whatsat"} {
			l := instrLine{Impl: im, Kind: kind}
			per, err := h.countInstructions(ctx, im, kind, bins)
			if err != nil {
				l.Err = err.Error()
			}
			l.PerReq = summarizeVals(per)
			h.logf("instructions %-10s %-7s %s %s", im, kind, fmtNum(l.PerReq), l.Err)
			out = append(out, l)
		}
	}
	return out, ""
}

// countInstructions runs impl under callgrind and returns the instructions per request of
// kind, one figure per pair of runs.
func (h *harness) countInstructions(ctx context.Context, impl, kind string, bins map[string]string) ([]float64, error) {
	tag := h.tag("instr", impl, kind)
	tp, err := newTopology("single")
	if err != nil {
		return nil, err
	}
	tp.logDir = "off"
	if impl == implHerd || impl == implBaseline {
		tp.logDir = filepath.Join(h.o.work, tag+"-logs")
	}
	if kind == "whatsat" {
		fake, url, err := h.startFake(ctx, "instructions", 0, tag)
		if err != nil {
			return nil, err
		}
		defer fake.stop()
		tp.placesURL = url
	}
	cfg := filepath.Join(h.o.work, tag+".toml")
	if err := os.WriteFile(cfg, []byte(tp.toml()), 0o644); err != nil {
		return nil, err
	}
	bin := bins["herd"]
	if impl == implBaseline {
		bin = bins["baseline"]
	}
	dumps := filepath.Join(h.o.work, tag+".callgrind")
	argv := []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + dumps, bin, "serve", "-config", cfg, "Hill"}
	h.note("instructions", implLabels[impl]+" under callgrind", argv)
	p, err := startProc("callgrind "+impl, tp.servers[0].addr(), filepath.Join(h.o.work, tag+".out"), h.o.work,
		[]string{"GODEBUG=asyncpreemptoff=1"}, argv...)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}()
	if err := p.waitReady(ctx, 3*time.Minute); err != nil {
		return nil, err
	}
	addr := tp.servers[0].addr()
	send := func(n int) error {
		args := []string{"-scenario", kind, "-addr", addr, "-c", "1", "-P", "1", "-n", strconv.Itoa(n), "-d", "30m",
			"-clients", strconv.Itoa(instrClients), "-prefix", "instr"}
		r, err := h.loadgen(ctx, "instructions", "loadgen ("+kind+")", args...)
		if err == nil && (r.Replies != uint64(n) || r.Errors > 0) {
			err = fmt.Errorf("%d replies to %d requests, %d errors %v", r.Replies, n, r.Errors, r.ErrorSamples)
		}
		return err
	}
	control := func(args ...string) error {
		argv := append([]string{"callgrind_control"}, append(args, strconv.Itoa(p.pid()))...)
		h.note("instructions", "callgrind_control", argv)
		out, err := runCmd(ctx, h.o.work, time.Minute, argv...)
		if err != nil {
			return fmt.Errorf("callgrind_control %s: %v: %s", args[0], err, firstLine(out))
		}
		return nil
	}
	counts := instrCounts[kind]
	if err := send(counts[0]); err != nil {
		return nil, err
	}
	dump := 0
	var per []float64
	for range instrPairs {
		var totals [2]float64
		for i, n := range counts[1:] {
			if err := control("-z"); err != nil {
				return nil, err
			}
			if err := send(n); err != nil {
				return nil, err
			}
			if err := control("--dump=" + strconv.Itoa(n)); err != nil {
				return nil, err
			}
			dump++
			t, err := waitTotals(ctx, fmt.Sprintf("%s.%d", dumps, dump))
			if err != nil {
				return nil, err
			}
			totals[i] = t
		}
		per = append(per, (totals[1]-totals[0])/float64(counts[2]-counts[1]))
	}
	return per, nil
}

// waitTotals waits for a callgrind dump file to be complete and returns its event total.
func waitTotals(ctx context.Context, path string) (float64, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		if f, err := os.Open(path); err == nil {
			t, err := parseCallgrindTotals(f)
			f.Close()
			if err == nil {
				return t, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("harness: no complete callgrind dump %s", filepath.Base(path))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// parseCallgrindTotals returns the "totals:" (or "summary:") line's first event count of a
// callgrind output file: instructions executed (Ir).
func parseCallgrindTotals(r interface{ Read([]byte) (int, error) }) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	summary := -1.0
	for sc.Scan() {
		l := sc.Text()
		for _, key := range []string{"totals:", "summary:"} {
			if rest, ok := strings.CutPrefix(l, key); ok {
				f := strings.Fields(rest)
				if len(f) == 0 {
					continue
				}
				v, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					return 0, fmt.Errorf("harness: callgrind %s %q", key, rest)
				}
				if key == "totals:" {
					return v, nil
				}
				summary = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if summary >= 0 {
		return summary, nil
	}
	return 0, errors.New("harness: no totals in the callgrind output")
}

// instructionTable writes the report's section on instruction counts.
func (h *harness) instructionTable(b *strings.Builder, lines []instrLine, reason string) {
	b.WriteString("### Instructions per request (callgrind)\n\n")
	fmt.Fprintf(b, "Counted with valgrind's callgrind, so free of the machine's load: each server (built with `CGO_ENABLED=0`) "+
		"runs alone under `%s`. After %s warm-up IAMATs (%s WHATSATs), the counters are zeroed, N requests are sent one at a time "+
		"on one loopback connection (`loadgen -c 1 -P 1 -n N`), and the counters dumped; the figure is (count at the long "+
		"run - count at the short run) / (N long - N short), with N = %d and %d for IAMAT, %d and %d for WHATSAT "+
		"(through the fake Places, answering at once; %d client ids), over %d pairs of runs (median, min-max). It counts "+
		"the instructions the server process executes in user space for a request, end to end: read, parse, store, "+
		"reply, the loop, logging where it is on, the Places client for WHATSAT; not the kernel's. A later change is "+
		"compared exactly by running the same step (`go run ./bench/harness -only instructions`).\n\n",
		instrCommand, num(float64(instrCounts["iamat"][0])), num(float64(instrCounts["whatsat"][0])), instrCounts["iamat"][1],
		instrCounts["iamat"][2], instrCounts["whatsat"][1], instrCounts["whatsat"][2], instrClients, instrPairs)
	if reason != "" {
		b.WriteString(reason + "\n\n")
		return
	}
	if len(lines) == 0 {
		b.WriteString("Not measured in this run.\n\n")
		return
	}
	b.WriteString("| implementation | instructions per IAMAT | instructions per WHATSAT |\n| --- | --- | --- |\n")
	for _, im := range instrImpls {
		cells := []string{implLabels[im]}
		for _, kind := range []string{"iamat", "whatsat"} {
			c := "n/a: not measured"
			for _, l := range lines {
				if l.Impl == im && l.Kind == kind {
					c = fmtNum(l.PerReq)
					if l.Err != "" {
						c = "n/a: " + shorten(l.Err, 120)
					}
				}
			}
			cells = append(cells, c)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
}
