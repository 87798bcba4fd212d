package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/herd-project/herd/bench/internal/result"
)

// probe is the propagation scenario's listener, posing as a neighbour of the far server. It
// reads the AT lines the far server floods to it and matches each to the IAMAT that caused it
// by client id: "<prefix>x<seq>" for a timed update, "<prefix>w<n>" for the warm-up ones.
type probe struct {
	ln      net.Listener
	seqPfx  []byte
	warmPfx []byte
	sched   schedule
	clk     clock // nil until timing starts
	measure time.Duration

	mu       sync.Mutex
	hist     *hdrhistogram.Histogram
	seen     map[uint64]struct{}
	received uint64 // timed updates received, window only
	dups     uint64
	warm     chan struct{}
	warmOnce sync.Once
	conns    []net.Conn
}

func newProbe(ln net.Listener, prefix string) *probe {
	return &probe{
		ln:      ln,
		seqPfx:  []byte(prefix + "x"),
		warmPfx: []byte(prefix + "w"),
		hist:    newHist(),
		seen:    map[uint64]struct{}{},
		warm:    make(chan struct{}),
	}
}

// serve accepts links until the listener is closed.
func (p *probe) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		go p.read(c)
	}
}

func (p *probe) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *probe) read(c net.Conn) {
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && err == nil {
			p.line(line, p.now())
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (p *probe) now() time.Duration {
	p.mu.Lock()
	clk := p.clk
	p.mu.Unlock()
	if clk == nil {
		return 0
	}
	return clk.now()
}

// field returns the i-th white-space separated field of line (from 0), without allocating.
func field(line []byte, i int) []byte {
	for n := 0; ; n++ {
		for len(line) > 0 && (line[0] == ' ' || line[0] == '\t' || line[0] == '\r' || line[0] == '\n') {
			line = line[1:]
		}
		if len(line) == 0 {
			return nil
		}
		end := bytes.IndexAny(line, " \t\r\n")
		if end < 0 {
			end = len(line)
		}
		if n == i {
			return line[:end]
		}
		line = line[end:]
	}
}

// line handles one line from the far server, received at now.
func (p *probe) line(line []byte, now time.Duration) {
	if string(field(line, 0)) != "AT" {
		return
	}
	client := field(line, 3)
	switch {
	case bytes.HasPrefix(client, p.warmPfx):
		p.warmOnce.Do(func() { close(p.warm) })
	case bytes.HasPrefix(client, p.seqPfx):
		seq, err := strconv.ParseUint(string(client[len(p.seqPfx):]), 10, 64)
		if err != nil {
			return
		}
		p.match(seq, now)
	}
}

// match records the arrival at now of timed update seq.
func (p *probe) match(seq uint64, now time.Duration) {
	at := p.sched.at(seq)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.seen[seq]; dup {
		p.dups++
		return
	}
	p.seen[seq] = struct{}{}
	if at < p.measure {
		return
	}
	p.received++
	_ = p.hist.RecordValue(int64(now - at))
}

// propagation times updates from an IAMAT at -addr until the far server floods them to the
// probe listening on -listen.
func (r *runner) propagation() (*result.Result, error) {
	// Unique ids per run, so that records left by an earlier run never match.
	r.o.prefix = r.o.prefix + strconv.FormatInt(time.Now().UnixNano()%(36*36*36*36*36), 36) + "-"
	corp, err := newCorpus(r.o, time.Now().Unix())
	if err != nil {
		return nil, err
	}
	r.corp = corp
	ln := r.probeLn
	if ln == nil {
		if ln, err = net.Listen("tcp", r.o.listen); err != nil {
			return nil, fmt.Errorf("loadgen: probe: %w", err)
		}
	}
	pr := newProbe(ln, r.o.prefix)
	go pr.serve()
	defer pr.close()
	if !r.o.quiet {
		fmt.Fprintf(r.stderr, "loadgen: probe listening on %s\n", ln.Addr())
	}
	if err := r.warmPath(pr); err != nil {
		return nil, err
	}

	ws, err := r.connectedWorkers(r.o.readBuf)
	if err != nil {
		return nil, err
	}
	defer closeAll(ws)
	r.begin()
	pr.mu.Lock()
	pr.sched, pr.clk, pr.measure = r.sched, r.clk, r.measure
	pr.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.open(w)
		}()
	}
	wg.Wait()
	// Every update meant for the window has been sent; wait for the stragglers.
	_, _, sent, _, _ := r.st.merged()
	deadline := time.Now().Add(r.o.grace)
	for time.Now().Before(deadline) && r.ctx.Err() == nil {
		pr.mu.Lock()
		got := pr.received
		pr.mu.Unlock()
		if got >= sent {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := r.result()
	reply := res.Latency
	res.ReplyLatency = &reply
	pr.mu.Lock()
	res.Latency = summarize(pr.hist)
	prop := pr.hist.Clone()
	r.stamp(prop, "latency")
	r.hists[0].SetTag("reply")
	r.hists = append([]*hdrhistogram.Histogram{prop}, r.hists...)
	res.Sent = sent
	res.Received = pr.received
	res.Duplicates = pr.dups
	pr.mu.Unlock()
	if res.Received < res.Sent {
		res.Lost = res.Sent - res.Received
		res.Errors += res.Lost
		if res.ErrorKinds == nil {
			res.ErrorKinds = map[string]uint64{}
		}
		res.ErrorKinds["lost"] = res.Lost
	}
	return res, r.ctx.Err()
}

// warmPath sends warm-up updates every 50 ms until one reaches the probe, so that the timed
// updates start only once every link on the way is up.
func (r *runner) warmPath(pr *probe) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.o.linkWait)
	defer cancel()
	c, err := r.dial(ctx, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	st := stream{c: r.corp}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var line []byte
	for n := 0; ; n++ {
		line = append(line[:0], "IAMAT "...)
		line = append(line, pr.warmPfx...)
		line = strconv.AppendInt(line, int64(n), 10)
		line = append(line, r.corp.propLoc...)
		line = st.appendTime(line)
		line = append(line, '\n')
		if _, err := c.Write(line); err != nil {
			return fmt.Errorf("loadgen: propagation warm-up: %w", err)
		}
		select {
		case <-pr.warm:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("loadgen: propagation: no update reached the probe on %s within %v (is it a neighbour of the far server?)", pr.ln.Addr(), r.o.linkWait)
		case <-t.C:
		}
	}
}

// idle opens -c connections and reports the growth of the server's VmRSS per connection.
func (r *runner) idle() (*result.Result, error) {
	corp, err := newCorpus(&options{scenario: "iamat", clients: r.o.conns, prefix: r.o.prefix, radius: "1", bound: 1}, time.Now().Unix())
	if err != nil {
		return nil, err
	}
	r.corp = corp
	before, err := readRSS(r.o.pid)
	if err != nil {
		return nil, err
	}
	r.begin()
	ws, err := r.connectedWorkers(256)
	if err != nil {
		return nil, err
	}
	defer closeAll(ws)
	if r.o.hello {
		_ = eachWorker(ws, 256, func(w *worker) error {
			_ = w.conn.SetDeadline(time.Now().Add(30 * time.Second))
			w.wbuf = w.st.appendIAMAT(w.wbuf[:0], w.id)
			w.kinds = append(w.kinds[:0], kindIAMAT)
			w.ends = append(w.ends[:0], len(w.wbuf))
			if _, err := w.conn.Write(w.wbuf); err != nil {
				r.st.fail("conn", err.Error())
				return nil // counted: the others go on
			}
			if err := r.readReplies(w, time.Time{}, false); err != nil {
				r.st.fail("conn", err.Error())
			}
			_ = w.conn.SetDeadline(time.Time{})
			w.wbuf, w.kinds, w.ends, w.rbuf = nil, nil, nil, nil
			return nil
		})
	}
	if !sleepCtx(r.ctx, r.o.settle) {
		return nil, r.ctx.Err()
	}
	after, err := readRSS(r.o.pid)
	if err != nil {
		return nil, err
	}
	res := r.result()
	res.Seconds = time.Since(r.startWall).Seconds()
	res.Throughput = 0
	res.IdleConns = r.o.conns
	res.RSSBefore, res.RSSAfter = before, after
	res.RSSPerConn = float64(after-before) / float64(r.o.conns)
	return res, nil
}

// readRSS returns VmRSS of process pid in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	return parseRSS(b)
}

func parseRSS(status []byte) (int64, error) {
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("loadgen: no VmRSS in /proc status")
}
