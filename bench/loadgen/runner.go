package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
)

// runner holds one run's options and shared state.
type runner struct {
	ctx    context.Context
	o      *options
	stderr io.Writer
	st     *stats
	srcN   int
	corp   *corpus

	startWall time.Time // when measuring (or warm-up) began; zero before
	clk       clock
	measure   time.Duration // on clk: start of the window
	end       time.Duration // on clk: end of the window
	sched     schedule
	startSet  atomic.Bool
	probeLn   net.Listener // propagation: a listener made by the caller (tests); nil: -listen
	// hists are the run's histograms for -hdr-out, tagged, once the run is over.
	hists []*hdrhistogram.Histogram
}

func newRunner(ctx context.Context, o *options, stderr io.Writer) *runner {
	n := o.shards
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	return &runner{ctx: ctx, o: o, stderr: stderr, st: newStats(min(n, o.conns)), srcN: sources(o)}
}

// worker is one connection.
type worker struct {
	id    int
	conn  net.Conn
	st    stream
	rbuf  []byte
	wbuf  []byte
	kinds []uint8
	ends  []int
	sc    replyScanner
	cur   []byte // -check: the reply being read
	quota int64  // requests left (-1: unbounded)
	sent  uint64 // sent in the window, not yet added to the shard
}

// newWorker makes worker i with a read buffer of readBuf bytes.
func (r *runner) newWorker(i, readBuf int) *worker {
	w := &worker{
		id:    i,
		st:    stream{c: r.corp, conn: i, nconn: r.o.conns},
		rbuf:  make([]byte, readBuf),
		sc:    replyScanner{bad: '?'},
		quota: -1,
	}
	if r.o.scenario == "raw" {
		w.sc.bad = '-'
	}
	if r.o.requests > 0 {
		w.quota = r.o.requests / int64(r.o.conns)
		if int64(i) < r.o.requests%int64(r.o.conns) {
			w.quota++
		}
	}
	return w
}

// connectedWorkers makes the run's workers, with read buffers of readBuf bytes, and dials
// their connections, at most 128 at a time. The caller closes them with closeAll.
func (r *runner) connectedWorkers(readBuf int) ([]*worker, error) {
	ws := make([]*worker, r.o.conns)
	for i := range ws {
		ws[i] = r.newWorker(i, readBuf)
	}
	err := eachWorker(ws, 128, func(w *worker) error {
		c, err := r.dial(r.ctx, w.id)
		if err == nil {
			w.conn = c
		}
		return err
	})
	if err != nil {
		closeAll(ws)
		return nil, err
	}
	return ws, nil
}

// closeAll closes the workers' connections.
func closeAll(ws []*worker) {
	for _, w := range ws {
		if w.conn != nil {
			w.conn.Close()
		}
	}
}

// eachWorker runs fn for every worker, at most limit at once, and returns the first error.
func eachWorker(ws []*worker, limit int, fn func(w *worker) error) error {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, w := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(w); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

func (r *runner) begin() {
	now := time.Now()
	r.startWall = now
	// Precise sleeps hold a P while they sleep (see preciseSleep): only for one connection,
	// so the readers always have the other P.
	r.clk = realClock{base: now, precise: r.o.conns == 1}
	r.measure = r.o.warmup
	r.end = r.o.warmup + r.o.duration
	r.sched = schedule{start: 0, rate: r.o.rate}
	r.startSet.Store(true)
}

// load runs the iamat, whatsat, mixed and raw scenarios.
func (r *runner) load() (*result.Result, error) {
	corp, err := newCorpus(r.o, time.Now().Unix())
	if err != nil {
		return nil, err
	}
	r.corp = corp
	ws, err := r.connectedWorkers(r.o.readBuf)
	if err != nil {
		return nil, err
	}
	defer closeAll(ws)
	if r.o.scenario == "whatsat" || r.o.scenario == "mixed" {
		if err := r.setupAll(ws); err != nil {
			return nil, err
		}
	}
	r.begin()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.o.rate > 0 {
				r.open(w)
			} else {
				r.closed(w)
			}
		}()
	}
	wg.Wait()
	return r.result(), r.ctx.Err()
}

// result assembles the run's figures.
func (r *runner) result() *result.Result {
	h, replies, sent, checked, kinds := r.st.merged()
	r.stamp(h, "latency")
	r.hists = []*hdrhistogram.Histogram{h}
	res := &result.Result{
		Scenario:    r.o.scenario,
		Targets:     r.o.addrs,
		Conns:       r.o.conns,
		Rate:        r.o.rate,
		Seconds:     r.o.duration.Seconds(),
		WarmupS:     r.o.warmup.Seconds(),
		Requests:    sent,
		RequestsAll: r.st.all.Load(),
		Replies:     replies,
		Checked:     checked,
		Latency:     summarize(h),
	}
	if r.o.rate == 0 {
		res.Pipeline = r.o.pipeline
	}
	res.Throughput = float64(replies) / res.Seconds
	for k, v := range kinds {
		if v > 0 {
			if res.Kinds == nil {
				res.Kinds = map[string]uint64{}
			}
			res.Kinds[kindNames[k]] = v
		}
	}
	r.st.emu.Lock()
	for k, v := range r.st.errs {
		if res.ErrorKinds == nil {
			res.ErrorKinds = map[string]uint64{}
		}
		res.ErrorKinds[k] = v
		res.Errors += v
	}
	res.ErrorSamples = append(res.ErrorSamples, r.st.samples...)
	r.st.emu.Unlock()
	return res
}

// stamp tags h and gives it the measured window as its interval.
func (r *runner) stamp(h *hdrhistogram.Histogram, tag string) {
	h.SetTag(tag)
	start := r.startWall.Add(r.measure)
	h.SetStartTimeMs(start.UnixMilli())
	h.SetEndTimeMs(start.Add(r.o.duration).UnixMilli())
}

// setupAll sends one IAMAT for every client id each connection will ask about, so that every
// WHATSAT names a client the server knows.
func (r *runner) setupAll(ws []*worker) error { return eachWorker(ws, 256, r.setup) }

func (r *runner) setup(w *worker) error {
	ks := w.st.owned()
	_ = w.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer w.conn.SetDeadline(time.Time{})
	for len(ks) > 0 {
		n := min(len(ks), 64)
		w.wbuf, w.kinds, w.ends = w.wbuf[:0], w.kinds[:0], w.ends[:0]
		for _, k := range ks[:n] {
			w.wbuf = w.st.appendIAMAT(w.wbuf, k)
			w.kinds = append(w.kinds, kindIAMAT)
			w.ends = append(w.ends, len(w.wbuf))
		}
		ks = ks[n:]
		r.st.all.Add(uint64(n))
		if _, err := w.conn.Write(w.wbuf); err != nil {
			return fmt.Errorf("loadgen: setup: %w", err)
		}
		if err := r.readReplies(w, time.Time{}, false); err != nil {
			return fmt.Errorf("loadgen: setup: %w", err)
		}
	}
	return nil
}

// closed runs one connection of the closed loop until the window ends or its quota is done.
func (r *runner) closed(w *worker) {
	endWall := r.startWall.Add(r.end)
	if w.conn != nil {
		_ = w.conn.SetDeadline(endWall)
	}
	for w.quota != 0 && r.ctx.Err() == nil && time.Now().Before(endWall) {
		if w.conn == nil {
			c, err := r.dial(r.ctx, w.id)
			if err != nil {
				r.st.fail("dial", err.Error())
				if !sleepCtx(r.ctx, 50*time.Millisecond) {
					return
				}
				continue
			}
			_ = c.SetDeadline(endWall)
			w.conn, w.sc = c, replyScanner{bad: w.sc.bad}
			w.cur = w.cur[:0]
		}
		batch := r.o.pipeline
		if w.quota > 0 {
			batch = int(min(int64(batch), w.quota))
		}
		w.wbuf, w.kinds, w.ends = w.wbuf[:0], w.kinds[:0], w.ends[:0]
		for range batch {
			var k uint8
			w.wbuf, k = w.st.next(w.wbuf, 0)
			w.kinds = append(w.kinds, k)
			w.ends = append(w.ends, len(w.wbuf))
		}
		t0 := time.Now()
		r.st.all.Add(uint64(batch))
		if _, err := w.conn.Write(w.wbuf); err != nil {
			r.connError(w, err)
			continue
		}
		if t0.Sub(r.startWall) >= r.measure {
			w.sent += uint64(batch)
		}
		if w.quota > 0 {
			w.quota -= int64(batch)
		}
		if err := r.readReplies(w, t0, true); err != nil {
			r.connError(w, err)
		}
	}
	r.flushSent(w)
}

func (r *runner) flushSent(w *worker) {
	if w.sent == 0 {
		return
	}
	sh := r.st.shard(w.id)
	sh.mu.Lock()
	sh.sent += w.sent
	sh.mu.Unlock()
	w.sent = 0
}

// connError handles a failed connection: after the window it is the normal end; before it
// the error is counted and the worker redials.
func (r *runner) connError(w *worker, err error) {
	w.conn.Close()
	w.conn = nil
	var ne net.Error
	if r.ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, os.ErrDeadlineExceeded) {
		if time.Since(r.startWall) >= r.end-time.Millisecond || r.ctx.Err() != nil {
			return
		}
	}
	r.st.fail("conn", err.Error())
}

// readReplies reads the replies to the requests in w.wbuf (kinds in w.kinds). With record,
// each read's completed replies are recorded with latency from t0.
func (r *runner) readReplies(w *worker, t0 time.Time, record bool) error {
	want := len(w.kinds)
	got := 0
	sh := r.st.shard(w.id)
	for got < want {
		n, err := w.conn.Read(w.rbuf)
		if n > 0 {
			now := time.Now()
			p := w.rbuf[:n]
			done := 0
			var kc [numKinds]uint64
			var checked uint64
			for len(p) > 0 {
				if got == want {
					r.st.fail("unexpected", fmt.Sprintf("%d bytes after the last reply: %q", len(p), clip(p)))
					return errors.New("loadgen: unexpected data")
				}
				k := w.kinds[got]
				c, fin, inv := w.sc.scan(p, k)
				if r.o.check || inv || (!fin && w.sc.invalid) {
					w.cur = append(w.cur, p[:c]...)
				}
				p = p[c:]
				if !fin {
					continue
				}
				if inv {
					r.st.fail("invalid", fmt.Sprintf("%q to %q", trim(w.cur), trim(w.request(got))))
				} else if r.o.check {
					if err := checkReply(w.request(got), w.cur, k, r.o.server, r.o.rawOK, r.o.bound); err != nil {
						r.st.fail("check", err.Error())
					}
					checked++
				}
				w.cur = w.cur[:0]
				got++
				done++
				kc[k]++
			}
			if record && done > 0 {
				el := now.Sub(r.startWall)
				if el >= r.measure && el <= r.end {
					r.st.progress.Add(uint64(done))
					sh.mu.Lock()
					_ = sh.hist.RecordValues(now.Sub(t0).Nanoseconds(), int64(done))
					sh.replies += uint64(done)
					for k, v := range kc {
						sh.kinds[k] += v
					}
					sh.checked += checked
					sh.sent += w.sent
					sh.mu.Unlock()
					w.sent = 0
				}
			}
		}
		if err != nil {
			if err == io.EOF {
				return errors.New("loadgen: connection closed by the server")
			}
			return err
		}
	}
	return nil
}

// request returns the j-th request line of the batch in w.wbuf.
func (w *worker) request(j int) []byte {
	start := 0
	if j > 0 {
		start = w.ends[j-1]
	}
	return w.wbuf[start:w.ends[j]]
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
