package reactor

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// badLineProto answers its first line with "? <line>" and closes, as a server does after a
// protocol error. It sends its transport on made, if not nil, and its ConnectionLost error on
// lost.
func badLineProto(made chan<- *Transport, lost chan<- error) ProtocolFactory {
	return func() Protocol {
		var tr *Transport
		done := false
		return &funcProto{
			made: func(t *Transport) {
				tr = t
				if made != nil {
					made <- t
				}
			},
			data: func(p []byte) {
				if done {
					return
				}
				if i := bytes.IndexByte(p, '\n'); i >= 0 {
					done = true
					tr.Write(append([]byte("? "), p[:i+1]...))
					tr.Close()
				}
			},
			lost: func(err error) { lost <- err },
		}
	}
}

// TestCloseLingers: a client that sends a bad line and then 1 MB more before reading gets the
// reply and a clean end of stream, not a reset that discards the reply.
func TestCloseLingers(t *testing.T) {
	lost := make(chan error, 16)
	// The linger ends by bytes or by the peer's close: its timeout is on a clock that stands
	// still, so no slow machine can end it before the client reads.
	clock := NewFakeClock(time.Unix(1e9, 0))
	l := startLoop(t, Options{Debug: true, Clock: clock}, badLineProto(nil, lost))
	more := bytes.Repeat([]byte("IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"), 1<<20/54)
	for i := range 5 {
		nc := dialNet(t, l)
		if _, err := nc.Write([]byte("bad line\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(more); err != nil {
			t.Fatalf("round %d: writing after the bad line: %v", i, err)
		}
		got, err := io.ReadAll(nc)
		if err != nil || string(got) != "? bad line\n" {
			t.Fatalf("round %d: client read %q, %v; want %q and EOF", i, got, err, "? bad line\n")
		}
		if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
			t.Fatalf("round %d: ConnectionLost(%v)", i, err)
		}
		nc.Close()
	}
}

// TestLingerBounded: a client that goes on sending after the server's Close is cut off once
// the linger ends, and only then: by time (LingerTimeout on the loop's clock, which moves only
// when the test advances it), by bytes (more than LingerBytes read), or at once with lingering
// off. In each case the other bound is out of reach, so only the one under test can end it.
// ConnectionLost runs when the write side is shut, before the linger ends.
func TestLingerBounded(t *testing.T) {
	const unreachable = 1 << 40
	tests := []struct {
		name    string
		opts    Options
		advance bool // move the clock to LingerTimeout once ConnectionLost has run
	}{
		{"timeout", Options{LingerTimeout: time.Second, LingerBytes: unreachable}, true},
		{"bytes", Options{LingerTimeout: time.Second, LingerBytes: 256 << 10}, false},
		{"off", Options{LingerTimeout: -1, LingerBytes: unreachable}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			made := make(chan *Transport, 1)
			lost := make(chan error, 1)
			clock := NewFakeClock(time.Unix(1e9, 0))
			tc.opts.Debug, tc.opts.Clock = true, clock
			l := startLoop(t, tc.opts, badLineProto(made, lost))
			nc := dialNet(t, l)
			tr := testutil.Recv(t, made, "ConnectionMade")
			if _, err := nc.Write([]byte("bad line\n")); err != nil {
				t.Fatal(err)
			}
			if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
				t.Fatalf("ConnectionLost(%v)", err)
			}
			socketOpen := func() (open bool) {
				onLoop(t, l, func() { open = tr.c != nil })
				return open
			}
			if tc.advance {
				clock.Advance(tc.opts.LingerTimeout - time.Nanosecond)
				settle(t, l)
				if !socketOpen() {
					t.Fatal("the linger ended before LingerTimeout")
				}
				clock.Advance(time.Nanosecond)
			}
			chunk := make([]byte, 16<<10)
			sent := 0
			deadline := time.Now().Add(10 * time.Second)
			for {
				if time.Now().After(deadline) {
					t.Fatalf("the server still reads after the linger should have ended (%d bytes sent)", sent)
				}
				n, err := nc.Write(chunk)
				sent += n
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the server stopped reading but kept the socket open (%d bytes sent)", sent)
				}
				if err != nil {
					break // reset: the server closed the socket
				}
			}
			testutil.WaitFor(t, "the socket to close", func() bool { return !socketOpen() })
			var read int
			onLoop(t, l, func() { read = tr.lingerRead })
			// Each read takes at most the loop's read buffer (64 KiB) at once.
			if tc.name == "bytes" && (read <= tc.opts.LingerBytes || read > tc.opts.LingerBytes+64<<10) {
				t.Fatalf("the linger ended after reading %d bytes, want just over LingerBytes (%d)", read, tc.opts.LingerBytes)
			}
		})
	}
}

// TestWriteEOF: after WriteEOF the peer reads end-of-file, later writes are dropped, and the
// transport still receives until the peer closes.
func TestWriteEOF(t *testing.T) {
	got := make(chan string, 4)
	lost := make(chan error, 1)
	eof := make(chan struct{}, 1)
	l := startLoop(t, Options{Debug: true}, func() Protocol {
		var tr *Transport
		return &funcProto{
			made: func(t *Transport) {
				tr = t
				t.Write(pattern(1 << 20)) // more than the kernel takes at once
				t.WriteEOF()
				t.WriteEOF()
				t.Write([]byte("dropped"))
			},
			data: func(p []byte) { got <- string(p); tr.Write([]byte("dropped")) },
			eof:  func() bool { eof <- struct{}{}; return true },
			lost: func(err error) { lost <- err },
		}
	})
	nc := dialNet(t, l)
	b, err := io.ReadAll(nc)
	if err != nil || !bytes.Equal(b, pattern(1<<20)) {
		t.Fatalf("client read %d bytes (%v); want the 1 MiB pattern, then EOF", len(b), err)
	}
	if _, err := nc.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if s := testutil.Recv(t, got, "DataReceived"); s != "ping\n" {
		t.Fatalf("server got %q", s)
	}
	if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	testutil.Recv(t, eof, "EOFReceived")
	if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
		t.Fatalf("ConnectionLost(%v)", err)
	}
}

// TestStopDuringDial: stopping the loop while connections made by Dial are being handed to
// gnet leaves none of gnet's goroutines waiting for the loop.
func TestStopDuringDial(t *testing.T) {
	ln := testutil.Listen(t)
	testutil.Serve(t, ln, nil)
	for range 10 {
		l := New(Options{Debug: true})
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		_ = l.CallSoonThreadsafe(func() {
			for range 20 {
				l.Dial(ln.Addr().String(), func() Protocol { return &funcProto{} }, time.Second, nil)
			}
			l.CallLater(time.Duration(rand.IntN(1000))*time.Microsecond, l.Stop)
		})
		testutil.Recv(t, l.Done(), "Stop to finish")
	}
	testutil.WaitFor(t, "gnet's enrolling goroutines to return", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*eventloop).enroll")
	})
}
