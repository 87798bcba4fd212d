package main

import (
	"sync"
	"time"
)

// clock is the time source of the open loop: real in a run, a timeline in tests.
// now is the time since the run's base instant.
type clock interface {
	now() time.Duration
	sleep(d time.Duration)
}

type realClock struct {
	base    time.Time
	precise bool // sleep with preciseSleep, not time.Sleep
}

func (c realClock) now() time.Duration { return time.Since(c.base) }

// sleep waits d. The open loop charges a late send to the server, so the load generator's own
// lateness must be small; time.Sleep may wake up to about 1 ms late. With precise set, the
// wait is within about 0.1 ms where the system allows (see preciseSleep).
func (c realClock) sleep(d time.Duration) {
	if c.precise {
		preciseSleep(d)
		return
	}
	time.Sleep(d)
}

// schedule is the open loop's plan: request seq (numbered across all connections) is meant
// to be sent at start + seq/rate. Latency is measured from that intended time, not from when
// the request was actually written, so a server that stalls the sender is charged for the
// whole wait of every request queued behind the stall (no coordinated omission).
type schedule struct {
	start time.Duration
	rate  float64 // requests per second, all connections together
}

// at returns the intended send time of request seq.
func (s schedule) at(seq uint64) time.Duration {
	return s.start + time.Duration(float64(seq)*1e9/s.rate)
}

// pacer is one connection's share of a schedule: connection conn of nconn sends requests
// conn, conn+nconn, conn+2*nconn, ...
type pacer struct {
	s     schedule
	conn  uint64
	nconn uint64
	sent  uint64 // this connection's requests taken so far
	limit uint64 // stop after this many (0: no limit)
}

// seq returns the run-wide number of this connection's k-th request.
func (p *pacer) seq(k uint64) uint64 { return k*p.nconn + p.conn }

// next returns the intended time of the next request to take.
func (p *pacer) next() time.Duration { return p.s.at(p.seq(p.sent)) }

// take returns the local index of the first request due at now and how many are due; the
// caller sends them all, in one write.
func (p *pacer) take(now time.Duration) (first, n uint64) {
	first = p.sent
	for (p.limit == 0 || p.sent < p.limit) && p.s.at(p.seq(p.sent)) <= now {
		p.sent++
	}
	return first, p.sent - first
}

// pending is the FIFO of requests written and not yet answered, shared by a connection's
// writer and reader.
type pending struct {
	mu    sync.Mutex
	at    []time.Duration
	kinds []uint8
	head  int
}

func (q *pending) push(at time.Duration, k uint8) {
	q.mu.Lock()
	q.at = append(q.at, at)
	q.kinds = append(q.kinds, k)
	q.mu.Unlock()
}

// peekKind returns the kind of the oldest pending request.
func (q *pending) peekKind() (uint8, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.at) {
		return 0, false
	}
	return q.kinds[q.head], true
}

// pop removes the oldest pending request and returns its intended time.
func (q *pending) pop() (time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.at) {
		return 0, false
	}
	at := q.at[q.head]
	q.head++
	if q.head == len(q.at) {
		q.at, q.kinds, q.head = q.at[:0], q.kinds[:0], 0
	} else if q.head > 4096 && q.head > len(q.at)/2 {
		n := copy(q.at, q.at[q.head:])
		copy(q.kinds, q.kinds[q.head:])
		q.at, q.kinds, q.head = q.at[:n], q.kinds[:n], 0
	}
	return at, true
}

func (q *pending) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.at) - q.head
}
