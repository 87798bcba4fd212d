package reactor

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// dialSlow connects to l's first listener with a 2 KiB receive buffer (set before connecting,
// so the window it advertises is small from the start): a peer on a slow network.
func dialSlow(t *testing.T, l *Loop) *net.TCPConn {
	t.Helper()
	nc, err := testutil.SmallReceiveBuffer(2048).Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc.(*net.TCPConn)
}

// replyOnGo writes size bytes of the pattern and closes once it reads "go\n", as a server
// writes its last replies when it stops; what follows is the peer's and is discarded.
func replyOnGo(size int, made chan<- *Transport, lost chan<- error) ProtocolFactory {
	return func() Protocol {
		var tr *Transport
		var in []byte
		return &funcProto{
			made: func(t *Transport) { tr = t; made <- t },
			data: func(p []byte) {
				in = append(in, p...)
				if bytes.HasPrefix(in, []byte("go\n")) {
					tr.Write(pattern(size))
					tr.Close()
				}
			},
			lost: func(err error) { lost <- err },
		}
	}
}

// TestShutdownWaitsForSlowPeer: while the loop shuts down, a closed transport whose peer reads
// slowly, and goes on sending, is not closed when its linger ends (by time, by bytes, or at
// once with lingering off): it drains, and the loop stops only once the peer has read every
// byte, which it gets whole, with a clean end of stream.
func TestShutdownWaitsForSlowPeer(t *testing.T) {
	const size = 48 << 10
	tests := []struct {
		name    string
		opts    Options
		advance bool // move the clock past LingerTimeout
		junk    int  // bytes the peer sends after "go"
	}{
		{"timeout", Options{LingerTimeout: time.Second, LingerBytes: 1 << 40}, true, 4 << 10},
		{"bytes", Options{LingerTimeout: time.Second, LingerBytes: 16 << 10}, false, 64 << 10},
		{"off", Options{LingerTimeout: -1}, false, 4 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewFakeClock(time.Unix(1e9, 0))
			tc.opts.Debug, tc.opts.Clock = true, clock
			made := make(chan *Transport, 1)
			lost := make(chan error, 1)
			l := startLoop(t, tc.opts, replyOnGo(size, made, lost))
			nc := dialSlow(t, l)
			tr := testutil.Recv(t, made, "ConnectionMade")
			l.Shutdown()
			settle(t, l)
			if _, err := nc.Write([]byte("go\n")); err != nil {
				t.Fatal(err)
			}
			if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
				t.Fatalf("ConnectionLost(%v)", err)
			}
			if _, err := nc.Write(make([]byte, tc.junk)); err != nil {
				t.Fatalf("the server closed the socket at once: %v", err)
			}
			if tc.advance {
				clock.Advance(tc.opts.LingerTimeout)
			}
			var st tstate
			var open bool
			testutil.WaitFor(t, "the transport to drain", func() bool {
				onLoop(t, l, func() { st, open = tr.state, tr.c != nil })
				return st == stDraining || !open
			})
			if !open {
				t.Fatal("the socket was closed before the peer had read the replies")
			}
			select {
			case <-l.Done():
				t.Fatal("the loop stopped before the peer had read the replies")
			default:
			}
			got, err := io.ReadAll(nc)
			if err != nil || !bytes.Equal(got, pattern(size)) {
				t.Fatalf("the peer read %d bytes, %v; want the %d written and a clean end of stream", len(got), err, size)
			}
			testutil.Recv(t, l.Done(), "the loop to stop once the peer had read everything")
		})
	}
}

// TestShutdownUnsentThenStop: a peer that never reads holds a shutting-down loop until Stop;
// Unsent says meanwhile how many bytes it is owed, and Stop ends the wait.
func TestShutdownUnsentThenStop(t *testing.T) {
	const size = 256 << 10
	made := make(chan *Transport, 1)
	lost := make(chan error, 1)
	l := startLoop(t, Options{Debug: true}, replyOnGo(size, made, lost))
	nc := dialSlow(t, l)
	tr := testutil.Recv(t, made, "ConnectionMade")
	l.Shutdown()
	if _, err := nc.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	var owed map[uint64]int
	testutil.WaitFor(t, "the bytes to be written", func() bool {
		onLoop(t, l, func() { owed = l.Unsent() })
		return owed[tr.ID()] > 0
	})
	// What the peer's kernel took is no longer owed; the rest is, whether gnet or the kernel
	// holds it.
	if n := owed[tr.ID()]; n > size || len(owed) != 1 {
		t.Fatalf("Unsent = %v, want only transport %d, owed at most %d bytes", owed, tr.ID(), size)
	}
	select {
	case <-l.Done():
		t.Fatal("the loop stopped with bytes owed")
	default:
	}
	l.Stop()
	testutil.Recv(t, l.Done(), "Stop to end the shutdown")
}

// TestShutdownIdleLoopStops: a loop with nothing to wait for stops at once on Shutdown, and one
// that has not started stops too.
func TestShutdownIdleLoopStops(t *testing.T) {
	l := startLoop(t, Options{Debug: true}, func() Protocol { return &funcProto{} })
	l.Shutdown()
	testutil.Recv(t, l.Done(), "an idle loop to stop on Shutdown")
	n := New(Options{})
	n.Shutdown()
	select {
	case <-n.Done():
	default:
		t.Fatal("Shutdown before Start did not stop the loop")
	}
}
