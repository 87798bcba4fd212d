package reactor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herd-project/herd/internal/testutil"
)

// pattern returns n bytes (n <= 8 MiB) that reveal loss or reordering: each 4-byte word holds
// its own offset.
func pattern(n int) []byte { return patternBytes()[:n] }

var patternBytes = sync.OnceValue(func() []byte {
	b := make([]byte, 8<<20)
	for i := 0; i < len(b); i += 4 {
		binary.BigEndian.PutUint32(b[i:], uint32(i))
	}
	return b
})

// funcProto is a Protocol made of optional funcs.
type funcProto struct {
	made   func(t *Transport)
	data   func(p []byte)
	eof    func() bool
	lost   func(err error)
	pause  func()
	resume func()
}

func (f *funcProto) ConnectionMade(t *Transport) {
	if f.made != nil {
		f.made(t)
	}
}
func (f *funcProto) DataReceived(p []byte) {
	if f.data != nil {
		f.data(p)
	}
}
func (f *funcProto) EOFReceived() bool {
	if f.eof != nil {
		return f.eof()
	}
	return false
}
func (f *funcProto) ConnectionLost(err error) {
	if f.lost != nil {
		f.lost(err)
	}
}

type flowProto struct{ funcProto }

func (f *flowProto) PauseWriting()  { f.pause() }
func (f *flowProto) ResumeWriting() { f.resume() }

func dialNet(t *testing.T, l *Loop) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc
}

func TestFlowControlPauseResumeOnce(t *testing.T) {
	var pauses, resumes, written atomic.Int64
	lost := make(chan error, 1)
	chunk := make([]byte, 64<<10)
	l := startLoopWith(t, Options{Debug: true}, func(l *Loop) []ProtocolFactory {
		return []ProtocolFactory{func() Protocol {
			p := &flowProto{}
			var tr *Transport
			paused := false
			p.made = func(t *Transport) {
				tr = t
				var pump func()
				pump = func() { // write until paused, once
					for !paused {
						tr.Write(chunk)
						written.Add(int64(len(chunk)))
					}
				}
				l.CallSoon(pump)
			}
			p.pause = func() {
				paused = true
				pauses.Add(1)
				if n := tr.WriteBufferSize(); n <= 64<<10 {
					t.Errorf("PauseWriting with %d bytes queued, at or below the high-water mark", n)
				}
			}
			p.resume = func() {
				resumes.Add(1)
				if n := tr.WriteBufferSize(); n > 16<<10 {
					t.Errorf("ResumeWriting with %d bytes queued, above the low-water mark", n)
				}
				tr.Close()
			}
			p.lost = func(err error) { lost <- err }
			return p
		}}
	})
	nc := dialNet(t, l)
	testutil.WaitFor(t, "PauseWriting", func() bool { return pauses.Load() == 1 })
	n, err := io.Copy(io.Discard, nc) // reading again drains the buffer: ResumeWriting, then Close
	if err != nil {
		t.Fatal(err)
	}
	if n != written.Load() {
		t.Fatalf("read %d bytes, server wrote %d", n, written.Load())
	}
	if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
		t.Fatalf("ConnectionLost(%v)", err)
	}
	if p, r := pauses.Load(), resumes.Load(); p != 1 || r != 1 {
		t.Fatalf("PauseWriting x%d, ResumeWriting x%d; want 1 each", p, r)
	}
}

func TestConnectionLoss(t *testing.T) {
	big := pattern(8 << 20)
	tests := []struct {
		name string
		made func(t *Transport)      // server side
		peer func(nc *net.TCPConn)   // client side
		want func(got []byte) string // check on what the client read
		err  bool                    // ConnectionLost error expected
	}{
		{
			name: "peer closes",
			peer: func(nc *net.TCPConn) { nc.Write([]byte("bye")); nc.Close() },
		},
		{
			name: "peer resets",
			peer: func(nc *net.TCPConn) { nc.SetLinger(0); nc.Close() },
			err:  true,
		},
		{
			name: "close after 8 MB",
			made: func(t *Transport) { t.Write(big); t.Close(); t.Write([]byte("dropped")) },
			want: func(got []byte) string {
				if !bytes.Equal(got, big) {
					return "client did not get the 8 MB intact"
				}
				return ""
			},
		},
		{
			name: "abort",
			made: func(t *Transport) { t.Write(big); t.Abort(); t.Abort() },
			want: func(got []byte) string {
				if len(got) > len(big) || !bytes.Equal(got, big[:len(got)]) {
					return "client got bytes that were not sent"
				}
				return ""
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lost := make(chan error, 2)
			l := startLoop(t, Options{Debug: true}, func() Protocol {
				return &funcProto{made: tc.made, lost: func(err error) { lost <- err }}
			})
			nc := dialNet(t, l).(*net.TCPConn)
			if tc.peer != nil {
				tc.peer(nc)
			} else {
				got, _ := io.ReadAll(nc) // an abort may end in a reset
				if msg := tc.want(got); msg != "" {
					t.Fatal(msg)
				}
			}
			err := testutil.Recv(t, lost, "ConnectionLost")
			if (err != nil) != tc.err {
				t.Fatalf("ConnectionLost(%v), want error: %v", err, tc.err)
			}
			onLoop(t, l, func() {}) // a second ConnectionLost would be queued by now
			if len(lost) != 0 {
				t.Fatal("ConnectionLost ran twice")
			}
		})
	}
}

func TestHalfClose(t *testing.T) {
	for _, size := range []int{100, 8 << 20} { // direct write; the writer goroutine
		answer := pattern(size)
		closed := make(chan struct{})
		lost := make(chan error, 1)
		l := startLoopWith(t, Options{Debug: true}, func(l *Loop) []ProtocolFactory {
			return []ProtocolFactory{func() Protocol {
				var tr *Transport
				var req bytes.Buffer
				return &funcProto{
					made: func(t *Transport) { tr = t },
					data: func(p []byte) { req.Write(p) },
					eof: func() bool {
						if req.String() != "request" {
							t.Errorf("server read %q, want %q", req.String(), "request")
						}
						l.CallSoonFunc(func() { // once detached
							tr.Write(answer[:size/2])
							tr.Writev([][]byte{answer[size/2:]})
							tr.Close()
							close(closed)
						})
						return true
					},
					lost: func(err error) { lost <- err },
				}
			}}
		})
		nc := dialNet(t, l).(*net.TCPConn)
		if _, err := nc.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if err := nc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		testutil.Recv(t, closed, "the answer written") // before the client reads: 8 MiB overflows the kernel
		got, err := io.ReadAll(nc)                     // the full answer, then EOF
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, answer) {
			t.Fatalf("size %d: got %d bytes, want the %d-byte answer", size, len(got), len(answer))
		}
		if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
			t.Fatalf("size %d: ConnectionLost(%v)", size, err)
		}
		var used int
		onLoop(t, l, func() { used = l.dbg.writers })
		if (size > 1<<20) != (used == 1) {
			t.Errorf("size %d: %d writer goroutines started", size, used)
		}
	}
}

func TestDialRefused(t *testing.T) {
	addr := testutil.FreeAddr(t)
	l := startLoop(t, Options{Debug: true})
	errc := make(chan error, 1)
	l.Dial(addr, func() Protocol { t.Error("connected to a closed port"); return &echo{} }, time.Second, func(err error) {
		if !l.OnLoop() {
			t.Error("onError off the loop")
		}
		errc <- err
	})
	if err := testutil.Recv(t, errc, "the dial error"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want ECONNREFUSED", err)
	}
}

// fullListener returns the address of a loopback listener that never accepts and whose accept
// queue (backlog 0) is already full, so the kernel drops further SYNs and a connect hangs.
// That is the loopback way to get an address that never answers.
func fullListener(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for range 16 {
		nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // full
		}
		t.Cleanup(func() { nc.Close() })
	}
	t.Skip("could not fill the accept queue of a loopback listener")
	return ""
}

func TestDialTimeout(t *testing.T) {
	addr := fullListener(t)
	l := startLoop(t, Options{Debug: true})
	errc := make(chan error, 1)
	const timeout = 200 * time.Millisecond
	start := time.Now()
	l.Dial(addr, func() Protocol { return &echo{} }, timeout, func(err error) { errc <- err })
	select {
	case err := <-errc:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("timed out after %v, before the %v timeout", d, timeout)
		}
	case <-time.After(timeout + 10*time.Second):
		t.Fatal("no timeout error")
	}
}

func TestStopTearsDown(t *testing.T) {
	defer testutil.VerifyNone(t, goleak.IgnoreCurrent())
	var lostCount atomic.Int64
	fnDone := make(chan struct{})
	l := New(Options{Debug: true})
	mk := func() Protocol {
		return &funcProto{lost: func(err error) {
			if err != nil {
				t.Errorf("ConnectionLost(%v) at stop", err)
			}
			lostCount.Add(1)
		}}
	}
	if err := l.Listen("127.0.0.1:0", mk); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	made := make(chan struct{})
	l.Dial(l.Addrs()[0].String(), func() Protocol {
		p := mk().(*funcProto)
		p.made = func(*Transport) { close(made) }
		return p
	}, time.Second, func(err error) { t.Error(err) })
	testutil.Recv(t, made, "ConnectionMade of the dialled connection")
	timerFired := false
	onLoop(t, l, func() {
		l.CallLater(time.Hour, func() { timerFired = true })
		f := Go(l, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			close(fnDone)
			return 0, ctx.Err()
		})
		f.AddDoneCallback(func(*Future[int]) {})
	})
	testutil.WaitFor(t, "three transports", func() bool {
		n := 0
		onLoop(t, l, func() { n = len(l.conns) })
		return n == 3
	})
	go l.Stop()
	testutil.Recv(t, l.Done(), "Stop to finish")
	testutil.Recv(t, fnDone, "the Go function's return")
	if n := lostCount.Load(); n != 3 {
		t.Fatalf("ConnectionLost ran %d times, want 3", n)
	}
	if timerFired {
		t.Fatal("a pending timer fired during stop")
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("client connection still open after Stop")
	}
}

func TestHalfCloseWithUnsentBytes(t *testing.T) {
	lost := make(chan error, 1)
	wrote := make(chan struct{})
	l := startLoop(t, Options{Debug: true}, func() Protocol {
		return &funcProto{
			made: func(t *Transport) { t.Write(pattern(8 << 20)); close(wrote) }, // more than the kernel takes
			eof:  func() bool { return true },
			lost: func(err error) { lost <- err },
		}
	})
	nc := dialNet(t, l).(*net.TCPConn)
	testutil.Recv(t, wrote, "the 8 MiB written")
	if err := nc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := testutil.Recv(t, lost, "ConnectionLost"); !errors.Is(err, ErrUnsent) {
		t.Fatalf("ConnectionLost(%v), want ErrUnsent", err)
	}
}

func TestLoopsInParallel(t *testing.T) {
	const n = 3
	loops := make([]*Loop, n)
	var wg sync.WaitGroup
	for i := range loops {
		loops[i] = New(Options{})
		if err := loops[i].Listen("127.0.0.1:0", func() Protocol { return &echo{} }); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := loops[i].Start(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Each loop dials the next one's listener and gets an echo back.
	got := make(chan string, n)
	for i, l := range loops {
		next := loops[(i+1)%n].Addrs()[0].String()
		l.Dial(next, func() Protocol {
			return &funcProto{
				made: func(t *Transport) { t.Write([]byte("ping")) },
				data: func(p []byte) { got <- string(p) },
			}
		}, time.Second, func(err error) { t.Error(err) })
	}
	for range n {
		if s := testutil.Recv(t, got, "the echo"); s != "ping" {
			t.Fatalf("got %q", s)
		}
	}
	for _, l := range loops {
		wg.Go(l.Stop)
	}
	wg.Wait()
	for _, l := range loops {
		testutil.Recv(t, l.Done(), "the loop to stop")
	}
}

func TestClosePaths(t *testing.T) {
	tests := []struct {
		name    string
		proto   func(l *Loop) *funcProto
		send    bool   // client sends a line first
		want    string // what the client reads before EOF
		wantErr bool
	}{
		{
			name: "close in ConnectionMade",
			proto: func(*Loop) *funcProto {
				return &funcProto{made: func(t *Transport) { t.Write([]byte("hi")); t.Close() }}
			},
			want: "hi",
		},
		{
			name: "abort from a timer",
			proto: func(l *Loop) *funcProto {
				return &funcProto{made: func(t *Transport) { l.CallLater(time.Millisecond, t.Abort) }}
			},
		},
		{
			name: "close from DataReceived",
			proto: func(*Loop) *funcProto {
				var tr *Transport
				return &funcProto{
					made: func(t *Transport) { tr = t },
					data: func([]byte) { tr.Write([]byte("bye")); tr.Close(); tr.Close() },
				}
			},
			send: true,
			want: "bye",
		},
		{
			name: "panic in DataReceived",
			proto: func(*Loop) *funcProto {
				return &funcProto{data: func([]byte) { panic("protocol bug") }}
			},
			send:    true,
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lost := make(chan error, 2)
			l := startLoopWith(t, Options{Debug: true}, func(l *Loop) []ProtocolFactory {
				return []ProtocolFactory{func() Protocol {
					p := tc.proto(l)
					p.lost = func(err error) { lost <- err }
					return p
				}}
			})
			nc := dialNet(t, l)
			if tc.send {
				if _, err := nc.Write([]byte("line\n")); err != nil {
					t.Fatal(err)
				}
			}
			got, err := io.ReadAll(nc)
			if err != nil || string(got) != tc.want {
				t.Fatalf("client read %q, %v; want %q", got, err, tc.want)
			}
			err = testutil.Recv(t, lost, "ConnectionLost")
			if (err != nil) != tc.wantErr {
				t.Fatalf("ConnectionLost(%v), want error: %v", err, tc.wantErr)
			}
			onLoop(t, l, func() {})
			if len(lost) != 0 {
				t.Fatal("ConnectionLost ran twice")
			}
		})
	}
}

func TestDialBeforeStart(t *testing.T) {
	l := New(Options{Debug: true})
	if err := l.Listen("127.0.0.1:0", func() Protocol { return &echo{} }); err != nil {
		t.Fatal(err)
	}
	made := make(chan struct{})
	// Addrs is empty before Start, so the target is a plain net listener.
	ln := testutil.Listen(t)
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	l.Dial(ln.Addr().String(), func() Protocol {
		return &funcProto{made: func(t *Transport) { close(made) }}
	}, time.Second, func(err error) { t.Error(err) })
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { l.Stop(); testutil.Recv(t, l.Done(), "the loop to stop") }()
	testutil.Recv(t, made, "the Dial made before Start to connect")
}
