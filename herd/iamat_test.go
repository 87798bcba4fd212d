package herd

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// fakeTransport stands in for a reactor transport in tests that drive a connection directly.
type fakeTransport struct {
	out    strings.Builder
	closed bool
	abort  bool
	n      int
}

func (f *fakeTransport) Write(p []byte)       { f.n += len(p); f.out.Write(p) }
func (f *fakeTransport) Close()               { f.closed = true }
func (f *fakeTransport) Abort()               { f.abort = true }
func (f *fakeTransport) WriteBufferSize() int { return 0 }
func (f *fakeTransport) ID() uint64           { return 1 }
func (f *fakeTransport) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

// discardTransport counts bytes only (benchmarks).
type discardTransport struct{ fakeTransport }

func (f *discardTransport) Write(p []byte) { f.n += len(p) }

// newDirectServer is a server that is never started: its connections are driven by the test.
func newDirectServer(t testing.TB) *Server {
	t.Helper()
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s, err := NewServer(cfg, "Hill", WithProvider(stubProvider{}), hillClock)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// feedSplit gives stream to a client of a new direct server in two reads, cut at cut, and
// returns the server and the client's transport.
func feedSplit(t *testing.T, stream string, cut int) (*Server, *fakeTransport) {
	t.Helper()
	s := newDirectServer(t)
	ft := &fakeTransport{}
	c := s.newClient()
	c.attach(ft)
	c.DataReceived([]byte(stream[:cut]))
	c.DataReceived([]byte(stream[cut:]))
	return s, ft
}

// Every cut of a stream into two reads gives the same replies and the same close.
func TestSplitEveryOffset(t *testing.T) {
	stream := kiwiIAMAT + "\r\nIAMAT b +1+1 1621464828\n\tIAMAT  c +2+2 1621464828 \nBAD LINE\nIAMAT d +1+1 1\n"
	want := kiwiAT + "\nAT Hill +0.223371889 b +1+1 1621464828\nAT Hill +0.223371889 c +2+2 1621464828\n? BAD LINE\n"
	for cut := 0; cut <= len(stream); cut++ {
		s, ft := feedSplit(t, stream, cut)
		if got := ft.out.String(); got != want || !ft.closed {
			t.Errorf("cut %d: %q closed %v", cut, got, ft.closed)
		}
		if _, ok := s.Record("d"); ok {
			t.Errorf("cut %d: line after the invalid one processed", cut)
		}
	}
}

// A line over the limit gives the same echo however the stream is cut.
func TestTooLongEveryOffset(t *testing.T) {
	stream := "IAMAT " + strings.Repeat("y", 5000) + " +1+1 1\n"
	want := "? " + stream[:64] + "\n"
	for cut := 0; cut <= len(stream); cut += 97 {
		_, ft := feedSplit(t, stream, cut)
		if got := ft.out.String(); got != want || !ft.closed {
			t.Errorf("cut %d: %q closed %v", cut, got, ft.closed)
		}
	}
}

// Below 64 bytes of limit the echo is the first max+1 bytes, however the stream is cut
// (regression: the echo was taken from the bytes held, up to 64 of them, so it depended on
// the cut and could run past the limit).
func TestTooLongSmallLimitEveryOffset(t *testing.T) {
	stream := "IAMAT abcdefghijklmnop +1+1 1\nIAMAT b +1+1 1\n"
	want := "? IAMAT abcd\n" // max 9: the echo is the first 10 bytes
	for cut := 0; cut <= len(stream); cut++ {
		s := newDirectServer(t)
		s.lim.MaxLine = 9
		ft := &fakeTransport{}
		c := s.newClient()
		c.attach(ft)
		c.DataReceived([]byte(stream[:cut]))
		c.DataReceived([]byte(stream[cut:]))
		if got := ft.out.String(); got != want || !ft.closed {
			t.Errorf("cut %d: %q closed %v, want %q", cut, got, ft.closed, want)
		}
	}
}

// The IAMAT path end to end, from the bytes read to the reply written and the record stored,
// for 1000 known clients that keep moving (every IAMAT is newer and replaces a record): no
// socket, a transport that discards.
func BenchmarkIAMAT(b *testing.B) {
	s := newDirectServer(b)
	ft := &discardTransport{}
	c := s.newClient()
	c.attach(ft)
	const clients = 1000
	lines := make([][]byte, clients)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, "IAMAT client%04d.example.org +34.068930-118.445127 1621464827.000000000\n", i)
		c.DataReceived(lines[i])
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		line := lines[i%clients]
		setFraction(line[len(line)-10:len(line)-1], 1+i/clients)
		c.DataReceived(line)
		i++
	}
	if ft.n == 0 || s.metrics.Stored.Load() < uint64(i) {
		b.Fatalf("stored %d of %d", s.metrics.Stored.Load(), i)
	}
}

// setFraction writes n as 9 digits into d.
func setFraction(d []byte, n int) {
	for k := len(d) - 1; k >= 0; k-- {
		d[k] = byte('0' + n%10)
		n /= 10
	}
}

// BenchmarkIAMATPipelined is 16 IAMATs per read, as a pipelining client sends them.
func BenchmarkIAMATPipelined(b *testing.B) {
	s := newDirectServer(b)
	ft := &discardTransport{}
	c := s.newClient()
	c.attach(ft)
	var read []byte
	var fracs []int
	for j := range 16 {
		read = fmt.Appendf(read, "IAMAT client%04d.example.org +34.068930-118.445127 1621464827.000000000\n", j)
		fracs = append(fracs, len(read)-10)
	}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		for _, f := range fracs {
			setFraction(read[f:f+9], n)
		}
		c.DataReceived(read)
	}
	if s.metrics.Stored.Load() < uint64(16*n) {
		b.Fatalf("stored %d of %d", s.metrics.Stored.Load(), 16*n)
	}
}

// feedDirect feeds chunks to a fresh direct connection, then an EOF, and returns what it wrote.
func feedDirect(t testing.TB, chunks ...[]byte) (string, bool) {
	s := newDirectServer(t)
	ft := &fakeTransport{}
	c := s.newClient()
	c.attach(ft)
	for _, ch := range chunks {
		c.DataReceived(ch)
	}
	c.EOFReceived()
	return ft.out.String(), ft.closed
}

// Whatever the bytes and however they are cut, the replies are the same, every reply line is an
// AT line or a "?" line, and after a "?" line nothing more is written.
func FuzzClientStream(f *testing.F) {
	f.Add([]byte(kiwiIAMAT+"\nIAMAT b +1+1 1\n"), uint16(10))
	f.Add([]byte("WHATSAT x 10 5\nIAMAT x +1+1 1\n"), uint16(3))
	f.Add([]byte("IAMAT a +1+1 1\r\n\r\nAT S +0.1 a +1+1 2\n"), uint16(17))
	f.Add([]byte("IAMAT a +1+1 1\nWHATSAT a 10 5\nIAMAT c +1+1 1\n"), uint16(30))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		k := int(cut) % (len(data) + 1)
		whole, closedW := feedDirect(t, data)
		split, closedS := feedDirect(t, data[:k], data[k:])
		if whole != split || closedW != closedS {
			t.Fatalf("cut at %d: %q (closed %v), whole: %q (closed %v)", k, split, closedS, whole, closedW)
		}
		lines := strings.SplitAfter(whole, "\n")
		for i, l := range lines {
			if l == "" {
				continue
			}
			if !strings.HasSuffix(l, "\n") {
				t.Fatalf("reply without newline: %q", l)
			}
			if !strings.HasPrefix(l, "AT Hill ") && !strings.HasPrefix(l, "? ") {
				t.Fatalf("reply line %q", l)
			}
			if strings.HasPrefix(l, "? ") && strings.Join(lines[i+1:], "") != "" {
				t.Fatalf("replies after %q: %q", l, lines[i+1:])
			}
		}
	})
}

// BenchmarkIAMATLogged is BenchmarkIAMAT with logging on (text records through the server's
// LogWriter into io.Discard): the cost of the "in" and "out" records.
func BenchmarkIAMATLogged(b *testing.B) {
	cfg := testConfig(b, "", ServerConfig{Name: "Hill"})
	s, err := NewServer(cfg, "Hill", WithProvider(stubProvider{}), hillClock, WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer s.logw.Close()
	ft := &discardTransport{}
	c := s.newClient()
	c.attach(ft)
	line := []byte("IAMAT client0001.example.org +34.068930-118.445127 1621464827.000000000\n")
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		setFraction(line[len(line)-10:len(line)-1], i)
		c.DataReceived(line)
	}
}

// A connection that always has a WHATSAT waiting keeps a queue as long as what is waiting,
// not as long as its history.
func TestQueueDoesNotGrowWithHistory(t *testing.T) {
	s := newDirectServer(t)
	ft := &fakeTransport{}
	c := s.newClient()
	c.attach(ft)
	c.DataReceived([]byte("IAMAT a +1+1 1\n"))
	// Slots as askPlaces makes them, completed by hand one behind the other.
	var waiting []*slot
	for i := range 1000 {
		sl := &slot{buf: []byte("AT x\n")}
		c.q = append(c.q, sl)
		c.waiting++
		waiting = append(waiting, sl)
		c.reply([]byte(fmt.Sprintf("AT Hill reply %d\n", i)))
		if len(waiting) > 2 {
			sl := waiting[0]
			waiting = waiting[1:]
			sl.buf = append(sl.buf, "{}\n\n"...)
			c.slotReady(sl) // whatsatDone, with the flush the loop makes at the pass's end
			c.flushOut()
		}
	}
	if len(c.q) > 64 {
		t.Errorf("queue holds %d slots for %d waiting", len(c.q), len(waiting))
	}
	var want strings.Builder
	want.WriteString("AT Hill +1621464827.223371889 a +1+1 1\n")
	for k := range 998 {
		fmt.Fprintf(&want, "AT x\n{}\n\nAT Hill reply %d\n", k)
	}
	if got := ft.out.String(); got != want.String() {
		t.Errorf("replies out of order or lost: %d bytes, want %d", len(got), want.Len())
	}
}
