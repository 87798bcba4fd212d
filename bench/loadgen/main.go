// Command loadgen drives a herd server (or any line-oriented server, such as Redis with inline
// commands) with IAMAT, WHATSAT or raw-line load and reports throughput and latency
// percentiles (HdrHistogram), errors and its own CPU time.
//
// Closed loop (the default): -c connections, each writing -P requests in one write and
// reading their replies before writing again (like redis-benchmark -P). Open loop (-rate):
// a fixed total request rate over -c connections, latency measured from each request's
// intended send time, so a stalled server cannot hide its stall (no coordinated omission).
//
// Scenarios: iamat, whatsat, mixed, propagation, idle, raw. Run `loadgen -h` for the flags.
// -hdr-out writes the run's latency histograms in HdrHistogram's log format, for tools that
// plot them (the benchmark harness does). On a terminal a progress bar shows the replies
// measured so far, their rate and their p99 over the last second.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
	"github.com/herd-project/herd/internal/cli"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func main() {
	cli.Main(run, cli.Options{ExitCode: func(err error) int {
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}})
}

type usageError struct{ error }

type options struct {
	scenario string
	addrs    []string
	conns    int
	pipeline int
	rate     float64
	duration time.Duration
	warmup   time.Duration
	requests int64
	timeout  time.Duration
	grace    time.Duration
	clients  int
	prefix   string
	radius   string
	bound    int
	mix      float64
	template string
	rawOK    string
	check    bool
	server   string
	listen   string
	linkWait time.Duration
	pid      int
	settle   time.Duration
	hello    bool
	srcAddrs int
	jsonOut  bool
	quiet    bool
	shards   int
	readBuf  int
	cpuProf  string
	hdrOut   string
}

const usageText = `loadgen drives a herd server, or any server answering one line per line, and reports
throughput, latency percentiles (HdrHistogram), errors and its own CPU time.

Usage: loadgen [flags]

Scenarios (-scenario):
  iamat        IAMAT lines, one reply line each; every update carries a newer time
  whatsat      WHATSAT (after one IAMAT per client id, so each has a record); replies end with a blank line
  mixed        IAMAT and WHATSAT, -mix of them WHATSAT
  raw          the -template line (e.g. "SET k:%d v" to Redis), one reply line each
  propagation  IAMATs with unique client ids at -rate to -addr (a near server); loadgen listens on
               -listen as a neighbour of a far server and times each update until its AT line
               arrives on that link
  idle         opens -c connections (each sends one IAMAT with -hello) and reports the growth of
               the server's VmRSS (-pid) per connection

Closed loop unless -rate is set: each connection writes -P requests in one write, then reads
their replies. With -rate, requests go out at their intended times over all connections and
latency is measured from the intended time.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.FlagSet("loadgen", stderr, func(w io.Writer) { _, _ = io.WriteString(w, usageText) })
	var addrs string
	fs.StringVar(&o.scenario, "scenario", "iamat", "iamat | whatsat | mixed | raw | propagation | idle")
	fs.StringVar(&addrs, "addr", "127.0.0.1:12000", "target `host:port`; a comma-separated list spreads connections over several")
	fs.IntVar(&o.conns, "c", 64, "connections")
	fs.IntVar(&o.pipeline, "P", 1, "closed loop: requests written together on a connection before reading their replies")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: total requests per second over all connections (0: closed loop)")
	fs.DurationVar(&o.duration, "d", 5*time.Second, "measured duration (after -warmup)")
	fs.DurationVar(&o.warmup, "warmup", 0, "load applied before measuring; excluded from every figure")
	fs.Int64Var(&o.requests, "n", 0, "stop after this many requests in all (0: run for -d; -d still bounds the run)")
	fs.DurationVar(&o.timeout, "timeout", 0, "hard limit on the whole run (0: warm-up + duration + grace + link wait + 30s)")
	fs.DurationVar(&o.grace, "grace", 2*time.Second, "open loop and propagation: how long to wait for outstanding replies after the window")
	fs.IntVar(&o.clients, "clients", 10000, "distinct client ids (connection i uses ids i, i+c, i+2c, ...)")
	fs.StringVar(&o.prefix, "prefix", "lg", "client id prefix")
	fs.StringVar(&o.radius, "radius", "10", "WHATSAT radius in km")
	fs.IntVar(&o.bound, "bound", 5, "WHATSAT bound")
	fs.Float64Var(&o.mix, "mix", 0.1, "mixed: fraction of requests that are WHATSAT")
	fs.StringVar(&o.template, "template", "SET k:%d v", "raw: request line; %d becomes the client number")
	fs.StringVar(&o.rawOK, "raw-ok", "+OK", "raw with -check: prefix every reply must start with")
	fs.BoolVar(&o.check, "check", false, "verify every reply (AT fields, echoed client, location and time; WHATSAT JSON; raw prefix); closed loop only")
	fs.StringVar(&o.server, "server", "", "with -check: the server name AT replies must carry")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "propagation: address the probe listens on (the far server's neighbour)")
	fs.DurationVar(&o.linkWait, "link-wait", 30*time.Second, "propagation: how long to wait for a first update to cross the herd")
	fs.IntVar(&o.pid, "pid", 0, "idle: pid of the server whose VmRSS is read")
	fs.DurationVar(&o.settle, "settle", time.Second, "idle: wait after the connections are open before reading VmRSS again")
	fs.BoolVar(&o.hello, "hello", true, "idle: send one IAMAT on each connection and wait for its reply")
	fs.IntVar(&o.srcAddrs, "src", 0, "spread connections over source addresses 127.0.0.1..127.0.0.N (0: automatic, one per 2,000 connections to loopback)")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of text")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar (there is none anyway unless stderr is a terminal)")
	fs.IntVar(&o.shards, "shards", 0, "statistics shards (0: 4 per CPU)")
	fs.IntVar(&o.readBuf, "readbuf", 0, "read buffer per connection in bytes (0: 128 per pipelined request within 512..4096; 16 KiB with WHATSAT)")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write the load generator's CPU profile to this `file`")
	fs.StringVar(&o.hdrOut, "hdr-out", "", "write the run's latency histograms (nanoseconds) to this `file` in HdrHistogram's log format, tagged latency (propagation: latency and reply)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("loadgen: unexpected argument %q", fs.Arg(0))}
	}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.addrs = append(o.addrs, a)
		}
	}
	switch {
	case len(o.addrs) == 0:
		return nil, usageError{errors.New("loadgen: -addr is empty")}
	case o.conns < 1:
		return nil, usageError{errors.New("loadgen: -c must be at least 1")}
	case o.pipeline < 1:
		return nil, usageError{errors.New("loadgen: -P must be at least 1")}
	case o.rate < 0:
		return nil, usageError{errors.New("loadgen: -rate must not be negative")}
	case o.duration <= 0:
		return nil, usageError{errors.New("loadgen: -d must be positive")}
	case o.clients < 1:
		return nil, usageError{errors.New("loadgen: -clients must be at least 1")}
	case o.bound < 1:
		return nil, usageError{errors.New("loadgen: -bound must be at least 1")}
	case o.mix < 0 || o.mix > 1:
		return nil, usageError{errors.New("loadgen: -mix must be in [0, 1]")}
	case o.check && o.rate > 0:
		return nil, usageError{errors.New("loadgen: -check needs the closed loop (no -rate)")}
	}
	switch o.scenario {
	case "iamat", "whatsat", "mixed", "raw", "idle":
	case "propagation":
		if o.rate <= 0 {
			return nil, usageError{errors.New("loadgen: propagation needs -rate")}
		}
	default:
		return nil, usageError{fmt.Errorf("loadgen: unknown scenario %q", o.scenario)}
	}
	if o.scenario == "idle" && o.pid <= 0 {
		return nil, usageError{errors.New("loadgen: idle needs -pid")}
	}
	if o.timeout == 0 {
		o.timeout = o.warmup + o.duration + o.grace + 30*time.Second
		if o.scenario == "propagation" {
			o.timeout += o.linkWait
		}
	}
	if o.readBuf <= 0 {
		// Line replies are about 100 bytes: a pipeline's worth, within 512 B..4 KiB, keeps
		// 10,000 connections small. WHATSAT replies carry JSON.
		o.readBuf = min(max(o.pipeline*128, 512), 4096)
		if o.scenario == "whatsat" || o.scenario == "mixed" {
			o.readBuf = 16384
		}
	}
	return o, nil
}

// run parses args, runs one load and prints the result to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "loadgen: raising the open-file limit: %v\n", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	if o.cpuProf != "" {
		stop, err := cli.StartCPUProfile(o.cpuProf)
		if err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		defer stop()
	}
	u0, s0 := cpuTime()
	wall0 := time.Now()
	var res *result.Result
	var stopBar func()
	if !o.quiet && isTerminal(stderr) {
		stopBar = func() {}
	}
	r := newRunner(ctx, o, stderr)
	if stopBar != nil {
		stopBar = r.progressBar(stderr)
	}
	switch o.scenario {
	case "idle":
		res, err = r.idle()
	case "propagation":
		res, err = r.propagation()
	default:
		res, err = r.load()
	}
	if stopBar != nil {
		stopBar()
	}
	if err != nil {
		return err
	}
	if o.hdrOut != "" {
		if err := writeHdrLog(o.hdrOut, wall0, r.hists); err != nil {
			return err
		}
	}
	u1, s1 := cpuTime()
	res.WallS = time.Since(wall0).Seconds()
	res.CPU.UserS = (u1 - u0).Seconds()
	res.CPU.SystemS = (s1 - s0).Seconds()
	if res.Requests > 0 {
		res.CPU.PerRequestUs = (res.CPU.UserS + res.CPU.SystemS) * 1e6 / float64(res.Requests)
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	printText(stdout, res)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar shows progress on stderr until the returned function is called: the time gone,
// and, once measuring has begun, the replies measured so far (never the warm-up's or those
// that prime a WHATSAT load), their rate and their p99 over the last second.
func (r *runner) progressBar(stderr io.Writer) func() {
	total := r.o.warmup + r.o.duration
	bar := progressbar.NewOptions64(total.Milliseconds(),
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(r.o.scenario),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false),
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		lv := live{st: r.st}
		desc := r.o.scenario
		for {
			select {
			case <-done:
				_ = bar.Finish()
				return
			case now := <-t.C:
				if !r.startSet.Load() {
					continue
				}
				el := now.Sub(r.startWall)
				if el < r.o.warmup {
					desc = r.o.scenario + " warm-up"
				} else if n, rate, p99, ok := lv.sample(now); ok {
					desc = progressText(r.o.scenario, n, rate, p99)
				}
				bar.Describe(desc)
				_ = bar.Set64(min(el.Milliseconds(), total.Milliseconds()))
			}
		}
	}()
	return func() { close(done); <-finished; fmt.Fprintln(stderr) }
}

// progressText is the progress bar's description once measuring has begun.
func progressText(scenario string, replies uint64, rate float64, p99 time.Duration) string {
	s := fmt.Sprintf("%s %d replies %.0f/s", scenario, replies, rate)
	if p99 > 0 {
		s += " p99 " + p99.Round(time.Microsecond).String()
	}
	return s
}

// live follows the measured replies for the progress bar.
type live struct {
	st      *stats
	at      time.Time
	n       uint64
	prev    []int64 // the merged histogram's counts at the last interval
	rate    float64
	p99     time.Duration
	rateAt  time.Time
	rateN   uint64
	started bool
}

// sample returns the replies measured so far, and their rate and p99 over about the last
// second; ok is false until there is a first interval. The p99 is that of the replies
// recorded since the last interval of at least a second, from the shards' histograms.
func (l *live) sample(now time.Time) (n uint64, rate float64, p99 time.Duration, ok bool) {
	n = l.st.progress.Load()
	if !l.started {
		l.started, l.rateAt, l.rateN = true, now, n
		l.prev = l.st.counts()
		return n, 0, 0, false
	}
	if el := now.Sub(l.rateAt); el >= time.Second {
		l.rate = float64(n-l.rateN) / el.Seconds()
		cur := l.st.counts()
		l.p99 = time.Duration(p99Since(l.prev, cur))
		l.prev, l.rateAt, l.rateN = cur, now, n
	}
	return n, l.rate, l.p99, l.rate > 0 || n > 0
}

// p99Since returns the p99 (in the histogram's unit) of what was recorded between two
// exports of the same histogram's counts, or 0 if nothing was.
func p99Since(prev, cur []int64) int64 {
	diff := make([]int64, len(cur))
	some := false
	for i := range cur {
		if d := cur[i]; i < len(prev) {
			diff[i] = d - prev[i]
		} else {
			diff[i] = d
		}
		some = some || diff[i] > 0
	}
	if !some {
		return 0
	}
	h := newHist()
	s := h.Export()
	s.Counts = diff
	return hdrhistogram.Import(s).ValueAtQuantile(99)
}

func printText(w io.Writer, r *result.Result) {
	fmt.Fprintf(w, "scenario %s  targets %s  conns %d", r.Scenario, strings.Join(r.Targets, ","), r.Conns)
	if r.Rate > 0 {
		fmt.Fprintf(w, "  rate %.0f/s (open loop)", r.Rate)
	} else if r.Pipeline > 0 {
		fmt.Fprintf(w, "  pipeline %d (closed loop)", r.Pipeline)
	}
	fmt.Fprintf(w, "  window %.2fs (warm-up %.2fs)\n", r.Seconds, r.WarmupS)
	if r.Scenario == "idle" {
		fmt.Fprintf(w, "idle conns %d  server VmRSS %d -> %d bytes  %.0f bytes per connection\n",
			r.IdleConns, r.RSSBefore, r.RSSAfter, r.RSSPerConn)
	} else {
		fmt.Fprintf(w, "requests %d  replies %d  throughput %.0f/s", r.Requests, r.Replies, r.Throughput)
		for _, k := range slices.Sorted(maps.Keys(r.Kinds)) {
			fmt.Fprintf(w, "  %s %d", k, r.Kinds[k])
		}
		fmt.Fprintln(w)
		name := "latency"
		if r.Scenario == "propagation" {
			name = "propagation"
			fmt.Fprintf(w, "updates sent %d  received %d  lost %d  duplicates %d\n", r.Sent, r.Received, r.Lost, r.Duplicates)
		}
		printSummary(w, name, r.Latency)
		if r.ReplyLatency != nil {
			printSummary(w, "reply", *r.ReplyLatency)
		}
	}
	fmt.Fprintf(w, "errors %d", r.Errors)
	for _, k := range slices.Sorted(maps.Keys(r.ErrorKinds)) {
		fmt.Fprintf(w, "  %s %d", k, r.ErrorKinds[k])
	}
	if r.Checked > 0 {
		fmt.Fprintf(w, "  (checked %d replies)", r.Checked)
	}
	fmt.Fprintln(w)
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "loadgen cpu user %.2fs sys %.2fs over %.2fs (%.2f us/request)\n", r.CPU.UserS, r.CPU.SystemS, r.WallS, r.CPU.PerRequestUs)
}

func printSummary(w io.Writer, name string, s result.Summary) {
	fmt.Fprintf(w, "%s us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f  (n=%d)\n",
		name, s.P50, s.P90, s.P99, s.P999, s.Max, s.Mean, s.Count)
}

// dialer returns how connection i reaches its target.
func (r *runner) dial(ctx context.Context, i int) (net.Conn, error) {
	addr := r.o.addrs[i%len(r.o.addrs)]
	d := net.Dialer{Timeout: 5 * time.Second}
	if r.srcN > 1 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%r.srcN))}
	}
	var err error
	for attempt := range 5 {
		var c net.Conn
		c, err = d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(20<<attempt) * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("loadgen: dial %s: %w", addr, err)
}

// sources picks how many loopback source addresses to spread conns over.
func sources(o *options) int {
	if o.srcAddrs > 0 {
		return min(o.srcAddrs, 254)
	}
	for _, a := range o.addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return 1
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return 1
		}
	}
	return min(1+o.conns/2000, 254)
}
