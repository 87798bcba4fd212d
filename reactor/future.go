package reactor

import (
	"context"
)

// Future is the result of work that completes later, like asyncio.Future. Its methods are loop
// only (Debug mode panics otherwise). Done callbacks are always scheduled with CallSoon, never
// called inline.
type Future[T any] struct {
	l      *Loop
	done   bool
	val    T
	err    error
	cbs    []func(*Future[T])
	cancel context.CancelFunc
}

// NewFuture returns a pending Future whose callbacks run on l. Any goroutine, but the Future is
// then used on the loop only.
func NewFuture[T any](l *Loop) *Future[T] { return &Future[T]{l: l} }

// SetResult completes the future with v and err and schedules its done callbacks. A future that
// is already done (for example cancelled) ignores it. Loop only.
func (f *Future[T]) SetResult(v T, err error) {
	f.l.checkLoop("Future.SetResult")
	if f.done {
		return
	}
	f.val, f.err = v, err
	f.complete()
}

// Cancel completes a pending future with ErrCancelled, cancels the context of the function
// Go runs for it, and reports whether it did so (false if already done). Loop only.
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
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
	}
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

// Go runs fn off the loop on the executor, a pool of at most Options.Workers functions running
// at once, like loop.run_in_executor; the returned Future completes on the loop with fn's
// result. If the loop is stopping, the Future is returned done with ErrClosed and fn never
// runs. fn's ctx is cancelled when the future is cancelled or the loop stops; fn should
// return soon after, since Stop waits for it. Loop or any goroutine; the Future is then used on
// the loop only.
func Go[T any](l *Loop, fn func(ctx context.Context) (T, error)) *Future[T] {
	f := NewFuture[T](l)
	if !l.track(&l.workWG) {
		f.done, f.err = true, ErrClosed
		return f
	}
	ctx, cancel := context.WithCancel(l.rootCtx)
	f.cancel = cancel
	go func() {
		defer l.workWG.Done()
		defer cancel()
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return // cancelled while queued: the loop already completed the future
		}
		v, err := fn(ctx)
		<-l.sem
		_ = l.CallSoonThreadsafe(func() { f.SetResult(v, err) })
	}()
	return f
}
