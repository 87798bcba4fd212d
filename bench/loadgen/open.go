package main

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// maxBatch caps the requests gathered into one write when the sender has fallen behind.
const maxBatch = 1024

// sender is the writing half of one open-loop connection.
type sender struct {
	p   pacer
	q   *pending
	st  *stream
	clk clock
	w   io.Writer
	buf []byte
	// measure is the start of the window: requests meant for earlier are warm-up.
	measure time.Duration
	inWin   uint64 // requests meant for the window, sent
}

// step sends every request that is due at now, in writes of at most
// maxBatch requests, pushing each one's intended time to the pending queue before writing it.
func (s *sender) step(now time.Duration) (int, error) {
	first, n := s.p.take(now)
	for i := uint64(0); i < n; {
		s.buf = s.buf[:0]
		m := min(n-i, maxBatch)
		for k := first + i; k < first+i+m; k++ {
			seq := s.p.seq(k)
			at := s.p.s.at(seq)
			var kind uint8
			s.buf, kind = s.st.next(s.buf, seq)
			s.q.push(at, kind)
			if at >= s.measure {
				s.inWin++
			}
		}
		if _, err := s.w.Write(s.buf); err != nil {
			return int(i), err
		}
		i += m
	}
	return int(n), nil
}

// receiver is the reading half of one open-loop connection.
type receiver struct {
	q    *pending
	sc   replyScanner
	lats []int64 // latencies of the replies completed by the last feed, in ns
	// kinds of the replies completed by the last feed
	kc      [numKinds]uint64
	invalid int
	measure time.Duration
}

// errUnexpected means a reply arrived with no request pending.
var errUnexpected = errors.New("loadgen: reply with no request pending")

// feed consumes bytes read at time now and collects, for each reply it completes, the
// latency from the request's intended send time. Replies to warm-up requests are dropped.
func (rc *receiver) feed(p []byte, now time.Duration) error {
	rc.lats = rc.lats[:0]
	rc.kc = [numKinds]uint64{}
	rc.invalid = 0
	for len(p) > 0 {
		k, ok := rc.q.peekKind()
		if !ok {
			return fmt.Errorf("%w: %q", errUnexpected, clip(p))
		}
		c, fin, inv := rc.sc.scan(p, k)
		p = p[c:]
		if !fin {
			continue
		}
		at, _ := rc.q.pop()
		if inv {
			rc.invalid++
		}
		if at >= rc.measure {
			rc.lats = append(rc.lats, int64(now-at))
			rc.kc[k]++
		}
	}
	return nil
}

// open runs one connection of the open loop.
func (r *runner) open(w *worker) {
	q := &pending{}
	s := &sender{
		p:       pacer{s: r.sched, conn: uint64(w.id), nconn: uint64(r.o.conns)},
		q:       q,
		st:      &w.st,
		clk:     r.clk,
		w:       w.conn,
		measure: r.measure,
	}
	if w.quota > 0 {
		s.p.limit = uint64(w.quota)
	}
	var writerDone, kicked atomic.Bool
	go func() {
		defer writerDone.Store(true)
		for r.ctx.Err() == nil {
			now := r.clk.now()
			// Requests meant for the window are sent even when the last wake-up came late.
			n, err := s.step(min(now, r.end-1))
			r.st.all.Add(uint64(n))
			if err == nil && (now >= r.end || (s.p.limit > 0 && s.p.sent >= s.p.limit)) {
				break
			}
			if err != nil {
				if !kicked.Load() {
					r.st.fail("conn", err.Error())
				}
				kicked.Store(true)
				_ = w.conn.SetReadDeadline(time.Now())
				return
			}
			if d := min(s.p.next(), r.end) - r.clk.now(); d > 0 {
				r.clk.sleep(d)
			}
		}
		// Let the reader collect what is outstanding, then wake it.
		deadline := time.Now().Add(r.o.grace)
		for q.len() > 0 && time.Now().Before(deadline) && r.ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		kicked.Store(true)
		_ = w.conn.SetReadDeadline(time.Now())
	}()
	rc := &receiver{q: q, sc: w.sc, measure: r.measure}
	sh := r.st.shard(w.id)
	for {
		n, err := w.conn.Read(w.rbuf)
		if n > 0 {
			now := r.clk.now()
			ferr := rc.feed(w.rbuf[:n], now)
			r.st.progress.Add(uint64(len(rc.lats)))
			if rc.invalid > 0 {
				r.st.fail("invalid", fmt.Sprintf("%d error replies", rc.invalid))
			}
			if len(rc.lats) > 0 {
				sh.mu.Lock()
				for _, l := range rc.lats {
					_ = sh.hist.RecordValue(l)
				}
				sh.replies += uint64(len(rc.lats))
				for k, v := range rc.kc {
					sh.kinds[k] += v
				}
				sh.mu.Unlock()
			}
			if ferr != nil {
				r.st.fail("unexpected", ferr.Error())
				kicked.Store(true)
				_ = w.conn.Close()
				break
			}
		}
		if err != nil {
			if !kicked.Load() {
				r.st.fail("conn", err.Error())
				kicked.Store(true)
				_ = w.conn.Close()
			}
			break
		}
	}
	for !writerDone.Load() {
		time.Sleep(time.Millisecond)
	}
	if left := q.len(); left > 0 {
		r.st.fail("unanswered", fmt.Sprintf("%d requests had no reply %v after the window", left, r.o.grace))
		r.st.emu.Lock()
		r.st.errs["unanswered"] += uint64(left - 1)
		r.st.emu.Unlock()
	}
	sh.mu.Lock()
	sh.sent += s.inWin
	sh.mu.Unlock()
}
