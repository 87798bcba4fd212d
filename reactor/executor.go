package reactor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// The executor runs the jobs of Go and GoWith off the loop, as asyncio's ThreadPoolExecutor
// runs those of run_in_executor (and redis's bio.c its background jobs): a bounded set of
// workers and a queue.
//
//   - Workers are goroutines started on demand, one per job while fewer than Options.Workers
//     exist, and kept: a worker that finishes a job takes the next queued one, or waits idle for
//     the next submitted one (the most recently idle first, whose stack is warm). They exit when
//     the loop stops. However many jobs are submitted, the goroutines never outnumber Workers.
//   - The queue belongs to the loop: submitting, handing a job to a worker, completing,
//     cancelling and expiring all happen in loop callbacks, so the executor has no lock of its
//     own, and a queued job costs its Future and a queue slot, not a goroutine. A worker crosses to the
//     loop once per job, to post its completion (CallSoonThreadsafe); the loop hands it the next
//     job over a channel of one slot that the worker has emptied before it posts, so the loop
//     never blocks.
//   - The queue is fair across keys (JobOptions.Key: a connection, say): one FIFO per key, and
//     a ring of the keys that have jobs waiting; a free worker takes the first job of the key
//     at the front of the ring, and that key goes to the back. So a key that queued a thousand
//     jobs delays another key's next job by one job at most, not a thousand. Push and pop are
//     O(1) (a map lookup by key).
//   - The queue is bounded by Options.MaxQueued: a job that would wait beyond it fails at
//     once with ErrBusy, so a caller can answer "busy" rather than hold what it cannot serve.
//   - A queued job whose Future is cancelled never runs; it stays in its key's FIFO, dead,
//     until it reaches the front or the FIFO is compacted (so Cancel is O(1), amortised).
//   - A job's deadline (JobOptions.Deadline) is a loop timer from submission to completion: if
//     it fires while the job is queued, the Future completes with ErrDeadline and the job never
//     runs; if it fires while the job runs, the Future completes with ErrDeadline, the job's
//     ctx (which carries the deadline too) is cancelled, and its result, when it comes, is
//     dropped. So a Future with a deadline is done by its deadline plus the loop's lag, however
//     long the queue and whatever the job does; its worker is busy until the job returns.
//   - Stop fails the queued jobs with ErrClosed (their callbacks run while the loop drains),
//     cancels the ctx of running ones and waits for them; their results are dropped (their
//     Futures stay pending, as asyncio's do when the loop stops).

// JobOptions tune one job of GoWith. The zero value is Go's: no deadline.
type JobOptions struct {
	// Deadline, if not zero, is when the job's result is due, on the loop's clock (Loop.Time).
	// The Future completes by then: with ErrDeadline if the job has not returned (a job still
	// waiting for a worker never runs). A job that starts in time gets a ctx with the time
	// left until the deadline (the same instant when the loop runs on the real clock).
	Deadline time.Time
	// Key is the job's turn in the queue: jobs of one key wait in order, and keys take turns
	// (see the executor's doc in executor.go). The zero key is a key like any other.
	Key uint64
}

// ErrDeadline is the error of a Future made by GoWith whose deadline passed before its job
// returned: the job never ran (it waited for a worker), or it was still running (its ctx is
// cancelled and its result dropped). It wraps context.DeadlineExceeded.
var ErrDeadline = fmt.Errorf("reactor: deadline passed before the job was done: %w", context.DeadlineExceeded)

// ErrBusy is the error of a Future made by Go or GoWith whose job would have waited for a
// worker behind Options.MaxQueued others: it never runs, and the Future is done at once.
var ErrBusy = errors.New("reactor: executor busy: the queue is full")

// defaultWorkers is Options.Workers when not set: asyncio's default for its executor,
// min(32, CPUs + 4), for jobs that mostly wait (I/O) yet should not swamp the cores.
func defaultWorkers() int { return min(32, runtime.GOMAXPROCS(0)+4) }

// job is a Future made by Go, as the executor sees it, whatever its type.
type job interface {
	state() *jobState
	run()           // on a worker: runs fn with the job's ctx and keeps its result
	finish()        // on the loop: completes the Future with the kept result, unless already done
	fail(err error) // on the loop: completes the Future with err; fn never runs
}

// Phases of a job.
const (
	jobNone     uint8 = iota // not a job (NewFuture), or not yet submitted
	jobQueued                // in the queue, waiting for a worker
	jobRunning               // handed to a worker
	jobFinished              // done with: completed, or abandoned while queued
)

// jobState is the executor's bookkeeping of one job: loop only, except ctx, which the worker
// reads after the hand-over.
type jobState struct {
	phase    uint8
	key      uint64
	deadline time.Time
	timer    *Handle // the deadline, until the job is done
	ctx      context.Context
	cancel   context.CancelFunc // while running
}

// executor is the loop's pool. Loop only; the zero value is ready (sized by Options.Workers).
type executor struct {
	queue   jobQueue
	idle    []*worker
	workers int // started; they exit only when the loop stops
	stopped bool
}

// worker is one executor goroutine.
type worker struct {
	l      *Loop
	cur    job      // the job handed over, on the loop
	next   chan job // the next job; one slot, empty whenever the loop sends
	doneFn func()   // w.done, bound once so posting it allocates nothing
}

// submit starts j at once if a worker is free or may be started, and queues it otherwise.
// Loop only.
func (e *executor) submit(l *Loop, j job, o JobOptions) {
	js := j.state()
	js.deadline, js.key = o.Deadline, o.Key
	switch {
	case js.phase == jobFinished:
		// Cancelled before the loop started and submitted it.
	case e.stopped:
		js.phase = jobFinished
		j.fail(ErrClosed)
	case !js.deadline.IsZero() && !js.deadline.After(l.Time()):
		js.phase = jobFinished
		j.fail(ErrDeadline)
	case len(e.idle) > 0:
		w := e.idle[len(e.idle)-1]
		e.idle[len(e.idle)-1] = nil
		e.idle = e.idle[:len(e.idle)-1]
		e.armDeadline(l, j)
		e.start(l, w, j)
		w.next <- j
	case e.workers < l.opts.Workers && l.track(&l.workWG):
		e.workers++
		w := &worker{l: l, next: make(chan job, 1)}
		w.doneFn = w.done
		e.armDeadline(l, j)
		e.start(l, w, j)
		go w.work(j)
	case l.opts.MaxQueued > 0 && e.queue.len() >= l.opts.MaxQueued:
		js.phase = jobFinished
		j.fail(ErrBusy)
	default:
		js.phase = jobQueued
		e.queue.push(j)
		e.armDeadline(l, j)
	}
}

// armDeadline sets j's deadline timer, if it has a deadline. Loop only.
func (e *executor) armDeadline(l *Loop, j job) {
	js := j.state()
	if !js.deadline.IsZero() {
		js.timer = l.CallAt(js.deadline, func() { e.expire(j) })
	}
}

// start makes j w's job: its ctx, made now so that a job waiting in the queue holds none. The
// caller then hands j to w's goroutine. Loop only.
func (e *executor) start(l *Loop, w *worker, j job) {
	js := j.state()
	if js.deadline.IsZero() {
		js.ctx, js.cancel = context.WithCancel(l.rootCtx)
	} else {
		// The time left on the loop's clock (Options.Clock), from now on the real one, which
		// is the only one a ctx knows.
		js.ctx, js.cancel = context.WithTimeout(l.rootCtx, js.deadline.Sub(l.Time()))
	}
	js.phase = jobRunning
	w.cur = j
}

// work is a worker's goroutine: it runs j, posts the completion to the loop, and waits for the
// next job until the loop stops.
func (w *worker) work(j job) {
	l := w.l
	defer l.workWG.Done()
	for {
		j.run()
		if l.CallSoonThreadsafe(w.doneFn) != nil {
			return // the loop is stopping: the result has nowhere to go
		}
		select {
		case j = <-w.next:
		case <-l.rootCtx.Done():
			return
		}
	}
}

// done runs on the loop when w has finished its job: the Future takes the result (unless it
// was cancelled meanwhile), and w takes the next queued job or waits idle.
func (w *worker) done() {
	l := w.l
	e := &l.exec
	j := w.cur
	w.cur = nil
	js := j.state()
	js.cancel()
	js.ctx, js.cancel = nil, nil
	js.timer.Cancel()
	js.timer = nil
	js.phase = jobFinished
	j.finish()
	if e.stopped {
		return // w exits: the loop's context is cancelled
	}
	if next := e.queue.pop(); next != nil {
		e.start(l, w, next)
		w.next <- next
		return
	}
	e.idle = append(e.idle, w)
}

// expire fails a job whose deadline passed before it was done: a queued one never runs, a
// running one has its ctx cancelled (abandon) and its result dropped. Loop only.
func (e *executor) expire(j job) {
	js := j.state()
	js.timer = nil
	switch js.phase {
	case jobQueued:
		e.queue.kill(js)
		j.fail(ErrDeadline)
	case jobRunning:
		j.fail(ErrDeadline)
	}
}

// abandon is called when a job's Future completes other than with the job's result (Cancel,
// SetResult, a deadline): a queued job never runs, a running one has its ctx cancelled.
// Loop only.
func (e *executor) abandon(js *jobState) {
	switch js.phase {
	case jobQueued:
		if js.timer != nil {
			js.timer.Cancel()
			js.timer = nil
		}
		e.queue.kill(js)
	case jobRunning:
		js.cancel() // the timer stays: done cancels it
	case jobNone:
		js.phase = jobFinished // not submitted yet (Go before Start): it never will be
	}
}

// stop fails every queued job with ErrClosed and lets the idle workers go (they exit when the
// loop's context is cancelled, running ones after their job). On the loop, as it stops.
func (e *executor) stop() {
	e.stopped = true
	for j := e.queue.pop(); j != nil; j = e.queue.pop() {
		js := j.state()
		if js.timer != nil {
			js.timer.Cancel()
			js.timer = nil
		}
		js.phase = jobFinished
		j.fail(ErrClosed)
	}
	clear(e.idle)
	e.idle = nil
}

// jobQueue is the executor's queue of jobs waiting for a worker: one FIFO per key and a ring
// of the keys that have jobs, served in turn (see the top of this file). Loop only.
//
// A job that finished while queued (cancelled, expired) stays in its key's FIFO, dead, until
// it reaches the front or the dead outnumber the live and the FIFO is compacted (O(live)); the
// space before a FIFO's front and the ring's are reclaimed the same way, so the queue holds at
// most about twice its live jobs, plus a FIFO per key that has some.
type jobQueue struct {
	keys  map[uint64]*keyFIFO
	ring  []*keyFIFO // ring[rhead:]: the keys whose turn comes, in order
	rhead int
	live  int // queued jobs, in all FIFOs
	spare *keyFIFO
}

// keyFIFO is the jobs of one key, in order; items[head:] are held, dead of them finished.
type keyFIFO struct {
	key   uint64
	items []job
	head  int
	dead  int
}

func (f *keyFIFO) held() int { return len(f.items) - f.head }

// push appends j to its key's FIFO; a key that had no job joins the ring at the back. Loop
// only.
func (q *jobQueue) push(j job) {
	js := j.state()
	f := q.keys[js.key]
	if f == nil {
		if q.keys == nil {
			q.keys = make(map[uint64]*keyFIFO)
		}
		f = q.spare
		q.spare = nil
		if f == nil {
			f = &keyFIFO{}
		}
		f.key = js.key
		q.keys[js.key] = f
		q.ringPush(f)
	}
	if f.head > 64 && f.head >= len(f.items)/2 {
		f.compact()
	}
	f.items = append(f.items, j)
	q.live++
}

// pop removes and returns the first live job of the key whose turn it is, or nil; that key
// goes to the back of the ring if it has more. Loop only.
func (q *jobQueue) pop() job {
	for q.rhead < len(q.ring) {
		f := q.ring[q.rhead]
		q.ring[q.rhead] = nil
		q.rhead++
		var j job
		for f.head < len(f.items) && j == nil {
			j = f.items[f.head]
			f.items[f.head] = nil
			f.head++
			if j.state().phase != jobQueued {
				j = nil
				f.dead--
			}
		}
		if f.held() > f.dead {
			q.ringPush(f)
		} else {
			q.drop(f)
		}
		if j != nil {
			q.live--
			return j
		}
	}
	q.ring, q.rhead = q.ring[:0], 0
	return nil
}

// ringPush puts f at the back of the ring, compacting the space before the front first.
func (q *jobQueue) ringPush(f *keyFIFO) {
	if q.rhead > 64 && q.rhead >= len(q.ring)/2 {
		n := copy(q.ring, q.ring[q.rhead:])
		clear(q.ring[n:])
		q.ring, q.rhead = q.ring[:n], 0
	}
	q.ring = append(q.ring, f)
}

// drop forgets f, whose jobs are all gone (it is out of the ring), keeping one for reuse.
func (q *jobQueue) drop(f *keyFIFO) {
	delete(q.keys, f.key)
	clear(f.items)
	f.items, f.head, f.dead = f.items[:0], 0, 0
	if cap(f.items) > 4096 {
		f.items = nil // let a burst's backlog go
	}
	q.spare = f
}

// kill marks a queued job finished; it stays in its FIFO until pop or compact drops it. Loop
// only.
func (q *jobQueue) kill(js *jobState) {
	js.phase = jobFinished
	q.live--
	f := q.keys[js.key]
	f.dead++
	if f.dead > 64 && f.dead > f.held()-f.dead {
		f.compact()
	}
}

// len returns the number of live jobs. Loop only.
func (q *jobQueue) len() int { return q.live }

// compact drops the dead jobs and the space before the front. Loop only.
func (f *keyFIFO) compact() {
	live := f.items[:0]
	for _, j := range f.items[f.head:] {
		if j.state().phase == jobQueued {
			live = append(live, j)
		}
	}
	clear(f.items[len(live):])
	f.items, f.head, f.dead = live, 0, 0
}
