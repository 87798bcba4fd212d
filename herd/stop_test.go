package herd

// Tests of the graceful stop as a client on a slow network sees it: every request the server
// read gets its reply, delivered, whatever the client's reading speed, until the grace period
// runs out; and then the server says what it could not deliver.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// pipeliner is a client that keeps up to window IAMATs unanswered, as a phone on a slow network
// pipelines them, and checks every reply at the socket: the k-th line must answer its k-th
// request. A slow one has a 2 KiB receive buffer and reads 2 KiB at most every readEvery.
type pipeliner struct {
	conn      *net.TCPConn
	id        string
	slow      bool
	window    int
	readEvery time.Duration

	tokens  chan struct{} // one per request that may be sent
	quit    chan struct{} // stop writing, and reading if holding
	hold    chan struct{} // closed: read nothing more (until quit)
	sent    atomic.Int64
	got     atomic.Int64 // replies read, each checked
	readErr error        // why reading ended (nil: a clean end of stream)
	bad     string       // the first reply that did not answer its request
	partial int          // bytes of an unfinished line at the end of the stream
	done    chan struct{}
}

// dialPipeliner connects a pipeliner that reads as fast as it can or, with readEvery > 0, a
// slow one, which sets SO_RCVBUF before connecting so that the window it advertises is small
// from the start.
func dialPipeliner(t *testing.T, addr net.Addr, id string, readEvery time.Duration, window int) *pipeliner {
	t.Helper()
	slow := readEvery > 0
	d := &net.Dialer{Timeout: testutil.Patience}
	if slow {
		d = testutil.SmallReceiveBuffer(2048)
	}
	nc, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeliner{
		conn: nc.(*net.TCPConn), id: id, slow: slow, window: window, readEvery: readEvery,
		tokens: make(chan struct{}, window), quit: make(chan struct{}), hold: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range window {
		p.tokens <- struct{}{}
	}
	t.Cleanup(func() { p.stop(); p.conn.Close() })
	go p.write()
	go p.read()
	return p
}

// request returns the k-th request (from 0): its time is k+1 seconds, so each is newer.
func (p *pipeliner) request(k int64) string {
	return fmt.Sprintf("IAMAT %s +1+1 %d\n", p.id, k+1)
}

// write sends requests in batches of up to 16 while the window allows, until quit or a write
// fails.
func (p *pipeliner) write() {
	var b []byte
	for {
		select {
		case <-p.tokens:
		case <-p.quit:
			return
		}
		n := int64(1)
	more:
		for n < 16 {
			select {
			case <-p.tokens:
				n++
			default:
				break more
			}
		}
		b = b[:0]
		for k := range n {
			b = append(b, p.request(p.sent.Load()+k)...)
		}
		if _, err := p.conn.Write(b); err != nil {
			return
		}
		p.sent.Add(n)
	}
}

// read reads to the end of the stream, checking each reply against its request.
func (p *pipeliner) read() {
	defer close(p.done)
	buf := make([]byte, 64<<10)
	if p.slow {
		buf = buf[:2048]
	}
	var line []byte
	for {
		n, err := p.conn.Read(buf)
		for _, c := range buf[:n] {
			if c != '\n' {
				line = append(line, c)
				continue
			}
			k := p.got.Load()
			if p.bad == "" && !answers(string(line), p.request(k)) {
				p.bad = fmt.Sprintf("reply %d %q to %q", k, line, p.request(k))
			}
			line = line[:0]
			p.got.Add(1)
			select {
			case p.tokens <- struct{}{}:
			default:
			}
		}
		if err != nil {
			if err != io.EOF {
				p.readErr = err
			}
			p.partial = len(line)
			return
		}
		if p.slow {
			time.Sleep(p.readEvery) // the client's pace, not a wait for the server
		}
		select {
		case <-p.hold:
			<-p.quit
			return
		default:
		}
	}
}

// answers reports whether reply is Hill's AT line for the IAMAT request req.
func answers(reply, req string) bool {
	f := strings.Fields(req)
	r := strings.Fields(reply)
	return len(r) == 6 && r[0] == "AT" && r[1] == "Hill" && r[3] == f[1] && r[4] == f[2] && r[5] == f[3]
}

func (p *pipeliner) stop() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
}

// wait waits for the end of the stream.
func (p *pipeliner) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no end of stream", p.id)
	}
}

// TestStopDeliversToSlowReaders: clients pipeline IAMATs, half of them reading slowly through
// a small receive buffer, when the server is told to stop. Every request the server read gets
// its reply, and every reply reaches its client, counted at the socket, followed by a clean
// end of stream: no reset destroys replies the slow readers have not read yet.
func TestStopDeliversToSlowReaders(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := runServer(t, cfg, "Hill")
	const conns, window = 10, 256
	ps := make([]*pipeliner, conns)
	for i := range ps {
		every := time.Duration(0)
		if i%2 == 1 {
			every = 20 * time.Millisecond
		}
		ps[i] = dialPipeliner(t, s.Addr(), "c"+strconv.Itoa(i), every, window)
	}
	testutil.WaitFor(t, "every client to be answered", func() bool {
		for _, p := range ps {
			if p.got.Load() < window {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	var delivered, slowOwed, slowGot int64
	for _, p := range ps {
		p.wait(t)
		p.stop()
		got := p.got.Load()
		delivered += got
		if p.slow {
			slowGot += got
		}
		if p.readErr != nil {
			t.Errorf("%s (slow %v): the stream ended with %v after %d replies", p.id, p.slow, p.readErr, got)
		}
		if p.bad != "" {
			t.Errorf("%s: %s", p.id, p.bad)
		}
		if p.partial > 0 {
			t.Errorf("%s: the stream ended in the middle of a reply (%d bytes of it)", p.id, p.partial)
		}
		if sent := p.sent.Load(); got > sent {
			t.Errorf("%s: %d replies to %d requests", p.id, got, sent)
		}
	}
	read := int64(s.Metrics().IAMATs.Load())
	slowOwed = slowGot + read - delivered
	t.Logf("the server read %d requests; %d replies delivered (slow readers: %d of %d)", read, delivered, slowGot, slowOwed)
	if delivered != read {
		t.Errorf("%d requests read, %d replies delivered", read, delivered)
	}
}

// TestStopNonReaderGraceOver: a client that never reads again holds the stop only until the
// grace period ends; then Shutdown reports what it could not deliver, and the log says so.
func TestStopNonReaderGraceOver(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	var log testutil.SyncBuffer
	s := runServer(t, cfg, "Hill", WithLogOutput(&log))
	const window = 2000
	p := dialPipeliner(t, s.Addr(), "mute", 20*time.Millisecond, window)
	testutil.WaitFor(t, "the client to be answered", func() bool { return p.got.Load() > 0 })
	close(p.hold) // it reads no more
	testutil.WaitFor(t, "its requests to be read", func() bool { return s.Metrics().IAMATs.Load() >= window })
	const grace = time.Second
	start := time.Now() // before the deadline is set, so took >= grace whatever the scheduler does
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := s.Shutdown(ctx)
	took := time.Since(start)
	var ue *UnsentError
	if !errors.As(err, &ue) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want an *UnsentError for the deadline", err)
	}
	if ue.Conns != 1 || ue.Bytes <= 0 {
		t.Errorf("Shutdown reports %d connections owed %d bytes, want 1 and some", ue.Conns, ue.Bytes)
	}
	if took < grace || took > grace+10*time.Second {
		t.Errorf("Shutdown took %v with a grace period of %v", took, grace)
	}
	want := fmt.Sprintf("msg=\"grace period over: replies not delivered\" server=Hill conns=1 bytes=%d", ue.Bytes)
	if !strings.Contains(log.String(), want) {
		t.Errorf("log has no %q:\n%s", want, log.String())
	}
}

// TestStopFastClientsDuringStop: while slow readers hold the stop, fast clients are served
// cleanly: those pipelining when it begins get every reply read and a clean end of stream;
// those that connect as it begins are refused, or answered in full, or (their request came
// after it began, and was not read) closed cleanly; those that connect once the listener is
// closed are refused. None is reset in the middle of a reply, and every request the server
// read is answered.
func TestStopFastClientsDuringStop(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := runServer(t, cfg, "Hill")
	const window = 256
	var ps []*pipeliner
	for i := range 6 {
		every := time.Duration(0)
		if i%2 == 1 {
			every = 50 * time.Millisecond
		}
		ps = append(ps, dialPipeliner(t, s.Addr(), "p"+strconv.Itoa(i), every, window))
	}
	testutil.WaitFor(t, "the pipelining clients to be answered", func() bool {
		for _, p := range ps {
			if p.got.Load() < window {
				return false
			}
		}
		return true
	})
	var refused, answered, unanswered, delivered atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	// oneShot dials, sends one IAMAT and reads to the end of the stream.
	oneShot := func(n int, mustRefuse bool) {
		defer wg.Done()
		nc, err := net.DialTimeout("tcp", s.Addr().String(), 10*time.Second)
		if err != nil {
			// Refused, or reset in the kernel's accept queue as the listener closed: either
			// way no request went out.
			if errors.Is(err, syscall.ECONNREFUSED) || !mustRefuse && errors.Is(err, syscall.ECONNRESET) {
				refused.Add(1)
				return
			}
			errs <- fmt.Errorf("client %d: dial: %v", n, err)
			return
		}
		defer nc.Close()
		if mustRefuse {
			errs <- fmt.Errorf("client %d: connected after the listener was closed", n)
			return
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		req := fmt.Sprintf("IAMAT once%d +1+1 1", n)
		if _, err := io.WriteString(nc, req+"\n"); err != nil {
			// The reset of a connection still in the accept queue as the listener closed can
			// come before the write as well as after it: the request never reached the server.
			if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
				refused.Add(1)
				return
			}
			errs <- fmt.Errorf("client %d: write: %v", n, err)
			return
		}
		b, err := io.ReadAll(nc)
		switch {
		case err != nil && len(b) > 0:
			errs <- fmt.Errorf("client %d: %v after %q", n, err, b)
		case err != nil && !testutil.IsReset(err):
			errs <- fmt.Errorf("client %d: %v", n, err)
		case err != nil:
			refused.Add(1) // reset before any reply, as the listener closed: counted below
		case len(b) == 0:
			unanswered.Add(1)
		case strings.Count(string(b), "\n") == 1 && answers(strings.TrimSuffix(string(b), "\n"), req):
			answered.Add(1)
			delivered.Add(1)
		default:
			errs <- fmt.Errorf("client %d: read %q", n, b)
		}
	}
	for n := range 40 {
		wg.Add(1)
		go oneShot(n, false)
	}
	stopped := testutil.GoStop(s.Shutdown, 60*time.Second)
	testutil.WaitFor(t, "the listener to close", func() bool { return testutil.Refused(s.Addr().String()) })
	for n := 40; n < 60; n++ {
		wg.Add(1)
		go oneShot(n, true)
	}
	wg.Wait()
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, p := range ps {
		p.wait(t)
		p.stop()
		if p.readErr != nil || p.bad != "" || p.partial > 0 {
			t.Errorf("%s: ended with %v, %q, %d bytes of an unfinished reply", p.id, p.readErr, p.bad, p.partial)
		}
		delivered.Add(p.got.Load())
	}
	if read := int64(s.Metrics().IAMATs.Load()); delivered.Load() != read {
		t.Errorf("%d requests read, %d replies delivered", read, delivered.Load())
	}
	t.Logf("one-shot clients: %d answered, %d refused, %d not read", answered.Load(), refused.Load(), unanswered.Load())
}
