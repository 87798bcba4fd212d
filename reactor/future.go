package reactor

import (
	"context"
	"fmt"
)

// Future is the result of work that completes later, like asyncio.Future. Its methods are loop
// only (Debug mode panics otherwise). Done callbacks are always scheduled with CallSoon, never
// called inline.
type Future[T any] struct {
	l    *Loop
	done bool
	val  T
	err  error
	cbs  []func(*Future[T])

	// The job, for a Future made by Go or GoWith (see executor.go). fn is read by the worker
	// that runs it; rv and rerr are written by that worker and read on the loop once the worker
	// has posted its completion, so neither races with val and err, which a Cancel may set on
	// the loop while fn runs.
	fn   func(ctx context.Context) (T, error)
	job  jobState
	rv   T
	rerr error
}

// NewFuture returns a pending Future whose callbacks run on l. Any goroutine, but the Future is
// then used on the loop only.
func NewFuture[T any](l *Loop) *Future[T] { return &Future[T]{l: l} }

// SetResult completes the future with v and err and schedules its done callbacks. A future that
// is already done (for example cancelled) ignores it. For a Future made by Go, it also abandons
// the job as Cancel does. Loop only.
func (f *Future[T]) SetResult(v T, err error) {
	f.l.checkLoop("Future.SetResult")
	if f.done {
		return
	}
	f.val, f.err = v, err
	f.complete()
}

// Cancel completes a pending future with ErrCancelled and reports whether it did so (false if
// already done). For a Future made by Go or GoWith, a job still queued never runs, and a running
// job's ctx is cancelled (its result, when it comes, is dropped). Loop only.
func (f *Future[T]) Cancel() bool {
	f.l.checkLoop("Future.Cancel")
	if f.done {
		return false
	}
	f.err = ErrCancelled
	f.complete()
	return true
}

func (f *Future[T]) complete() {
	f.done = true
	f.l.exec.abandon(&f.job)
	cbs := f.cbs
	f.cbs = nil
	for _, cb := range cbs {
		f.l.CallSoonFunc(func() { cb(f) })
	}
}

// Done reports whether the future has a result. Loop only.
func (f *Future[T]) Done() bool { return f.done }

// Cancelled reports whether the future was cancelled. Loop only.
func (f *Future[T]) Cancelled() bool { return f.done && f.err == ErrCancelled }

// Result returns the value and error once Done; before that, the zero value and
// ErrNotDone. Loop only.
func (f *Future[T]) Result() (T, error) {
	if !f.done {
		var zero T
		return zero, ErrNotDone
	}
	return f.val, f.err
}

// AddDoneCallback arranges for fn(f) to run on the loop when f is done; if it already is, fn
// is scheduled with CallSoon. Loop only.
func (f *Future[T]) AddDoneCallback(fn func(*Future[T])) {
	f.l.checkLoop("Future.AddDoneCallback")
	if f.done {
		f.l.CallSoonFunc(func() { fn(f) })
		return
	}
	f.cbs = append(f.cbs, fn)
}

// Go runs fn off the loop on the loop's executor, like loop.run_in_executor(None, fn): at most
// Options.Workers jobs run at once, each on a worker goroutine, and the others wait in the
// executor's queue (see executor.go); however many jobs are submitted, the goroutines stay
// bounded by the worker count. The returned Future completes on the loop with fn's result.
// fn's ctx is cancelled when the Future is cancelled or the loop stops; fn should return soon
// after, since Stop waits for it. A panic in fn completes the Future with an error (and is
// logged). If the loop is stopping, the Future is returned done with ErrClosed and fn never
// runs. Loop only (Debug mode panics otherwise); before Start, the goroutine that will start
// the loop may call it too (the job is submitted when the loop starts), and once the loop has
// stopped, any goroutine. The Future is used on the loop only.
func Go[T any](l *Loop, fn func(ctx context.Context) (T, error)) *Future[T] {
	return GoWith(l, JobOptions{}, fn)
}

// GoWith is Go with options for the job: a deadline (see JobOptions). Loop only, as Go.
func GoWith[T any](l *Loop, o JobOptions, fn func(ctx context.Context) (T, error)) *Future[T] {
	f := &Future[T]{l: l, fn: fn}
	switch l.state.Load() {
	case stateNew:
		// Nothing runs before Start: the loop's first pass submits the job.
		_ = l.CallSoonThreadsafe(func() { l.exec.submit(l, f, o) })
	case stateRunning:
		l.checkLoop("Go")
		l.exec.submit(l, f, o)
	default:
		f.done, f.err = true, ErrClosed
	}
	return f
}

// The job interface (executor.go), for Futures made by Go.

func (f *Future[T]) state() *jobState { return &f.job }

func (f *Future[T]) run() {
	defer func() {
		if r := recover(); r != nil {
			f.l.logPanic("executor job", r)
			var zero T
			f.rv, f.rerr = zero, fmt.Errorf("reactor: panic in an executor job: %v", r)
		}
	}()
	f.rv, f.rerr = f.fn(f.job.ctx)
}

func (f *Future[T]) finish() {
	f.fn = nil
	v, err := f.rv, f.rerr
	var zero T
	f.rv, f.rerr = zero, nil
	f.SetResult(v, err)
}

func (f *Future[T]) fail(err error) {
	if f.job.phase != jobRunning {
		f.fn = nil // a running job's worker reads it: finish clears it
	}
	f.SetResult(f.val, err)
}
