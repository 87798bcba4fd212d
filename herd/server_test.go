package herd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

const (
	kiwiIAMAT = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"
	kiwiAT    = "AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"
)

// hillClock is the receive time that gives the skew of SPEC §3's example.
var hillClock = WithClock(fixedClock(1621464828, 223371889))

func TestIAMATReplyExact(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	if got := c.Line(); got != kiwiAT+"\n" {
		t.Fatalf("reply %q, want %q", got, kiwiAT+"\n")
	}
	if line, ok := s.Record("kiwi.cs.ucla.edu"); !ok || line != kiwiAT {
		t.Errorf("record %q %v", line, ok)
	}
}

func TestIAMATSkews(t *testing.T) {
	tests := []struct {
		clock      func() time.Time
		time, skew string
	}{
		{fixedClock(100, 0), "100", "+0.000000000"},
		{fixedClock(100, 0), "112.000000001", "-12.000000001"},
		{fixedClock(1, 5), "-1.5", "+2.500000005"},
		{fixedClock(1621464828, 223371889), "1621464827.959498503", "+0.263873386"},
	}
	for _, tt := range tests {
		cfg := testConfig(t, "", ServerConfig{Name: "S"})
		s := startServer(t, cfg, "S", WithClock(tt.clock))
		c := testutil.Dial(t, s.Addr().String())
		c.Send("IAMAT c +1.5-2.25 " + tt.time + "\r\n")
		want := "AT S " + tt.skew + " c +1.5-2.25 " + tt.time + "\n"
		if got := c.Line(); got != want {
			t.Errorf("time %s: reply %q, want %q", tt.time, got, want)
		}
	}
}

// The reply always describes this IAMAT, even when the stored record is newer.
func TestIAMATOlderStillAnswered(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", WithClock(fixedClock(2000, 0)))
	c := testutil.Dial(t, s.Addr().String())
	c.Send("IAMAT a +1+1 1000\nIAMAT a +2+2 999\n")
	if got := c.Line(); got != "AT Hill +1000.000000000 a +1+1 1000\n" {
		t.Errorf("first reply %q", got)
	}
	if got := c.Line(); got != "AT Hill +1001.000000000 a +2+2 999\n" {
		t.Errorf("second reply %q", got)
	}
	if line, _ := s.Record("a"); line != "AT Hill +1000.000000000 a +1+1 1000" {
		t.Errorf("stored %q, want the newer record", line)
	}
}

// whatsatWant is the reply to "WHATSAT kiwi.cs.ucla.edu <radius> <bound>" after kiwiIAMAT, as the
// fake's body cut by codec.
func whatsatWant(t *testing.T, radiusM float64, n, bound int) string {
	t.Helper()
	body, err := codec.AppendPlacesBody(nil, fake.LegacyBody(34.068930, -118.445127, radiusM, n), bound)
	if err != nil {
		t.Fatal(err)
	}
	return kiwiAT + "\n" + string(body) + "\n\n"
}

func TestWHATSATReplyExact(t *testing.T) {
	f, s := hillWithPlaces(t, fake.Options{})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	if got := c.Line(); got != kiwiAT+"\n" {
		t.Fatalf("IAMAT reply %q", got)
	}
	got := c.Reply()
	if want := whatsatWant(t, 10000, 20, 5); got != want {
		t.Fatalf("WHATSAT reply:\n%s\nwant:\n%s", got, want)
	}
	if strings.Count(got, "\"place_id\"") != 5 {
		t.Errorf("reply has %d places, want 5", strings.Count(got, "\"place_id\""))
	}
	if reqs := f.Requests(); len(reqs) != 1 || !reqs[0].AsksNearby("34.068930,-118.445127", "10000", "test-key") {
		t.Errorf("Places asked %+v, want one search near UCLA within 10000 m with the key", reqs)
	}
	// A fractional radius is sent exactly, in metres.
	c.Send("WHATSAT kiwi.cs.ucla.edu 0.0015 20\n")
	if got, want := c.Reply(), whatsatWant(t, 1.5, 20, 20); got != want {
		t.Errorf("WHATSAT 0.0015 20 reply differs:\n%s", got)
	}
	if r := f.Requests(); len(r) != 2 || r[1].Query.Get("radius") != "1.5" {
		t.Errorf("second request %v", r[len(r)-1].Query)
	}
}

func TestWHATSATPlacesFailures(t *testing.T) {
	tests := []struct {
		name   string
		opts   fake.Options
		status string
	}{
		{"http 500", fake.Options{HTTPStatus: 500}, `"status" : "UNKNOWN_ERROR"`},
		{"malformed", fake.Options{Malformed: true}, `"status" : "UNKNOWN_ERROR"`},
		{"denied", fake.Options{Status: "REQUEST_DENIED", StatusMessage: "nope"}, `"status" : "REQUEST_DENIED"`},
		{"zero", fake.Options{Results: -1}, `"status" : "ZERO_RESULTS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := hillWithPlaces(t, tt.opts)
			c := testutil.Dial(t, s.Addr().String())
			c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
			c.Line()
			got := c.Reply()
			if !strings.HasPrefix(got, kiwiAT+"\n{\n") || !strings.Contains(got, tt.status) || !strings.HasSuffix(got, "}\n\n") {
				t.Errorf("reply %q, want the AT line, a body with %s, a blank line", got, tt.status)
			}
			if strings.Contains(got, "\n\n\n") || strings.Count(got, "\n\n") != 1 {
				t.Errorf("reply %q has a blank line inside", got)
			}
			if strings.Contains(got, "test-key") {
				t.Errorf("reply leaks the key: %q", got)
			}
		})
	}
}

// A Places body without "results" passes through as sent when it carries a status (Google's
// error bodies may), and is replaced by an UNKNOWN_ERROR body when it does not.
func TestWHATSATStatusBodyWithoutResults(t *testing.T) {
	denied := "{\n   \"error_message\" : \"The provided API key is invalid.\",\n   \"html_attributions\" : [],\n\n   \"status\" : \"REQUEST_DENIED\"\n}\n\n"
	tests := []struct {
		name, body, want string
	}{
		{"status", denied, kiwiAT + "\n" + strings.ReplaceAll(strings.TrimRight(denied, "\n"), "\n\n", "\n") + "\n\n"},
		{"numeric status", `{"status" : 3}`, `"status" : "UNKNOWN_ERROR"`},
		{"no status", `{"html_attributions" : []}`, `"status" : "UNKNOWN_ERROR"`},
		{"array", `[1, 2]`, `"status" : "UNKNOWN_ERROR"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
			s := startServer(t, cfg, "Hill", hillClock, WithProvider(bodyProvider(tt.body)))
			c := testutil.Dial(t, s.Addr().String())
			c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
			c.Line()
			got := c.Reply()
			if tt.name == "status" {
				if got != tt.want {
					t.Errorf("reply %q, want %q", got, tt.want)
				}
				return
			}
			if !strings.HasPrefix(got, kiwiAT+"\n{\n") || !strings.Contains(got, tt.want) || !strings.HasSuffix(got, "}\n\n") {
				t.Errorf("reply %q, want an UNKNOWN_ERROR body", got)
			}
		})
	}
}

func TestWHATSATTimeout(t *testing.T) {
	_, s := hillWithPlaces(t, fake.Options{Hang: true}, func(c *Config) {
		c.Places.Timeout = 200 * time.Millisecond
	})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.Line()
	if got := c.Reply(); !strings.Contains(got, `"status" : "UNKNOWN_ERROR"`) {
		t.Errorf("reply %q", got)
	}
}

func TestInvalidLines(t *testing.T) {
	_, s := hillWithPlaces(t, fake.Options{})
	// A known client, so that WHATSAT errors are about the fields.
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	c.Line()
	bad := []string{
		"",
		"   ",
		"HELLO",
		"iamat kiwi +34.068930-118.445127 1621464827.959498503",
		"IAMAT kiwi +34.068930-118.445127",
		"IAMAT kiwi +34.068930-118.445127 1621464827.959498503 extra",
		"IAMAT kiwi 34.068930-118.445127 1621464827.959498503",
		"IAMAT kiwi +91-118 1621464827",
		"IAMAT kiwi +34-181 1621464827",
		"IAMAT kiwi +34.068930-118.445127x 1621464827",
		"IAMAT kiwi +34-118 16214648x7",
		"IAMAT kiwi +34-118 1.1234567890",
		"WHATSAT kiwi.cs.ucla.edu 0 5",
		"WHATSAT kiwi.cs.ucla.edu 51 5",
		"WHATSAT kiwi.cs.ucla.edu 10 0",
		"WHATSAT kiwi.cs.ucla.edu 10 21",
		"WHATSAT kiwi.cs.ucla.edu 10 2.5",
		"WHATSAT kiwi.cs.ucla.edu 10",
		"WHATSAT nobody 10 5",
		"\t WHATSAT\tnobody  10 5 ",
	}
	for _, line := range bad {
		c := testutil.Dial(t, s.Addr().String())
		// The pipelined IAMAT after the bad line must not be processed.
		c.Send(line + "\nIAMAT after +1+1 1\n")
		if got, want := c.ReadAll(), "? "+line+"\n"; got != want {
			t.Errorf("line %q: got %q, want %q then close", line, got, want)
		}
	}
	if _, ok := s.Record("after"); ok {
		t.Errorf("a line pipelined after an invalid one was processed")
	}
	// The first client is still served.
	c.Send("WHATSAT kiwi.cs.ucla.edu 10 1\n")
	if got := c.Reply(); !strings.HasPrefix(got, kiwiAT+"\n") {
		t.Errorf("first client: %q", got)
	}
}

// hillWithPlaces starts Hill on hillClock with Places at a fake of options o (its config
// changed by edit, if given), and returns the fake and the server.
func hillWithPlaces(t *testing.T, o fake.Options, edit ...func(*Config)) (*fake.Server, *Server) {
	t.Helper()
	f, url := fake.StartTest(t, o)
	cfg := testConfig(t, url, ServerConfig{Name: "Hill"})
	for _, e := range edit {
		e(cfg)
	}
	return f, startServer(t, cfg, "Hill", hillClock)
}

// Replies before an invalid line are written, then the "?" line, then the close.
func TestInvalidAfterPending(t *testing.T) {
	_, s := hillWithPlaces(t, fake.Options{Delay: 100 * time.Millisecond})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 2\nBAD\nIAMAT x +1+1 1\n")
	got := c.ReadAll()
	want := kiwiAT + "\n" + strings.TrimPrefix(whatsatWant(t, 10000, 20, 2), kiwiAT+"\n") + "? BAD\n"
	want = kiwiAT + "\n" + want
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestPipelinedInOrderWithSlowPlaces(t *testing.T) {
	_, s := hillWithPlaces(t, fake.Options{Delay: 150 * time.Millisecond})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 3\nIAMAT b +1+1 1621464828\nWHATSAT kiwi.cs.ucla.edu 10 1\nIAMAT c +1+1 1621464828\n")
	if got := c.Line(); got != kiwiAT+"\n" {
		t.Fatalf("1: %q", got)
	}
	if got, want := c.Reply(), whatsatWant(t, 10000, 20, 3); got != want {
		t.Fatalf("2: %q", got)
	}
	if got := c.Line(); got != "AT Hill +0.223371889 b +1+1 1621464828\n" {
		t.Fatalf("3: %q", got)
	}
	if got, want := c.Reply(), whatsatWant(t, 10000, 20, 1); got != want {
		t.Fatalf("4: %q", got)
	}
	if got := c.Line(); got != "AT Hill +0.223371889 c +1+1 1621464828\n" {
		t.Fatalf("5: %q", got)
	}
	// The IAMATs behind the WHATSAT were stored at once, not when their replies left.
	if _, ok := s.Record("c"); !ok {
		t.Errorf("c not stored")
	}
}

// A WHATSAT waiting on a hung Places does not hold up another client's IAMAT.
func TestSlowPlacesDoesNotBlockOthers(t *testing.T) {
	f, s := hillWithPlaces(t, fake.Options{Hang: true})
	c1 := testutil.Dial(t, s.Addr().String())
	c1.Send(kiwiIAMAT + "\n")
	c1.Line()
	c1.Send("WHATSAT kiwi.cs.ucla.edu 10 5\n")
	testutil.WaitFor(t, "the Places request", func() bool { return f.Count() == 1 })
	c2 := testutil.Dial(t, s.Addr().String())
	c2.Send("IAMAT other +1+1 1621464828\n")
	if got := c2.Line(); got != "AT Hill +0.223371889 other +1+1 1621464828\n" {
		t.Fatalf("c2: %q", got)
	}
	// Causality: c2 was answered while c1's request was still held by the fake.
	if s.Metrics().PlacesErrors.Load() != 0 {
		t.Fatal("the Places call ended before c2 was answered")
	}
	f.Close() // releases the hung request: an error, so UNKNOWN_ERROR
	if got := c1.Reply(); !strings.HasPrefix(got, kiwiAT+"\n") || !strings.Contains(got, "UNKNOWN_ERROR") {
		t.Errorf("c1: %q", got)
	}
}

func TestHalfCloseGetsAnswers(t *testing.T) {
	_, s := hillWithPlaces(t, fake.Options{Delay: 100 * time.Millisecond})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5") // the last line has no "\n"
	if err := c.TCP.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got := c.ReadAll()
	if want := kiwiAT + "\n" + whatsatWant(t, 10000, 20, 5); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestHalfCloseIdle(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT)
	c.TCP.CloseWrite()
	if got := c.ReadAll(); got != kiwiAT+"\n" {
		t.Errorf("got %q", got)
	}
	c = testutil.Dial(t, s.Addr().String())
	c.TCP.CloseWrite()
	c.EOF()
}

// Every way of cutting a stream into reads gives the same replies.
func TestSplitReads(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	stream := kiwiIAMAT + "\r\nIAMAT b +1+1 1621464828\n"
	want := kiwiAT + "\nAT Hill +0.223371889 b +1+1 1621464828\n"
	for _, cut := range []int{1, 5, len(kiwiIAMAT), len(kiwiIAMAT) + 1, len(kiwiIAMAT) + 2, len(stream) - 1} {
		c := testutil.Dial(t, s.Addr().String())
		c.Send(stream[:cut])
		c.Send(stream[cut:]) // often a second read; TestSplitEveryOffset forces it

		if got := c.Line() + c.Line(); got != want {
			t.Errorf("cut %d: %q", cut, got)
		}
	}
}

func TestLineTooLong(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	big := bytes.Repeat([]byte("A"), 1<<20)
	c := testutil.Dial(t, s.Addr().String())
	go c.TCP.Write(append(big, '\n')) // the server closes before it has read it all
	got := c.ReadAll()
	if want := "? " + string(big[:64]) + "\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// A line just at the limit is fine (and invalid for other reasons).
	c = testutil.Dial(t, s.Addr().String())
	line := "IAMAT x " + paddedLocation(4096-len("IAMAT x  1")) + " 1"
	c.Send(line + "\n")
	if got := c.Line(); !strings.HasPrefix(got, "AT Hill ") {
		t.Errorf("line of 4096 bytes: %q", got[:40])
	}
	c.Send(line + "x\n")
	if got := c.ReadAll(); got != "? "+line[:64]+"\n" {
		t.Errorf("line of 4097 bytes: %q", got)
	}
}

func TestBinaryGarbage(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	garbage := []byte{0, 1, 2, 0xff, 0xfe, 'I', 'A', 0x80, '\n', 'x', '\n'}
	c.Send(string(garbage))
	got := c.ReadAll()
	want := string(codec.AppendInvalid(nil, garbage[:8]))
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	c = testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	if got := c.Line(); got != kiwiAT+"\n" {
		t.Errorf("after garbage: %q", got)
	}
}

// AT lines are accepted only from a neighbour's host.
func TestATFromNeighbourHostOnly(t *testing.T) {
	at := "AT Other +0.500000000 z +1+1 1621464827"
	// Hill's neighbour lives on another host: a loopback AT line is invalid.
	cfg := testConfig(t, "", ServerConfig{Name: "Hill", Peers: []string{"Far"}}, ServerConfig{Name: "Far", Addr: "192.0.2.1:9"})
	s := startServer(t, cfg, "Hill")
	c := testutil.Dial(t, s.Addr().String())
	c.Send(at + "\n")
	if got := c.ReadAll(); got != "? "+at+"\n" {
		t.Errorf("AT from a stranger: %q", got)
	}
	// A loopback neighbour: accepted, stored, no reply.
	cfg = testConfig(t, "", ServerConfig{Name: "Hill", Peers: []string{"Near"}}, ServerConfig{Name: "Near", Addr: "127.0.0.1:1"})
	s = startServer(t, cfg, "Hill")
	c = testutil.Dial(t, s.Addr().String())
	c.Send(" \t" + at + " \r\n") // stored without the white space around it
	testutil.WaitFor(t, "the peer update", func() bool { l, _ := s.Record("z"); return l == at })
	c.TCP.CloseWrite()
	if got := c.ReadAll(); got != "" {
		t.Errorf("AT from a neighbour got a reply: %q", got)
	}
}

func TestMaxClients(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Limits.MaxClients = 2
	s := startServer(t, cfg, "Hill", hillClock)
	a, b := testutil.Dial(t, s.Addr().String()), testutil.Dial(t, s.Addr().String())
	a.Send(kiwiIAMAT + "\n")
	b.Send(kiwiIAMAT + "\n")
	a.Line()
	b.Line()
	c := testutil.Dial(t, s.Addr().String())
	c.EOF()
	if n := s.Metrics().ClientsRejected.Load(); n != 1 {
		t.Errorf("rejected %d, want 1", n)
	}
	a.TCP.Close()
	testutil.WaitFor(t, "a's close", func() bool { return s.Metrics().ClientsOpen.Load() == 1 })
	d := testutil.Dial(t, s.Addr().String())
	d.Send(kiwiIAMAT + "\n")
	if got := d.Line(); got != kiwiAT+"\n" {
		t.Errorf("after a slot freed: %q", got)
	}
}

// A client that sends and never reads is cut off at max_unsent; others are served meanwhile.
func TestNonReadingClientCutOff(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Limits.MaxUnsent = 64 << 10
	s := startServer(t, cfg, "Hill", hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.TCP.SetReadBuffer(4096)
	var batch bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&batch, "IAMAT client-%d-%s +1+1 1621464828\n", i, strings.Repeat("p", 100))
	}
	done := make(chan error, 1)
	go func() {
		for {
			c.TCP.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.TCP.Write(batch.Bytes()); err != nil {
				done <- err
				return
			}
		}
	}()
	testutil.WaitFor(t, "the cut-off", func() bool { return s.Metrics().ClientsCut.Load() == 1 })
	if err := <-done; err == nil {
		t.Error("writer never failed")
	}
	o := testutil.Dial(t, s.Addr().String())
	o.Send(kiwiIAMAT + "\n")
	if got := o.Line(); got != kiwiAT+"\n" {
		t.Errorf("other client: %q", got)
	}
}

// Too many WHATSATs waiting: cut off.
func TestMaxPending(t *testing.T) {
	f, s := hillWithPlaces(t, fake.Options{Hang: true}, func(c *Config) {
		c.Limits.MaxPending = 3
	})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	c.Line()
	c.Send(strings.Repeat("WHATSAT kiwi.cs.ucla.edu 10 5\n", 4))
	c.EOF()
	if s.Metrics().ClientsCut.Load() != 1 {
		t.Errorf("not counted as cut off")
	}
	f.Close()
}

// Identical requests in flight are made once.
func TestIdenticalRequestsShared(t *testing.T) {
	f, s := hillWithPlaces(t, fake.Options{Delay: 200 * time.Millisecond})
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n")
	c.Line()
	const n = 8
	cs := make([]*testutil.Conn, n)
	for i := range cs {
		cs[i] = testutil.Dial(t, s.Addr().String())
		cs[i].Send(fmt.Sprintf("WHATSAT kiwi.cs.ucla.edu 10 %d\n", i+1))
	}
	for i, c := range cs {
		if got, want := c.Reply(), whatsatWant(t, 10000, 20, i+1); got != want {
			t.Errorf("client %d: %q", i, got)
		}
	}
	if got := f.Count(); got >= n {
		t.Errorf("%d Places requests for %d identical WHATSATs in flight", got, n)
	}
}

func TestManyClients(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", hillClock)
	const n = 1000
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(c, "IAMAT m%d +1+1 1621464828\n", i)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 128)
			k, err := c.Read(buf)
			want := fmt.Sprintf("AT Hill +0.223371889 m%d +1+1 1621464828\n", i)
			if err != nil || string(buf[:k]) != want {
				errs <- fmt.Errorf("client %d: %q %v", i, buf[:k], err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Metrics().ClientsOpen.Load(); got != n {
		t.Errorf("open clients %d, want %d", got, n)
	}
}

func TestShutdownFinishesReplies(t *testing.T) {
	f, url := fake.StartTest(t, fake.Options{Delay: 200 * time.Millisecond})
	cfg := testConfig(t, url, ServerConfig{Name: "Hill"})
	s := runServer(t, cfg, "Hill", hillClock) // the test stops it
	idle := testutil.Dial(t, s.Addr().String())
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.Line()
	testutil.WaitFor(t, "the Places request", func() bool { return f.Count() == 1 })
	testutil.Stop(t, s.Shutdown)
	if got, want := c.ReadAll(), whatsatWant(t, 10000, 20, 5); got != want {
		t.Errorf("reply owed at shutdown: %q", got)
	}
	idle.EOF()
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Errorf("still accepting after shutdown")
	}
}

// bodyProvider answers every request with one fixed body.
type bodyProvider []byte

func (bodyProvider) Name() string { return "fixture" }

func (b bodyProvider) Nearby(context.Context, places.Request) ([]byte, error) { return b, nil }

// The whole WHATSAT reply of the fixtures (a real Google body), byte for byte.
func TestWHATSATFixtureReply(t *testing.T) {
	want, err := os.ReadFile("testdata/whatsat_reply_example.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("testdata/chicago_first3.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "", ServerConfig{Name: "Goloman"})
	s := startServer(t, cfg, "Goloman", WithProvider(bodyProvider(body)), WithClock(fixedClock(1520023935, 182837383)))
	c := testutil.Dial(t, s.Addr().String())
	c.Send("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\n")
	at := c.Line()
	if at != strings.SplitAfter(string(want), "\n")[0] {
		t.Fatalf("AT line %q", at)
	}
	c.Send("WHATSAT kiwi.cs.ucla.edu 10 3\n")
	if got := c.Reply(); got != string(want) {
		t.Errorf("reply:\n%s\nwant:\n%s", got, want)
	}
	// Cut to one result: the first place kept byte for byte, the array closed.
	c.Send("WHATSAT kiwi.cs.ucla.edu 10 1\n")
	got := c.Reply()
	if strings.Count(got, `"place_id"`) != 1 || !strings.HasSuffix(got, "   ],\n   \"status\" : \"OK\"\n}\n\n") {
		t.Errorf("cut to 1:\n%s", got)
	}
}

// The course specification's example body, with SPEC §3's AT line.
func TestWHATSATSpecExample(t *testing.T) {
	body, err := os.ReadFile("testdata/ucla_spec_example.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	s := startServer(t, cfg, "Hill", WithProvider(bodyProvider(body)), hillClock)
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.Line()
	if got, want := c.Reply(), kiwiAT+"\n"+string(body)+"\n"; got != want {
		t.Errorf("reply:\n%q\nwant:\n%q", got, want)
	}
}

// A reply that cannot be finished in time does not hold Shutdown past its context.
func TestShutdownDeadline(t *testing.T) {
	_, url := fake.StartTest(t, fake.Options{Hang: true})
	cfg := testConfig(t, url, ServerConfig{Name: "Hill"})
	s := runServer(t, cfg, "Hill", hillClock) // the test stops it
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.Line()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil with a reply still owed")
	}
	c.EOF()
}

// A server that cannot bind says so, and shuts down at once.
func TestStartBindError(t *testing.T) {
	ln := testutil.Listen(t)
	cfg := testConfig(t, "", ServerConfig{Name: "Hill", Addr: ln.Addr().String()})
	s, err := NewServer(cfg, "Hill", WithProvider(stubProvider{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "Hill") {
		t.Fatalf("Start on a taken port: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}

// TestFileBudgetCountsEveryDescriptor: the budget counts every descriptor the process may use
// (its reserve, each server's own, links, admin listeners, Places connections, clients and the
// headroom over max_clients) and fits them all under the limit, lowering max_clients and
// places.max_conns when it must.
func TestFileBudgetCountsEveryDescriptor(t *testing.T) {
	herd5 := DefaultConfig()
	google := DefaultConfig()
	google.Places = PlacesConfig{Provider: "google", Key: "k", Timeout: time.Second, Workers: 1024, MaxConns: 1024}
	shared := google.Clone()
	shared.Places.MaxConns = 0 // the default: workers for each server of the process
	admin := google.Clone()
	for i := range admin.Servers {
		admin.Servers[i].AdminAddr = "127.0.0.1:0"
	}
	big := herd5.Clone()
	big.Limits.MaxClients = 20000
	one := func(c *Config) []ServerConfig { return c.Servers[:1] }
	tests := []struct {
		name        string
		cfg         *Config
		servers     []ServerConfig
		limit       uint64
		clients     int
		placesConns int
		lowered     bool
	}{
		{"offline herd, high limit", herd5, herd5.Servers, 1 << 20, 16384, 0, false},
		{"offline herd, unlimited", herd5, herd5.Servers, 1<<63 - 1, 16384, 0, false},
		// 64 + 5*16 + 2*12 = 168 reserved; share (1024-168)/5 = 171; headroom 64.
		{"offline herd, nofile 1024", herd5, herd5.Servers, 1024, 171 - 64, 0, true},
		// 64 + 16 + 2*2 = 84 reserved; 940 left: Places gets half.
		{"google server, nofile 1024", google, one(google), 1024, 470 - 64, 470, true},
		{"google server with admin, nofile 1024", admin, one(admin), 1024, 462 - 64, 462, true},
		// Regression: halving the share refused 10,000 clients under the usual 20,000 limit.
		{"offline server, nofile 20000", big, one(big), 20000, 19916 - 2489, 0, true},
		{"offline server, 16384 clients, nofile 20000", herd5, one(herd5), 20000, 16384, 0, false},
		// (65536 - 168 - 1024) / 5 = 12868 each, less an eighth.
		{"google herd, nofile 65536", google, google.Servers, 65536, 12868 - 1608, 1024, true},
		{"google herd, nofile 1<<20", google, google.Servers, 1 << 20, 16384, 1024, false},
		{"google herd, default max_conns, nofile 1<<20", shared, shared.Servers, 1 << 20, 16384, 5 * 1024, false},
		// (1024 - 168) / 2 = 428 for Places, 428 / 5 = 85 each, less the headroom of 64.
		{"google herd, default max_conns, nofile 1024", shared, shared.Servers, 1024, 85 - 64, 428, true},
		{"tiny limit", herd5, one(herd5), 40, 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewFileBudget(tt.cfg, tt.servers, tt.limit)
			if b.MaxClients != tt.clients || b.PlacesConns != tt.placesConns || b.Lowered != tt.lowered {
				t.Errorf("budget %+v: want max_clients %d, places conns %d, lowered %v", b, tt.clients, tt.placesConns, tt.lowered)
			}
			if tt.limit >= 1<<40 || b.MaxClients == 1 {
				return
			}
			// Clients and the neighbours' room over max_clients (counted in the reserve), the
			// headroom, the Places connections and the reserve: all under the limit.
			used := b.Reserved + b.PlacesConns + b.Servers*(b.MaxClients+b.Headroom)
			if uint64(used) > tt.limit {
				t.Errorf("budget %+v uses %d descriptors, over the limit %d", b, used, tt.limit)
			}
		})
	}
}

// TestServerStoppedOnItsOwnReports: a loop that ends without Shutdown closes Done and Err says
// so; after Shutdown, Err is nil.
func TestServerStoppedOnItsOwnReports(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "A"}, ServerConfig{Name: "B"})
	a := startServer(t, cfg, "A")
	b := startServer(t, cfg, "B")
	if a.Err() != nil {
		t.Fatalf("Err while running: %v", a.Err())
	}
	a.loop.Stop() // what an engine failure (EMFILE in the acceptor) does
	testutil.Recv(t, a.Done(), "Done to close")
	if err := a.Err(); err == nil || !strings.Contains(err.Error(), "A: event loop ended") {
		t.Errorf("Err = %v", err)
	}
	testutil.Stop(t, b.Shutdown)
	<-b.Done()
	if err := b.Err(); err != nil {
		t.Errorf("Err after Shutdown = %v", err)
	}
}

// gateProvider answers every request with stubProvider's body once open is closed.
type gateProvider struct{ open chan struct{} }

func (gateProvider) Name() string { return "gate" }

func (g gateProvider) Nearby(ctx context.Context, req places.Request) ([]byte, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return stubProvider{}.Nearby(ctx, req)
}

// gatedPair starts the herd of cfg, whose server A links to B, with opts; A's Places calls wait
// until release is called. It returns once the links are up.
func gatedPair(t *testing.T, cfg *Config, opts ...Option) (a, b *Server, release func()) {
	t.Helper()
	opts = append([]Option{WithDebug(true)}, opts...)
	h, err := NewHerd(cfg, append(opts[:len(opts):len(opts)], WithProvider(stubProvider{}))...)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var closeGate sync.Once
	release = func() { closeGate.Do(func() { close(gate) }) }
	t.Cleanup(release)
	// A gets its own provider: rebuild it with the gate.
	a, err = NewServer(cfg, "A", append(opts[:len(opts):len(opts)], WithProvider(gateProvider{gate}))...)
	if err != nil {
		t.Fatal(err)
	}
	h.servers[0], h.byName["A"] = a, a
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, h.Shutdown) })
	b = h.Server("B")
	testutil.WaitFor(t, "the links", func() bool { return a.Metrics().LinksUp.Load() == 1 && b.Metrics().LinksUp.Load() == 1 })
	return a, b, release
}

// busyStop is A's Shutdown under way while a client of A waits for a WHATSAT reply that
// A's Places gate holds.
type busyStop struct {
	a, b    *Server
	c       *testutil.Conn
	release func()       // opens the gate
	done    <-chan error // Shutdown's error
}

// stoppingWithBusyClient starts A (with a Places gate) and B, linked, and begins A's stop
// while a client of A has a WHATSAT waiting on the gate.
func stoppingWithBusyClient(t *testing.T) *busyStop {
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	a, b, release := gatedPair(t, cfg)
	c := testutil.Dial(t, a.Addr().String())
	c.Send("IAMAT x +1+1 5\nWHATSAT x 10 1\n")
	c.Line()
	testutil.WaitFor(t, "the WHATSAT to wait", func() bool { return a.Metrics().WHATSATs.Load() == 1 })
	return &busyStop{a: a, b: b, c: c, release: release, done: testutil.GoStop(a.Shutdown, testutil.Patience)}
}

// finish opens the gate and checks that the client gets its reply and then the end of the
// stream, and that the stop ends cleanly.
func (st *busyStop) finish(t *testing.T) {
	t.Helper()
	st.release()
	if got := st.c.Reply(); !strings.HasPrefix(got, "AT A ") {
		t.Errorf("WHATSAT reply %q", got)
	}
	st.c.EOF()
	if err := <-st.done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownReadsNoNewRequests: once a stop begins the server reads no new request, while a
// client owed a reply keeps its connection, and the link stays up until it is gone: the
// client gets its WHATSAT reply and then the end of the stream, with no reply to the IAMAT it
// sent meanwhile, which no neighbour learns; what was read before the stop reached them.
func TestShutdownReadsNoNewRequests(t *testing.T) {
	st := stoppingWithBusyClient(t)
	a, b := st.a, st.b
	// The stop has begun once the listener is closed (or, where it cannot be, new
	// connections are closed at once).
	testutil.WaitFor(t, "the stop to begin", func() bool {
		conn, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			return true
		}
		conn.Close()
		return a.Metrics().ClientsRejected.Load() > 0
	})
	st.c.Send("IAMAT late +2+2 6\n")
	settle(t, a)
	if n := a.Metrics().LinksUp.Load(); n != 1 {
		t.Errorf("A has %d links up while a client is owed a reply, want 1: links close last", n)
	}
	st.finish(t)
	if got, _ := b.Record("x"); !strings.HasPrefix(got, "AT A ") {
		t.Errorf("B holds %q for x, the update A read before its stop", got)
	}
	if got, ok := b.Record("late"); ok {
		t.Errorf("B holds %q for late, sent after the stop began", got)
	}
}

// TestShutdownStopsAccepting: once a stop begins, new connections are refused by the kernel
// (the listener is closed), while the clients owed replies are still served.
func TestShutdownStopsAccepting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reactor.CloseListeners needs Linux")
	}
	st := stoppingWithBusyClient(t)
	testutil.WaitFor(t, "connections to be refused", func() bool { return testutil.Refused(st.a.Addr().String()) })
	st.finish(t)
}

// TestNeighbourHostsPastMaxClients: connections from a neighbour's host may go one past
// max_clients per neighbour (on loopback every local connection is from a neighbour's host),
// so idle clients cannot keep a neighbour's link out.
func TestNeighbourHostsPastMaxClients(t *testing.T) {
	ln, _ := sinkListener(t)
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B", Addr: ln.Addr().String(), Link: LinkPlain})
	cfg.Limits.MaxClients = 1
	s := startServer(t, cfg, "A")
	testutil.WaitFor(t, "the neighbour hosts", func() bool { return s.Metrics().LinksUp.Load() == 1 })
	var open []*testutil.Conn
	for i := range 2 {
		c := testutil.Dial(t, s.Addr().String())
		c.Send(fmt.Sprintf("IAMAT c%d +1+1 5\n", i))
		if got := c.Line(); !strings.HasPrefix(got, "AT A ") {
			t.Fatalf("client %d: %q", i, got)
		}
		open = append(open, c)
	}
	over := testutil.Dial(t, s.Addr().String())
	over.EOF()
	if n := s.Metrics().ClientsRejected.Load(); n != 1 {
		t.Errorf("rejected %d, want 1", n)
	}
}

// TestMaxPendingWritesReadyReplies: a client cut off for max_pending still gets the replies
// that were ready, in order, before the connection closes (it reads; it asked too much).
func TestMaxPendingWritesReadyReplies(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "Hill"})
	cfg.Limits.MaxPending = 2
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	s := startServer(t, cfg, "Hill", hillClock, WithProvider(gateProvider{gate}))
	c := testutil.Dial(t, s.Addr().String())
	c.Send(kiwiIAMAT + "\n" + kiwiIAMAT + "\n" + strings.Repeat("WHATSAT kiwi.cs.ucla.edu 10 5\n", 3))
	if got, want := c.ReadAll(), kiwiAT+"\n"+kiwiAT+"\n"; got != want {
		t.Errorf("read %q before the close, want %q", got, want)
	}
	if s.Metrics().ClientsCut.Load() != 1 {
		t.Errorf("not counted as cut off")
	}
}
