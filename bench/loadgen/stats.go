package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
)

// newHist records nanoseconds from 1 us to 100 s with 3 significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1000, 100e9, 3) }

// shard is one lock-protected slice of the run's statistics. Connections are spread over a
// few shards so that recording, once per read, rarely contends while one histogram per
// connection (about 150 KiB each) would not fit 10,000 connections in little memory.
type shard struct {
	mu      sync.Mutex
	hist    *hdrhistogram.Histogram
	replies uint64
	kinds   [numKinds]uint64
	sent    uint64
	checked uint64
}

// stats is shared by every connection of a run.
type stats struct {
	shards   []shard
	progress atomic.Uint64 // replies measured so far (the window's), for the progress bar
	all      atomic.Uint64 // requests sent in the whole run

	emu     sync.Mutex
	errs    map[string]uint64
	samples []string
}

func newStats(n int) *stats {
	s := &stats{shards: make([]shard, n), errs: map[string]uint64{}}
	for i := range s.shards {
		s.shards[i].hist = newHist()
	}
	return s
}

func (s *stats) shard(conn int) *shard { return &s.shards[conn%len(s.shards)] }

// fail counts an error of the given kind and keeps the first few messages.
func (s *stats) fail(kind string, msg string) {
	s.emu.Lock()
	s.errs[kind]++
	if len(s.samples) < 8 {
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		s.samples = append(s.samples, kind+": "+msg)
	}
	s.emu.Unlock()
}

// merged returns one histogram of every shard and the shards' totals.
func (s *stats) merged() (h *hdrhistogram.Histogram, replies, sent, checked uint64, kinds [numKinds]uint64) {
	h = newHist()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h.Merge(sh.hist)
		replies += sh.replies
		sent += sh.sent
		checked += sh.checked
		for k := range kinds {
			kinds[k] += sh.kinds[k]
		}
		sh.mu.Unlock()
	}
	return
}

// counts returns the counts of every shard's histogram merged, for the progress bar.
func (s *stats) counts() []int64 {
	h, _, _, _, _ := s.merged()
	return h.Export().Counts
}

// writeHdrLog writes hists to path in HdrHistogram's log format (version 1.3, values in
// nanoseconds), each with its tag and its interval's start and end, after a start time of
// start.
func writeHdrLog(path string, start time.Time, hists []*hdrhistogram.Histogram) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("loadgen: -hdr-out: %w", err)
	}
	lw := hdrhistogram.NewHistogramLogWriter(f)
	err = lw.OutputLogFormatVersion()
	if err == nil {
		err = lw.OutputComment("loadgen latency histograms, values in nanoseconds")
	}
	if err == nil {
		err = lw.OutputStartTime(start.UnixMilli())
	}
	if err == nil {
		err = lw.OutputLegend()
	}
	for _, h := range hists {
		if err == nil {
			err = lw.OutputIntervalHistogram(h)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("loadgen: -hdr-out: %w", err)
	}
	return nil
}

// summarize converts a histogram of nanoseconds into microsecond percentiles.
func summarize(h *hdrhistogram.Histogram) result.Summary {
	us := func(v int64) float64 { return float64(v) / 1e3 }
	return result.Summary{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1e3,
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}

// cpuTime returns this process's user and system CPU time.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// raiseFileLimit raises the soft open-file limit to the hard limit.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
