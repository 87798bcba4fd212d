package reactor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// result is what a done callback saw.
type result struct {
	v   int
	err error
}

// submit runs Go (or GoWith) on the loop and returns the Future and a channel that gets its
// result from the done callback.
func submit(t *testing.T, l *Loop, o JobOptions, fn func(context.Context) (int, error)) (*Future[int], chan result) {
	t.Helper()
	ch := make(chan result, 1)
	var f *Future[int]
	onLoop(t, l, func() {
		f = GoWith(l, o, fn)
		f.AddDoneCallback(func(f *Future[int]) {
			v, err := f.Result()
			ch <- result{v, err}
		})
	})
	return f, ch
}

func await(t *testing.T, ch chan result) result {
	t.Helper()
	return testutil.Recv(t, ch, "the future")
}

// blocker returns a job that signals started, then waits for release (or its ctx).
func blocker(started chan<- struct{}, release <-chan struct{}, v int) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		started <- struct{}{}
		select {
		case <-release:
			return v, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// busyLoop starts a loop with opts and one worker, and keeps the worker busy with a job until
// release is called (at the latest when the test ends); that job's result comes on first.
func busyLoop(t *testing.T, opts Options) (l *Loop, release func(), first chan result) {
	t.Helper()
	opts.Workers, opts.Debug = 1, true
	l = startLoop(t, opts)
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	started := make(chan struct{}, 1)
	_, first = submit(t, l, JobOptions{}, blocker(started, ch, 1))
	<-started
	return l, release, first
}

// However many jobs wait, the goroutines are bounded by the worker count, and every job runs.
func TestExecutorGoroutinesBounded(t *testing.T) {
	const workers, jobs = 4, 2000
	l := startLoop(t, Options{Workers: workers, Debug: true})
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	started := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	wg.Add(jobs)
	var sum atomic.Int64
	onLoop(t, l, func() {
		for i := range jobs {
			f := Go(l, blocker(started, release, i))
			f.AddDoneCallback(func(f *Future[int]) {
				v, _ := f.Result()
				sum.Add(int64(v))
				wg.Done()
			})
		}
	})
	testutil.WaitFor(t, "the workers to start", func() bool { return len(started) == workers })
	if n := runtime.NumGoroutine(); n > before+workers {
		t.Errorf("%d goroutines with %d jobs submitted (%d before), want at most %d", n, jobs, before, before+workers)
	}
	close(release)
	wg.Wait()
	if want := int64(jobs * (jobs - 1) / 2); sum.Load() != want {
		t.Errorf("results sum to %d, want %d", sum.Load(), want)
	}
	onLoop(t, l, func() {
		if l.exec.workers != workers || len(l.exec.idle) != workers || l.exec.queue.len() != 0 {
			t.Errorf("after the jobs: %d workers, %d idle, %d queued; want %d, %d, 0",
				l.exec.workers, len(l.exec.idle), l.exec.queue.len(), workers, workers)
		}
	})
}

// Idle workers are reused: jobs one after another need one worker.
func TestExecutorReusesIdleWorker(t *testing.T) {
	l := startLoop(t, Options{Workers: 8, Debug: true})
	for i := range 20 {
		_, ch := submit(t, l, JobOptions{}, func(context.Context) (int, error) { return i, nil })
		if r := await(t, ch); r.v != i || r.err != nil {
			t.Fatalf("job %d: %+v", i, r)
		}
	}
	onLoop(t, l, func() {
		if l.exec.workers != 1 {
			t.Errorf("%d workers started for jobs run one at a time, want 1", l.exec.workers)
		}
	})
}

// A job cancelled while queued never runs and its Future completes with ErrCancelled.
func TestExecutorCancelQueued(t *testing.T) {
	l, release, first := busyLoop(t, Options{})
	var ran atomic.Bool
	queued, second := submit(t, l, JobOptions{}, func(context.Context) (int, error) { ran.Store(true); return 2, nil })
	_, third := submit(t, l, JobOptions{}, func(context.Context) (int, error) { return 3, nil })
	onLoop(t, l, func() {
		if !queued.Cancel() {
			t.Error("Cancel of a queued job reported false")
		}
	})
	if r := await(t, second); !errors.Is(r.err, ErrCancelled) {
		t.Errorf("cancelled job: %+v, want ErrCancelled", r)
	}
	release()
	if r := await(t, first); r.v != 1 || r.err != nil {
		t.Errorf("first job: %+v", r)
	}
	if r := await(t, third); r.v != 3 || r.err != nil {
		t.Errorf("job behind the cancelled one: %+v", r)
	}
	if ran.Load() {
		t.Error("the cancelled job ran")
	}
}

// A job whose deadline passes while it waits completes at its deadline with ErrDeadline,
// while the job ahead of it still runs, and never runs itself.
func TestExecutorDeadlineWhileQueued(t *testing.T) {
	clock := NewFakeClock(time.Unix(1e9, 0))
	l, _, _ := busyLoop(t, Options{Clock: clock})
	var ran atomic.Bool
	deadline := clock.Now().Add(time.Second)
	f, late := submit(t, l, JobOptions{Deadline: deadline},
		func(context.Context) (int, error) { ran.Store(true); return 2, nil })
	if next, ok := clock.Next(); !ok || !next.Equal(deadline) {
		t.Fatalf("the loop's next deadline is %v (%v), want the job's, %v", next, ok, deadline)
	}
	clock.Advance(time.Second - time.Nanosecond)
	onLoop(t, l, func() {}) // a pass after the advance
	onLoop(t, l, func() {
		if f.Done() {
			t.Error("the job expired before its deadline")
		}
	})
	clock.Advance(time.Nanosecond)
	r := await(t, late)
	if !errors.Is(r.err, ErrDeadline) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("expired job: %+v, want ErrDeadline", r)
	}
	if ran.Load() {
		t.Error("the expired job ran")
	}
	// A deadline already past: the job is refused at once.
	_, past := submit(t, l, JobOptions{Deadline: clock.Now()},
		func(context.Context) (int, error) { ran.Store(true); return 3, nil })
	if r := await(t, past); !errors.Is(r.err, ErrDeadline) || ran.Load() {
		t.Errorf("job at its deadline: %+v, ran %v", r, ran.Load())
	}
}

// A job that starts in time runs with its deadline on its ctx.
func TestExecutorDeadlineOnCtx(t *testing.T) {
	l := startLoop(t, Options{Workers: 1, Debug: true})
	want := time.Now().Add(time.Hour)
	_, ch := submit(t, l, JobOptions{Deadline: want}, func(ctx context.Context) (int, error) {
		if dl, ok := ctx.Deadline(); !ok || dl.Sub(want).Abs() > time.Second {
			return 0, fmt.Errorf("ctx deadline %v (%v), want %v", dl, ok, want)
		}
		return 1, nil
	})
	if r := await(t, ch); r.err != nil {
		t.Error(r.err)
	}
}

// A job still running at its deadline: its Future completes then with ErrDeadline, its ctx
// is cancelled, and the result it returns later is dropped.
func TestExecutorDeadlineWhileRunning(t *testing.T) {
	clock := NewFakeClock(time.Unix(1e9, 0))
	l := startLoop(t, Options{Workers: 1, Debug: true, Clock: clock})
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	cancelled := make(chan bool, 1)
	deadline := clock.Now().Add(time.Second)
	f, ch := submit(t, l, JobOptions{Deadline: deadline}, func(ctx context.Context) (int, error) {
		started <- struct{}{}
		<-release // a job that ignores its deadline
		cancelled <- ctx.Err() != nil
		return 7, nil
	})
	<-started
	clock.Advance(time.Second - time.Nanosecond)
	onLoop(t, l, func() {})
	onLoop(t, l, func() {
		if f.Done() {
			t.Error("the running job's Future completed before its deadline")
		}
	})
	clock.Advance(time.Nanosecond)
	if r := await(t, ch); !errors.Is(r.err, ErrDeadline) {
		t.Fatalf("running job at its deadline: %+v, want ErrDeadline", r)
	}
	close(release)
	if !testutil.Recv(t, cancelled, "the job to return") {
		t.Error("the job's ctx was not cancelled at the deadline")
	}
	// The worker is free again; the late result is not the Future's.
	_, next := submit(t, l, JobOptions{}, func(context.Context) (int, error) { return 8, nil })
	if r := await(t, next); r.v != 8 || r.err != nil {
		t.Errorf("the next job: %+v", r)
	}
	onLoop(t, l, func() {
		if v, err := f.Result(); v != 0 || !errors.Is(err, ErrDeadline) {
			t.Errorf("the expired Future now holds %d, %v", v, err)
		}
	})
}

// Keys take turns: behind one key's hundred queued jobs, another key's job is the next to
// run, and the first key's jobs keep their order.
func TestExecutorFairAcrossKeys(t *testing.T) {
	l, release, _ := busyLoop(t, Options{})
	var order []int // loop only
	record := func(v int) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { return v, nil }
	}
	done := make(chan struct{})
	onLoop(t, l, func() {
		add := func(key uint64, v int) {
			GoWith(l, JobOptions{Key: key}, record(v)).AddDoneCallback(func(f *Future[int]) {
				v, _ := f.Result()
				order = append(order, v)
				if len(order) == 103 {
					close(done)
				}
			})
		}
		for i := range 100 {
			add(1, i)
		}
		add(2, 1000)
		add(3, 2000)
		add(2, 1001)
	})
	release()
	testutil.Recv(t, done, "every job")
	onLoop(t, l, func() {
		want := []int{0, 1000, 2000, 1, 1001, 2}
		for i, v := range want {
			if order[i] != v {
				t.Fatalf("order %v..., want %v...", order[:len(want)], want)
			}
		}
		for i := 3; i < 100; i++ {
			if order[i+3] != i {
				t.Fatalf("key 1's jobs out of order: %v", order)
			}
		}
	})
}

// Past MaxQueued jobs waiting, a job fails at once with ErrBusy and never runs; once the queue
// has room, jobs queue again.
func TestExecutorBusy(t *testing.T) {
	l, release, _ := busyLoop(t, Options{MaxQueued: 2})
	var ran atomic.Int32
	job := func(context.Context) (int, error) { ran.Add(1); return 1, nil }
	_, a := submit(t, l, JobOptions{}, job)
	_, b := submit(t, l, JobOptions{Key: 1}, job)
	_, busy := submit(t, l, JobOptions{Key: 2}, job)
	if r := await(t, busy); !errors.Is(r.err, ErrBusy) {
		t.Fatalf("third job past MaxQueued 2: %+v, want ErrBusy", r)
	}
	release()
	for _, ch := range []chan result{a, b} {
		if r := await(t, ch); r.err != nil {
			t.Errorf("queued job: %+v", r)
		}
	}
	if n := ran.Load(); n != 2 {
		t.Errorf("%d jobs ran, want the 2 queued", n)
	}
}

// Stop fails the queued jobs with ErrClosed (their callbacks run), cancels the running job's
// ctx and waits for it to return.
func TestExecutorStop(t *testing.T) {
	l := New(Options{Workers: 1, Debug: true})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	var returned atomic.Bool
	_, running := submit(t, l, JobOptions{}, func(ctx context.Context) (int, error) {
		started <- struct{}{}
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // Stop must wait for this
		returned.Store(true)
		return 0, ctx.Err()
	})
	<-started
	var ran atomic.Bool
	_, queued := submit(t, l, JobOptions{}, func(context.Context) (int, error) { ran.Store(true); return 1, nil })
	l.Stop()
	testutil.Recv(t, l.Done(), "the loop to stop")
	if !returned.Load() {
		t.Error("the loop stopped before its running job returned")
	}
	select {
	case r := <-queued:
		if !errors.Is(r.err, ErrClosed) {
			t.Errorf("queued job at Stop: %+v, want ErrClosed", r)
		}
	default:
		t.Error("the queued job's callback did not run at Stop")
	}
	if ran.Load() {
		t.Error("a queued job ran after Stop")
	}
	select {
	case r := <-running:
		t.Errorf("the running job's result reached the stopped loop: %+v", r)
	default:
	}
}

// A panic in a job completes its Future with an error; the worker and the loop go on.
func TestExecutorPanic(t *testing.T) {
	l := startLoop(t, Options{Workers: 1})
	_, ch := submit(t, l, JobOptions{}, func(context.Context) (int, error) { panic("kaboom") })
	if r := await(t, ch); r.err == nil {
		t.Error("a panicking job completed without an error")
	}
	_, ch = submit(t, l, JobOptions{}, func(context.Context) (int, error) { return 7, nil })
	if r := await(t, ch); r.v != 7 || r.err != nil {
		t.Errorf("the job after a panic: %+v", r)
	}
}

// Many cancelled jobs do not pile up in the queue.
func TestExecutorQueueCompacts(t *testing.T) {
	l, _, _ := busyLoop(t, Options{})
	onLoop(t, l, func() {
		keep := Go(l, func(context.Context) (int, error) { return 0, nil })
		for range 10000 {
			Go(l, func(context.Context) (int, error) { return 0, nil }).Cancel()
		}
		if n := l.exec.queue.held(); n > 200 {
			t.Errorf("queue holds %d entries for 1 live job after 10000 cancelled", n)
		}
		if l.exec.queue.len() != 1 || keep.Done() {
			t.Errorf("live jobs %d, want 1", l.exec.queue.len())
		}
	})
}

// Nothing runs before Start: a job submitted before it runs once the loop starts, and a loop
// that never starts starts no worker.
func TestExecutorBeforeStart(t *testing.T) {
	before := runtime.NumGoroutine()
	idle := New(Options{Debug: true})
	Go(idle, func(context.Context) (int, error) { t.Error("a job ran on a loop never started"); return 0, nil })
	if n := runtime.NumGoroutine(); n != before {
		t.Errorf("%d goroutines after Go on a loop not started, %d before", n, before)
	}
	idle.Stop()

	l := New(Options{Debug: true})
	ran := make(chan struct{})
	f := Go(l, func(context.Context) (int, error) { close(ran); return 5, nil })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { l.Stop(); <-l.Done() }()
	testutil.Recv(t, ran, "the job submitted before Start to run")
	done := make(chan result, 1)
	onLoop(t, l, func() {
		f.AddDoneCallback(func(f *Future[int]) { v, err := f.Result(); done <- result{v, err} })
	})
	if r := await(t, done); r.v != 5 || r.err != nil {
		t.Errorf("result %+v", r)
	}
}

// BenchmarkGo measures a job's round trip: submitted on the loop, run by a worker, its result
// back on the loop, 64 jobs in flight at a time.
func BenchmarkGo(b *testing.B) {
	l := startLoop(b, Options{Workers: 8})
	const batch = 64
	done := make(chan struct{}, batch)
	fn := func(context.Context) (int, error) { return 1, nil }
	cb := func(*Future[int]) { done <- struct{}{} }
	submitBatch := func() {
		for range batch {
			Go(l, fn).AddDoneCallback(cb)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.CallSoonThreadsafe(submitBatch); err != nil {
			b.Fatal(err)
		}
		for range batch {
			<-done
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/job")
}

// held returns the entries the queue holds, dead ones included. Loop only; O(keys).
func (q *jobQueue) held() int {
	n := 0
	for _, f := range q.keys {
		n += f.held()
	}
	return n
}
