package reactor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

func TestGoResultOnLoop(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	type res struct {
		v      int
		err    error
		onLoop bool
	}
	got := make(chan res, 2)
	boom := errors.New("boom")
	onLoop(t, l, func() {
		for _, tc := range []struct {
			v   int
			err error
		}{{42, nil}, {0, boom}} {
			f := Go(l, func(context.Context) (int, error) { return tc.v, tc.err })
			f.AddDoneCallback(func(f *Future[int]) {
				v, err := f.Result()
				got <- res{v, err, l.OnLoop()}
			})
		}
	})
	var ok42, okBoom bool
	for range 2 {
		r := testutil.Recv(t, got, "a done callback")
		if !r.onLoop {
			t.Fatal("done callback off the loop")
		}
		switch {
		case r.v == 42 && r.err == nil:
			ok42 = true
		case r.v == 0 && errors.Is(r.err, boom):
			okBoom = true
		default:
			t.Fatalf("unexpected result %+v", r)
		}
	}
	if !ok42 || !okBoom {
		t.Fatal("missing a result")
	}
}

func TestFutureCallbacksNeverInline(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	var order []string
	onLoop(t, l, func() {
		f := NewFuture[string](l)
		if _, err := f.Result(); !errors.Is(err, ErrNotDone) {
			t.Errorf("Result before done: %v", err)
		}
		f.AddDoneCallback(func(*Future[string]) { order = append(order, "cb1") })
		f.SetResult("x", nil)
		order = append(order, "after SetResult")
		f.AddDoneCallback(func(*Future[string]) { order = append(order, "cb2") })
		order = append(order, "after AddDoneCallback")
		f.SetResult("y", nil) // ignored: already done
		if f.Cancel() {
			t.Error("Cancel of a done future reported true")
		}
		if v, err := f.Result(); v != "x" || err != nil {
			t.Errorf("Result = %q, %v", v, err)
		}
	})
	onLoop(t, l, func() {})
	want := "after SetResult,after AddDoneCallback,cb1,cb2"
	if s := strings.Join(order, ","); s != want {
		t.Fatalf("order %s, want %s", s, want)
	}
}

func TestGoCancel(t *testing.T) {
	l := startLoop(t, Options{Debug: true})
	ctxDone := make(chan struct{})
	started := make(chan struct{})
	var f *Future[int]
	onLoop(t, l, func() {
		f = Go(l, func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			close(ctxDone)
			return 7, nil
		})
	})
	testutil.Recv(t, started, "fn to start")
	var cbErr chan error = make(chan error, 1)
	onLoop(t, l, func() {
		f.AddDoneCallback(func(f *Future[int]) { _, err := f.Result(); cbErr <- err })
		if !f.Cancel() {
			t.Error("Cancel reported false")
		}
		if _, err := f.Result(); !errors.Is(err, ErrCancelled) || !f.Cancelled() {
			t.Errorf("Result after Cancel: %v", err)
		}
	})
	testutil.Recv(t, ctxDone, "fn's ctx to be cancelled")
	if err := testutil.Recv(t, cbErr, "the done callback"); !errors.Is(err, ErrCancelled) {
		t.Fatalf("callback saw %v", err)
	}
	onLoop(t, l, func() {}) // fn's late result must be ignored
	onLoop(t, l, func() {
		if _, err := f.Result(); !errors.Is(err, ErrCancelled) {
			t.Errorf("late result replaced the cancellation: %v", err)
		}
	})
}

func TestGoBoundedPool(t *testing.T) {
	const workers, tasks = 3, 30
	l := startLoop(t, Options{Workers: workers, Debug: true})
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	wg.Add(tasks)
	onLoop(t, l, func() {
		for range tasks {
			f := Go(l, func(context.Context) (int, error) {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Millisecond) // hold the worker so others queue up
				running.Add(-1)
				return 1, nil
			})
			f.AddDoneCallback(func(*Future[int]) { wg.Done() })
		}
	})
	wg.Wait()
	if p := peak.Load(); p > workers {
		t.Fatalf("%d functions ran at once, Workers = %d", p, workers)
	}
}

func TestDebugSlowCallbackAndPanicLogged(t *testing.T) {
	var buf testutil.SyncBuffer
	l := startLoop(t, Options{
		Debug:        true,
		SlowCallback: 5 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&buf, nil)),
	})
	onLoop(t, l, func() {
		l.CallSoon(func() { time.Sleep(10 * time.Millisecond) }) // the slow callback itself
		l.CallSoon(func() { panic("kaboom") })
	})
	onLoop(t, l, func() {}) // the loop survived the panic
	out := buf.String()
	if !strings.Contains(out, "slow callback") {
		t.Errorf("no slow-callback warning in log:\n%s", out)
	}
	if !strings.Contains(out, "kaboom") {
		t.Errorf("panic not logged:\n%s", out)
	}
}

func TestGoAfterStop(t *testing.T) {
	l := New(Options{})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	l.Stop()
	testutil.Recv(t, l.Done(), "the loop to stop")
	f := Go(l, func(context.Context) (int, error) { t.Error("fn ran after Stop"); return 0, nil })
	if _, err := f.Result(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Result = %v, want ErrClosed", err)
	}
}
