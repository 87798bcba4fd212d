package testutil

import (
	"context"
	"testing"
	"time"
)

// Patience is how long a helper waits for what a test expects to happen before it fails the
// test.
const Patience = 20 * time.Second

// WaitFor polls cond until it returns true, failing t with "timed out waiting for what" once
// Patience has passed (see Eventually). Call it from the test's goroutine.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Eventually polls cond until it returns true and reports whether it did before Patience
// passed. It polls quickly at first (a millisecond) and backs off to every 20 ms, so that a
// cheap condition is seen at once and a costly one (a round trip to a server) does not load
// the machine. Any goroutine.
func Eventually(cond func() bool) bool {
	deadline := time.Now().Add(Patience)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	return true
}

// Recv receives a value from ch, failing t with "timed out waiting for what" if none comes
// within Patience. Call it from the test's goroutine.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(Patience)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// Stop calls stop (a Shutdown or Close that takes a context) with a context that ends after
// Patience, and reports an error it returns with t.Errorf. Call it from the test's goroutine
// or a cleanup.
func Stop(t testing.TB, stop func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// GoStop calls stop on a goroutine of its own with a context that ends after d, and returns
// a channel that receives what it returns: for a test that watches a server while it stops.
func GoStop(stop func(context.Context) error, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done <- stop(ctx)
	}()
	return done
}
