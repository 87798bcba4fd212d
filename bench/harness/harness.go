package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
)

type harness struct {
	o       *options
	t       *tools
	stdout  io.Writer
	stderr  io.Writer
	started time.Time
	seq     int

	logMu    sync.Mutex // serializes logf
	mu       sync.Mutex
	ms       []measurement
	commands []command // one example of each distinct command, for the report
	seen     map[string]bool
	configs  map[string]string // topology kind -> example config
	wrote    map[string]bool   // chart files written, by name
}

// measurement is one run of one scenario on one implementation.
type measurement struct {
	Scenario string
	Impl     string
	Run      int
	Res      *result.Result
	Side     *result.Result // whatsat: the IAMAT load on other connections
	Err      string
	// ServerCPU is the CPU the server processes used during the load, in cores (CPU seconds
	// per second of the load generator's run); PlacesCPU the same for the fake Places.
	ServerCPU float64
	PlacesCPU float64
	// MachineCPU is the CPU the whole machine used over the same time (from /proc/stat), in
	// cores: what it has beyond the servers, the fake Places and the load generator was used
	// by other processes, which the figures of the run then share the cores with.
	MachineCPU float64

	// How cost grows: the group's size (records, or servers in a chain), the growth of the
	// server's VmRSS and live heap per record preloaded, and a restarted server's resync:
	// from its listening to its resync done, the resync's own took, the records it received.
	Size          int     `json:",omitempty"`
	RSSPerRecord  float64 `json:",omitempty"`
	HeapPerRecord float64 `json:",omitempty"`
	ResyncS       float64 `json:",omitempty"`
	ResyncTookS   float64 `json:",omitempty"`
	Received      int     `json:",omitempty"`

	// Allocations per request (p1): a Go server's heap objects and bytes allocated per
	// request, from its runtime's counters; any server's VmRSS growth per request.
	AllocsPerReq     float64 `json:",omitempty"`
	AllocBytesPerReq float64 `json:",omitempty"`
	HasAllocs        bool    `json:",omitempty"`
	RSSPerReq        float64 `json:",omitempty"`
	HasRSSPerReq     bool    `json:",omitempty"`

	// PlacesPerReq is, in placespath, the fake Places' CPU time per request it served, in
	// microseconds (its CPU over the client's run divided by every request the client sent).
	PlacesPerReq float64 `json:",omitempty"`
}

type command struct {
	Scenario string
	What     string
	Line     string
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.stderr, "[%6.1fs] %s\n", time.Since(h.started).Seconds(), fmt.Sprintf(format, args...))
}

// show renders argv for the report: the work directory becomes $WORK.
func (h *harness) show(argv []string) string {
	s := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, h.o.work, "$WORK")
		a = strings.ReplaceAll(a, h.o.repo+"/", "")
		if a == "" || strings.ContainsAny(a, " \"'") {
			a = strconv.Quote(a)
		}
		s[i] = a
	}
	return strings.Join(s, " ")
}

// note keeps one example of each command shape per scenario for the report.
func (h *harness) note(scenario, what string, argv []string) {
	line := h.show(argv)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	key := scenario + "\x00" + what
	if h.seen[key] {
		return
	}
	h.seen[key] = true
	h.commands = append(h.commands, command{Scenario: scenario, What: what, Line: line})
	if h.o.verbose {
		h.logf("%s: %s", what, line)
	}
}

// deployment is a running set of server processes.
type deployment struct {
	procs []*proc
	tp    *topology
	extra []*proc // fake Places
}

func (d *deployment) stop() {
	var wg sync.WaitGroup
	for _, p := range append(append([]*proc(nil), d.procs...), d.extra...) {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// cpu returns the CPU seconds used so far by the servers and by the extra processes.
func (d *deployment) cpu() (servers, extra float64) {
	for _, p := range d.procs {
		v, _ := cpuSeconds(p.pid())
		servers += v
	}
	for _, p := range d.extra {
		v, _ := cpuSeconds(p.pid())
		extra += v
	}
	return servers, extra
}

// meter starts measuring the deployment's CPU; the returned function records the usage per
// second of wall time into m.
func (d *deployment) meter() func(m *measurement) {
	s0, e0 := d.cpu()
	b0, _ := machineBusy()
	t0 := time.Now()
	return func(m *measurement) {
		s1, e1 := d.cpu()
		b1, err := machineBusy()
		el := time.Since(t0).Seconds()
		if el > 0 {
			m.ServerCPU, m.PlacesCPU = (s1-s0)/el, (e1-e0)/el
			if err == nil && b0 > 0 {
				m.MachineCPU = (b1 - b0) / el
			}
		}
	}
}

// check returns an error if a server process has died.
func (d *deployment) check() error {
	for _, p := range append(append([]*proc(nil), d.procs...), d.extra...) {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited during the run (%v): %s", p.name, err, p.tail())
		}
	}
	return nil
}

func (h *harness) tag(parts ...string) string {
	h.mu.Lock()
	h.seq++
	n := h.seq
	h.mu.Unlock()
	return fmt.Sprintf("%03d-%s", n, strings.Join(parts, "-"))
}

// startFake starts the fake Places server with the given delay.
func (h *harness) startFake(ctx context.Context, scenario string, delay time.Duration, tag string) (*proc, string, error) {
	bin, ok := h.t.bin["fakeplaces"]
	if !ok {
		return nil, "", fmt.Errorf("fake Places not available: %s", h.t.missing["fakeplaces"])
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	argv := []string{bin, "-addr", addr, "-delay", delay.String()}
	h.note(scenario, "fake Places", argv)
	p, err := startProc("fakeplaces", addr, filepath.Join(h.o.work, tag+"-fakeplaces.log"), h.o.work, nil, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(ctx, 20*time.Second); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, "http://" + addr, nil
}

// startServers starts every server of tp under impl and waits until each listens.
func (h *harness) startServers(ctx context.Context, scenario, impl string, tp *topology, tag string) (*deployment, error) {
	if r, ok := h.t.missing[impl]; ok {
		return nil, errors.New("not available: " + r)
	}
	if impl == implRedis {
		return h.startRedis(ctx, scenario, tp, tag)
	}
	if impl != implHerdNoLg && !tp.noLog {
		tp.logDir = filepath.Join(h.o.work, tag+"-logs")
	} else {
		tp.logDir = "off"
	}
	cfg := filepath.Join(h.o.work, tag+".toml")
	if err := os.WriteFile(cfg, []byte(tp.toml()), 0o644); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.configs == nil {
		h.configs = map[string]string{}
	}
	key := fmt.Sprintf("%d servers, probe %v, places %v", len(tp.servers), tp.probe != "", tp.placesURL != "")
	if _, ok := h.configs[key]; !ok {
		h.configs[key] = strings.ReplaceAll(tp.toml(), h.o.work, "$WORK")
	}
	h.mu.Unlock()
	d := &deployment{tp: tp}
	if len(tp.servers) > 1 && !h.o.herdProcs {
		if argv := h.t.herdArgv(impl, cfg, tp); argv != nil {
			h.note(scenario, implLabels[impl]+" (one process, every server)", argv)
			p, err := startProc(impl+" herd", tp.servers[0].addr(), filepath.Join(h.o.work, tag+"-herd.out"), h.o.work, nil, argv...)
			if err != nil {
				return nil, err
			}
			d.procs = append(d.procs, p)
			for _, s := range tp.servers {
				if err := p.waitListening(ctx, s.addr(), 30*time.Second); err != nil {
					d.stop()
					return nil, err
				}
			}
			return d, nil
		}
	}
	for _, s := range tp.servers {
		argv := h.t.argv(impl, cfg, s.name)
		h.note(scenario, implLabels[impl], argv)
		p, err := startProc(impl+" "+s.name, s.addr(), filepath.Join(h.o.work, tag+"-"+s.name+".out"), h.o.work, nil, argv...)
		if err != nil {
			d.stop()
			return nil, err
		}
		d.procs = append(d.procs, p)
	}
	for _, p := range d.procs {
		if err := p.waitReady(ctx, 30*time.Second); err != nil {
			d.stop()
			return nil, err
		}
	}
	return d, nil
}

func (h *harness) startRedis(ctx context.Context, scenario string, tp *topology, tag string) (*deployment, error) {
	s := tp.servers[0]
	argv := []string{h.t.redis, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--maxclients", "15000"}
	h.note(scenario, implLabels[implRedis], argv)
	p, err := startProc("redis", s.addr(), filepath.Join(h.o.work, tag+"-redis.out"), h.o.work, nil, argv...)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 20*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return &deployment{procs: []*proc{p}, tp: tp}, nil
}

// waitLinked waits until an update made at the first server is known at the last one, so a
// herd's links are up before load starts.
func waitLinked(ctx context.Context, tp *topology, timeout time.Duration) error {
	first, last := tp.servers[0], tp.servers[len(tp.servers)-1]
	id := fmt.Sprintf("harness-ready-%d", time.Now().UnixNano())
	deadline := time.Now().Add(timeout)
	if _, err := exchange(first.addr(), fmt.Sprintf("IAMAT %s +34.068930-118.445127 %d.000000001\n", id, time.Now().Unix()), false); err != nil {
		return fmt.Errorf("IAMAT to %s: %w", first.name, err)
	}
	for {
		reply, err := exchange(last.addr(), "WHATSAT "+id+" 10 1\n", true)
		if err == nil && strings.HasPrefix(reply, "AT ") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("an update at %s did not reach %s within %v (last reply %q, %v)", first.name, last.name, timeout, firstLine(reply), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exchange sends one request on a new connection and returns the reply: one line, or with
// multi through the blank line (or the first line if it is an error reply).
func exchange(addr, req string, multi bool) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	var out bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			return out.String(), err
		}
		if !multi || strings.HasPrefix(out.String(), "?") || (line == "\n" && out.Len() > 1) {
			return out.String(), nil
		}
	}
}

// loadgen runs the load generator with args (plus -json -quiet -hdr-out) and decodes its
// result, with the histograms it wrote.
func (h *harness) loadgen(ctx context.Context, scenario, what string, args ...string) (*result.Result, error) {
	hdr := filepath.Join(h.o.work, h.tag("hdr")+".hdr")
	argv := append([]string{h.t.bin["loadgen"]}, args...)
	argv = append(argv, "-json", "-quiet", "-hdr-out", hdr)
	h.note(scenario, what, argv)
	out, err := runCmdSplit(ctx, h.o.work, 10*time.Minute, argv...)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %v: %s", err, firstLine(out.stderr))
	}
	var r result.Result
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		return nil, fmt.Errorf("loadgen output: %v: %q", err, firstLine(out.stdout))
	}
	if r.Hists, err = readHists(hdr); err != nil {
		return nil, err
	}
	_ = os.Remove(hdr)
	return &r, nil
}

// readHists reads the histograms of an HdrHistogram log by tag.
func readHists(path string) (map[string]*hdrhistogram.Histogram, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("harness: loadgen's histograms: %w", err)
	}
	defer f.Close()
	hs := map[string]*hdrhistogram.Histogram{}
	lr := hdrhistogram.NewHistogramLogReader(f)
	for {
		h, err := lr.NextIntervalHistogram()
		if err != nil {
			return nil, fmt.Errorf("harness: loadgen's histograms in %s: %w", path, err)
		}
		if h == nil {
			return hs, nil
		}
		hs[h.Tag()] = h
	}
}

type split struct{ stdout, stderr string }

func runCmdSplit(ctx context.Context, dir string, timeout time.Duration, argv ...string) (split, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := execCommand(ctx, argv...)
	cmd.Dir = dir
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return split{so.String(), se.String()}, err
}
