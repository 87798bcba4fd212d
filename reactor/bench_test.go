package reactor

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

func BenchmarkCallSoonThreadsafeRoundTrip(b *testing.B) {
	l := startLoop(b, Options{})
	ch := make(chan struct{})
	fn := func() { ch <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		if err := l.CallSoonThreadsafe(fn); err != nil {
			b.Fatal(err)
		}
		<-ch
	}
}

// benchBatches measures callbacks run per second on the loop; one op is a batch of 1000,
// which schedule(i, cb) schedules from the loop and whose last callback ends the op.
func benchBatches(b *testing.B, unit string, schedule func(l *Loop, i int, cb func())) {
	const batch = 1000
	l := startLoop(b, Options{})
	done := make(chan struct{})
	n := 0
	cb := func() {
		n++
		if n == batch {
			done <- struct{}{}
		}
	}
	start := func() {
		n = 0
		for i := range batch {
			schedule(l, i, cb)
		}
	}
	b.ReportAllocs()
	t0 := time.Now()
	iters := 0
	for b.Loop() {
		_ = l.CallSoonThreadsafe(start)
		<-done
		iters++
	}
	b.ReportMetric(float64(iters*batch)/time.Since(t0).Seconds(), unit)
}

// BenchmarkCallSoon measures callbacks run per second on the loop; one op is a batch of 1000.
func BenchmarkCallSoon(b *testing.B) {
	benchBatches(b, "callbacks/s", func(l *Loop, _ int, cb func()) { l.CallSoon(cb) })
}

// BenchmarkCallSoonFunc is BenchmarkCallSoon with CallSoonFunc (no Handle).
func BenchmarkCallSoonFunc(b *testing.B) {
	benchBatches(b, "callbacks/s", func(l *Loop, _ int, cb func()) { l.CallSoonFunc(cb) })
}

// BenchmarkCallLater measures timers scheduled and fired per second; one op is 1000 timers with
// deadlines spread over 100 µs.
func BenchmarkCallLater(b *testing.B) {
	benchBatches(b, "timers/s", func(l *Loop, i int, cb func()) {
		l.CallLater(time.Duration(i%100)*time.Microsecond, cb)
	})
}

// netEcho is the baseline: the same echo with net and one goroutine per connection, until
// the benchmark ends.
func netEcho(b *testing.B) (addr string) {
	ln := testutil.Listen(b)
	testutil.Serve(b, ln, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// echoClients drives conns connections in rounds: in each op every connection sends one line
// and reads the reply. It reports requests per second.
func echoClients(b *testing.B, addr string, conns int) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\n")
	type client struct {
		c   net.Conn
		r   *bufio.Reader
		go_ chan struct{}
	}
	var wg sync.WaitGroup
	cs := make([]*client, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = &client{c: c, r: bufio.NewReader(c), go_: make(chan struct{}, 1)}
	}
	errs := make(chan error, conns)
	var quit sync.WaitGroup
	for _, cl := range cs {
		quit.Go(func() {
			for range cl.go_ {
				if _, err := cl.c.Write(line); err != nil {
					errs <- err
				} else if _, err := cl.r.ReadSlice('\n'); err != nil {
					errs <- err
				}
				wg.Done()
			}
		})
	}
	b.ReportAllocs()
	t0 := time.Now()
	rounds := 0
	for b.Loop() {
		wg.Add(conns)
		for _, cl := range cs {
			cl.go_ <- struct{}{}
		}
		wg.Wait()
		rounds++
	}
	b.ReportMetric(float64(rounds*conns)/time.Since(t0).Seconds(), "req/s")
	b.StopTimer()
	for _, cl := range cs {
		close(cl.go_)
		cl.c.Close()
	}
	quit.Wait()
	select {
	case err := <-errs:
		if err != io.EOF {
			b.Fatal(err)
		}
	default:
	}
}

// BenchmarkEcho compares the reactor with net and a goroutine per connection. The clients run
// in the same process: with many connections they compete with the loop's single goroutine
// for the scheduler, which penalises the reactor; bench/ measures with a separate load
// generator.
func BenchmarkEcho(b *testing.B) {
	for _, conns := range []int{1, 64, 1000} {
		b.Run(fmt.Sprintf("reactor/conns=%d", conns), func(b *testing.B) {
			l := startLoop(b, Options{}, func() Protocol { return &echo{} })
			echoClients(b, l.Addrs()[0].String(), conns)
		})
		b.Run(fmt.Sprintf("net/conns=%d", conns), func(b *testing.B) {
			echoClients(b, netEcho(b), conns)
		})
	}
}

// BenchmarkOnLoop measures OnLoop, which reads the goroutine id from runtime.Stack.
func BenchmarkOnLoop(b *testing.B) {
	l := startLoop(b, Options{})
	b.ReportAllocs()
	for b.Loop() {
		if l.OnLoop() {
			b.Fatal("OnLoop true off the loop")
		}
	}
}

// BenchmarkAccept measures the accept path: bursts of 1,000 connections made at once, from 4
// goroutines, each timed until the loop has made every one (ConnectionMade), then closed.
// conns/s is the rate at which a burst reaches the loop.
func BenchmarkAccept(b *testing.B) {
	const burst, dialers = 1000, 4
	var made atomic.Int64
	l := startLoop(b, Options{}, func() Protocol {
		return &funcProto{made: func(*Transport) { made.Add(1) }}
	})
	addr := l.Addrs()[0].String()
	b.ReportAllocs()
	total := time.Duration(0)
	for b.Loop() {
		made.Store(0)
		conns := make([]net.Conn, burst)
		t0 := time.Now()
		var wg sync.WaitGroup
		for d := range dialers {
			wg.Go(func() {
				for i := d; i < burst; i += dialers {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					conns[i] = c
				}
			})
		}
		wg.Wait()
		for made.Load() < burst {
			time.Sleep(50 * time.Microsecond)
		}
		total += time.Since(t0)
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	b.ReportMetric(float64(b.N*burst)/total.Seconds(), "conns/s")
}
