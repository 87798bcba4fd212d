package reactor

import (
	"context"
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
//   - A queued job whose Future is cancelled never runs; it stays in the queue, dead, until it
//     reaches the front or the queue is compacted (so Cancel is O(1), amortised).
//   - A job's deadline (JobOptions.Deadline) is a loop timer while the job is queued: if it
//     fires first, the Future completes with ErrDeadline at the deadline, however long the
//     queue, and the job never runs. A job that starts in time runs with the deadline on its ctx.
//   - Stop fails the queued jobs with ErrClosed (their callbacks run while the loop drains),
//     cancels the ctx of running ones and waits for them; their results are dropped (their
//     Futures stay pending, as asyncio's do when the loop stops).
//
// The queue is FIFO. Fair ordering across clients would fit behind jobQueue's push and pop: a
// FIFO per key (a connection, say) and a ring of the keys that have jobs, pop taking from the
// next key in turn; the deadline timers and the lazy deletion would stay as they are.

// JobOptions tune one job of GoWith. The zero value is Go's: no deadline.
type JobOptions struct {
	// Deadline, if not zero, is when the job's result is due, on the loop's clock (Loop.Time).
	// A job still waiting for a worker at its deadline never runs: its Future completes then
	// with ErrDeadline. A job that starts in time gets a ctx with the time left until the
	// deadline (the same instant when the loop runs on the real clock).
	Deadline time.Time
}

// ErrDeadline is the error of a Future made by GoWith whose deadline passed before a worker
// was free to run its job (the job never ran). It wraps context.DeadlineExceeded.
var ErrDeadline = fmt.Errorf("reactor: deadline passed while the job waited for a worker: %w", context.DeadlineExceeded)

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
	deadline time.Time
	timer    *Handle // the deadline, while queued
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
	js.deadline = o.Deadline
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
		e.start(l, w, j)
		w.next <- j
	case e.workers < l.opts.Workers && l.track(&l.workWG):
		e.workers++
		w := &worker{l: l, next: make(chan job, 1)}
		w.doneFn = w.done
		e.start(l, w, j)
		go w.work(j)
	default:
		js.phase = jobQueued
		e.queue.push(j)
		if !js.deadline.IsZero() {
			js.timer = l.CallAt(js.deadline, func() { e.expire(j) })
		}
	}
}

// start makes j w's job: its ctx, made now so that a job waiting in the queue holds none. The
// caller then hands j to w's goroutine. Loop only.
func (e *executor) start(l *Loop, w *worker, j job) {
	js := j.state()
	if js.timer != nil {
		js.timer.Cancel()
		js.timer = nil
	}
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

// expire fails a job whose deadline passed while it was queued. Loop only.
func (e *executor) expire(j job) {
	js := j.state()
	if js.phase != jobQueued {
		return
	}
	js.timer = nil
	e.queue.kill(js)
	j.fail(ErrDeadline)
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
		js.cancel()
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

// jobQueue is the executor's FIFO of jobs waiting for a worker. Loop only. A job that finished
// while queued (cancelled, expired) stays in it, dead, until it reaches the front or the dead
// outnumber the live and the queue is compacted (O(live)); the space before the front is
// reclaimed the same way, so the queue holds at most about twice its live jobs.
type jobQueue struct {
	items []job
	head  int // items[:head] are gone
	dead  int // finished jobs in items[head:]
}

// push appends j. Loop only.
func (q *jobQueue) push(j job) {
	if q.head > 64 && q.head >= len(q.items)/2 {
		q.compact()
	}
	q.items = append(q.items, j)
}

// pop removes and returns the first live job, or nil. Loop only.
func (q *jobQueue) pop() job {
	for q.head < len(q.items) {
		j := q.items[q.head]
		q.items[q.head] = nil
		q.head++
		if j.state().phase == jobQueued {
			return j
		}
		q.dead--
	}
	if cap(q.items) > 4096 {
		q.items = nil // let a burst's backlog go
	}
	q.items, q.head, q.dead = q.items[:0], 0, 0
	return nil
}

// kill marks a queued job finished; it stays in items until pop or compact drops it. Loop only.
func (q *jobQueue) kill(js *jobState) {
	js.phase = jobFinished
	q.dead++
	if q.dead > 64 && q.dead > q.len() {
		q.compact()
	}
}

// len returns the number of live jobs. Loop only.
func (q *jobQueue) len() int { return len(q.items) - q.head - q.dead }

// compact drops the dead jobs and the space before the front. Loop only.
func (q *jobQueue) compact() {
	live := q.items[:0]
	for _, j := range q.items[q.head:] {
		if j.state().phase == jobQueued {
			live = append(live, j)
		}
	}
	clear(q.items[len(live):])
	q.items, q.head, q.dead = live, 0, 0
}
