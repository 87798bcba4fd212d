package reactor

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// TestCloseListeners: after CloseListeners new connections are refused and the port is free,
// open connections go on, and the loop stops cleanly afterwards.
func TestCloseListeners(t *testing.T) {
	tests := []struct {
		name   string
		onLoop bool
	}{
		{"from another goroutine", false},
		{"on the loop", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			l := New(Options{Debug: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			for range 2 {
				if err := l.Listen("127.0.0.1:0", func() Protocol { return &echo{} }); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			open := dialNet(t, l)
			r := bufio.NewReader(open)
			roundTrip := func(what string) {
				t.Helper()
				if _, err := open.Write([]byte(what + "\n")); err != nil {
					t.Fatal(err)
				}
				if got, err := r.ReadString('\n'); err != nil || got != what+"\n" {
					t.Fatalf("echo of %q: %q, %v", what, got, err)
				}
			}
			roundTrip("before")

			if tc.onLoop {
				var err error
				onLoop(t, l, func() { err = l.CloseListeners() })
				if err != nil {
					t.Fatal(err)
				}
			} else if err := l.CloseListeners(); err != nil {
				t.Fatal(err)
			}
			if err := l.CloseListeners(); err != nil {
				t.Fatalf("second CloseListeners: %v", err)
			}

			roundTrip("after")
			for _, a := range l.Addrs() {
				if c, err := net.Dial("tcp", a.String()); err == nil {
					c.Close()
					t.Fatalf("dial %s after CloseListeners succeeded", a)
				} else if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("dial %s after CloseListeners: %v, want connection refused", a, err)
				}
				ln, err := net.Listen("tcp", a.String())
				if err != nil {
					t.Fatalf("port not free after CloseListeners: %v", err)
				}
				ln.Close()
			}
			roundTrip("still")

			l.Stop()
			if err := l.Wait(); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if s := logs.String(); s != "" {
				t.Fatalf("the loop logged:\n%s", s)
			}
			if err := l.CloseListeners(); !errors.Is(err, ErrClosed) {
				t.Fatalf("CloseListeners after Stop: %v, want ErrClosed", err)
			}
		})
	}
}
