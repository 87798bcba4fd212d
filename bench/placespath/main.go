// Command placespath measures the Places path of a WHATSAT alone, in Go, as the herd walks it:
// a legacy Nearby Search through herd/places (fasthttp, keep-alive connections) and the cut of
// "results" to the bound with codec.AppendPlacesBody, which keeps Google's bytes. It keeps -c
// requests in flight against a Places API (the fake, bench/fakeplaces) for -warmup and then
// -d, and prints one JSON result (bench/internal/result) for the window: replies per second,
// latency percentiles from the send to the cut body, errors, and its own CPU time.
//
//	go run ./bench/placespath -url http://127.0.0.1:8099 -c 200 -d 3s -warmup 1s
//
// client.py (aiohttp, on asyncio or uvloop) and client.mjs (Node.js's http module) beside it
// walk the same path the way their runtimes do, take the same flags and print the same JSON;
// the benchmark harness runs all of them (go run ./bench/harness -only placespath).
//
// What the three share, so that their figures compare: a closed loop of -c requests, each
// runtime's client allowed -c keep-alive connections (aiohttp's default of 100 and the
// herd's places.DefaultMaxConns of 64 would otherwise cap the rate below what -c asks); the
// window's replies alone are counted, with the latency from a request's send to its cut
// body, and percentiles by nearest rank over them; the CPU per request is the process's
// user and system time over the window alone, divided by its replies, so that an
// interpreter's start-up and the warm-up are no request's cost. Errors are counted by kind
// (timeout, transport, http, bad body).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herd-project/herd/bench/internal/result"
	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/internal/cli"
)

func main() { cli.Main(run, cli.Options{ExitCode: func(error) int { return 2 }}) }

type options struct {
	url       string
	conns     int
	duration  time.Duration
	warmup    time.Duration
	bound     int
	radiusKm  float64
	locations int
	timeout   time.Duration
	body      string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.FlagSet("placespath", stderr, nil)
	fs.StringVar(&o.url, "url", "", "base URL of the Places API (the fake: bench/fakeplaces)")
	fs.IntVar(&o.conns, "c", 200, "requests in flight (and keep-alive connections at most)")
	fs.DurationVar(&o.duration, "d", 3*time.Second, "measured window")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before the window, not measured")
	fs.IntVar(&o.bound, "bound", 5, "results kept in each body (1..20)")
	fs.Float64Var(&o.radiusKm, "radius", 10, "radius asked, in kilometres")
	fs.IntVar(&o.locations, "locations", 1000, "distinct locations asked about in turn")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "per request")
	fs.StringVar(&o.body, "body", "", "write the last cut body of the window to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("placespath: unexpected argument %q", fs.Arg(0))
	case o.url == "":
		return nil, errors.New("placespath: -url is required")
	case o.conns < 1 || o.duration <= 0 || o.warmup < 0 || o.timeout <= 0:
		return nil, errors.New("placespath: want -c >= 1, -d > 0, -warmup >= 0, -timeout > 0")
	case o.bound < 1 || o.bound > places.MaxResults:
		return nil, fmt.Errorf("placespath: -bound %d: want 1..%d", o.bound, places.MaxResults)
	case o.radiusKm <= 0 || o.radiusKm > 50:
		return nil, fmt.Errorf("placespath: -radius %g: want 0 < radius <= 50", o.radiusKm)
	case o.locations < 1:
		return nil, errors.New("placespath: -locations must be at least 1")
	}
	return o, nil
}

// location is the i-th location asked about, as the Nearby Search query gives it: the load
// generator's locations near UCLA (bench/loadgen), without the "+" the herd drops.
func location(i int) (lat, lng string) {
	return strconv.FormatFloat(34.0+float64(i%1000)*0.0007, 'f', 6, 64),
		strconv.FormatFloat(-118.5+float64((i/1000)%1000)*0.0007, 'f', 6, 64)
}

// Phases of a run: a request that completes in the window is counted, with its latency.
const (
	phaseWarmup = iota
	phaseWindow
	phaseDone
)

// tally is one worker's count; the main goroutine reads it after the worker ends.
type tally struct {
	sent, sentAll, replies uint64
	latencies              []float64 // microseconds, of the window's replies
	errors                 map[string]uint64
	samples                []string
	last                   []byte // the last cut body of the window
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	p, err := places.New(places.Config{Provider: places.Google, URL: o.url, Key: "bench", Timeout: o.timeout, MaxConns: o.conns})
	if err != nil {
		return fmt.Errorf("placespath: %w", err)
	}
	radiusM := strconv.FormatFloat(o.radiusKm*1000, 'f', -1, 64)
	var (
		phase atomic.Int32
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	tallies := make([]tally, o.conns)
	for w := range tallies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[w]
			t.errors = map[string]uint64{}
			var cut []byte
			for ctx.Err() == nil {
				ph := phase.Load()
				if ph == phaseDone {
					return
				}
				lat, lng := location(int(next.Add(1)-1) % o.locations)
				t.sentAll++
				if ph == phaseWindow {
					t.sent++
				}
				start := time.Now()
				body, err := p.Nearby(ctx, places.Request{Lat: lat, Lng: lng, RadiusM: radiusM, Bound: o.bound})
				if err == nil {
					cut, err = codec.AppendPlacesBody(cut[:0], body, o.bound)
				}
				took := time.Since(start)
				if phase.Load() != phaseWindow {
					continue
				}
				if err != nil {
					t.fail(err)
					continue
				}
				t.replies++
				t.latencies = append(t.latencies, float64(took.Nanoseconds())/1e3)
				// Kept without a copy, as Python and Node keep a reference: the next cut
				// goes into the buffer the last one held.
				t.last, cut = cut, t.last
			}
		}()
	}
	started := time.Now()
	cpu0, win0, err := windowStart(ctx, o, &phase, started)
	if err != nil {
		phase.Store(phaseDone)
		wg.Wait()
		return err
	}
	sleepUntil(ctx, win0.Add(o.duration))
	cpu1 := cpuTimes()
	win := time.Since(win0)
	phase.Store(phaseDone)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	r := summarize(o, tallies, win, cpu1.sub(cpu0))
	r.WarmupS = win0.Sub(started).Seconds()
	all := cpuTimes()
	r.CPU.UserS, r.CPU.SystemS = all.user, all.sys
	r.WallS = time.Since(started).Seconds()
	if o.body != "" {
		if err := writeLast(o.body, tallies); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// windowStart waits out the warm-up, then starts the window: it returns the process's CPU
// times and the clock at that moment.
func windowStart(ctx context.Context, o *options, phase *atomic.Int32, started time.Time) (cpu, time.Time, error) {
	sleepUntil(ctx, started.Add(o.warmup))
	if err := ctx.Err(); err != nil {
		return cpu{}, time.Time{}, err
	}
	c := cpuTimes()
	t := time.Now()
	phase.Store(phaseWindow)
	return c, t, nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// fail counts an error of the window by kind, keeping a few samples.
func (t *tally) fail(err error) {
	kind := "other"
	var se *places.StatusError
	switch {
	case errors.Is(err, places.ErrTimeout):
		kind = "timeout"
	case errors.Is(err, places.ErrTransport):
		kind = "transport"
	case errors.Is(err, places.ErrHTTP):
		kind = "http"
	case errors.Is(err, places.ErrBadBody), errors.Is(err, codec.ErrJSON), errors.Is(err, codec.ErrNoResults):
		kind = "bad body"
	case errors.As(err, &se):
		kind = "status"
	}
	t.errors[kind]++
	if len(t.samples) < 3 {
		t.samples = append(t.samples, err.Error())
	}
}

// cpu is the process's CPU time so far, in seconds.
type cpu struct{ user, sys float64 }

func cpuTimes() cpu {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpu{}
	}
	return cpu{user: tv(ru.Utime), sys: tv(ru.Stime)}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func (c cpu) sub(d cpu) cpu { return cpu{c.user - d.user, c.sys - d.sys} }

// summarize merges the workers' tallies into the run's result for a window of length win
// in which the process used cpu.
func summarize(o *options, ts []tally, win time.Duration, used cpu) *result.Result {
	r := &result.Result{Scenario: "placespath", Targets: []string{o.url}, Conns: o.conns, Seconds: win.Seconds(),
		ErrorKinds: map[string]uint64{}}
	var lat []float64
	for _, t := range ts {
		r.Requests += t.sent
		r.RequestsAll += t.sentAll
		r.Replies += t.replies
		lat = append(lat, t.latencies...)
		for k, n := range t.errors {
			r.ErrorKinds[k] += n
			r.Errors += n
		}
		for _, s := range t.samples {
			if len(r.ErrorSamples) < 5 && !slices.Contains(r.ErrorSamples, s) {
				r.ErrorSamples = append(r.ErrorSamples, s)
			}
		}
	}
	if r.Seconds > 0 {
		r.Throughput = float64(r.Replies) / r.Seconds
	}
	r.Latency = percentiles(lat)
	if r.Replies > 0 {
		r.CPU.PerRequestUs = (used.user + used.sys) / float64(r.Replies) * 1e6
	}
	return r
}

// percentiles summarizes latencies (microseconds) by nearest rank, as client.py and
// client.mjs do, so that the runtimes' figures are computed alike.
func percentiles(us []float64) result.Summary {
	if len(us) == 0 {
		return result.Summary{}
	}
	sort.Float64s(us)
	rank := func(p float64) float64 {
		i := int(math.Ceil(float64(len(us))*p/100)) - 1
		return us[min(max(i, 0), len(us)-1)]
	}
	sum := 0.0
	for _, v := range us {
		sum += v
	}
	return result.Summary{Count: int64(len(us)), Mean: sum / float64(len(us)), P50: rank(50), P90: rank(90),
		P99: rank(99), P999: rank(99.9), Max: us[len(us)-1]}
}

// writeLast writes a cut body of the window: the last one of the first worker that made one.
func writeLast(path string, ts []tally) error {
	for _, t := range ts {
		if len(t.last) > 0 {
			return os.WriteFile(path, t.last, 0o644)
		}
	}
	return errors.New("placespath: no body was cut in the window")
}
