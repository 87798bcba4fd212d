package herd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/herd/places/fake"
)

// startFake starts a fake Google Places server for the test.
func startFake(t testing.TB, o fake.Options) (*fake.Server, string) {
	t.Helper()
	f := fake.New(o)
	url, err := f.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, url
}

// testConfig is a config whose servers listen on 127.0.0.1:0, with Places pointed at url
// (the offline provider when url is ""), and no log files.
func testConfig(t testing.TB, url string, servers ...ServerConfig) *Config {
	t.Helper()
	c := &Config{
		Places: PlacesConfig{Provider: "offline", Timeout: 5 * time.Second},
		Log:    LogConfig{Dir: "off"},
		Limits: DefaultLimits(),
	}
	c.Limits.BackoffBase = 20 * time.Millisecond
	c.Limits.BackoffCap = 200 * time.Millisecond
	if url != "" {
		c.Places = PlacesConfig{Provider: "google", URL: url, Key: "test-key", Timeout: 5 * time.Second}
	}
	for _, s := range servers {
		if s.Addr == "" {
			s.Addr = "127.0.0.1:0"
		}
		c.Servers = append(c.Servers, s)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// startServer starts server name of cfg and shuts it down when the test ends.
func startServer(t testing.TB, cfg *Config, name string, opts ...Option) *Server {
	t.Helper()
	// Debug mode panics on any loop-only call made off the loop.
	opts = append([]Option{WithDebug(true)}, opts...)
	if cfg.Places.URL == "" {
		opts = append([]Option{WithProvider(stubProvider{})}, opts...)
	}
	s, err := NewServer(cfg, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

// startTestHerd starts every server of cfg in debug mode, with the stub Places provider, and
// shuts them down when the test ends.
func startTestHerd(t testing.TB, cfg *Config) *Herd {
	t.Helper()
	h, err := NewHerd(cfg, WithProvider(stubProvider{}), WithDebug(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, h) })
	return h
}

func shutdown(t testing.TB, s interface{ Shutdown(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// client is a test client on one connection. Reads time out after 10s so a broken server
// fails the test instead of hanging it.
type client struct {
	t    testing.TB
	conn *net.TCPConn
	r    *bufio.Reader
}

func dial(t testing.TB, addr net.Addr) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *client) deadline() {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
}

// line reads one line, with its "\n".
func (c *client) line() string {
	c.t.Helper()
	c.deadline()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: got %q, %v", s, err)
	}
	return s
}

// whatsat reads one WHATSAT reply: through the blank line that ends it.
func (c *client) whatsat() string {
	c.t.Helper()
	c.deadline()
	var b strings.Builder
	for {
		s, err := c.r.ReadString('\n')
		b.WriteString(s)
		if err != nil {
			c.t.Fatalf("read WHATSAT reply: got %q, %v", b.String(), err)
		}
		if s == "\n" {
			return b.String()
		}
	}
}

// eof checks that the server closes the connection with nothing more to read.
func (c *client) eof() {
	c.t.Helper()
	c.deadline()
	rest, err := io.ReadAll(c.r)
	if err != nil && !isReset(err) {
		c.t.Fatalf("waiting for EOF: %v (read %q)", err, rest)
	}
	if len(rest) > 0 {
		c.t.Fatalf("waiting for EOF: read %q", rest)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset")
}

// readAll reads until EOF. A reset after the data counts as the end: a server that closes
// with unread input in its socket (after a line too long) makes the kernel send one.
func (c *client) readAll() string {
	c.t.Helper()
	c.deadline()
	b, err := io.ReadAll(c.r)
	if err != nil && !isReset(err) {
		c.t.Fatalf("read to EOF: %v (read %q)", err, b)
	}
	return string(b)
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fixedClock returns a clock stuck at sec.nsec.
func fixedClock(sec, nsec int64) func() time.Time {
	t := time.Unix(sec, nsec)
	return func() time.Time { return t }
}

func lines(s ...string) string {
	var b bytes.Buffer
	for _, l := range s {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// stubProvider answers every request at once with a fixed small body (the offline provider
// takes a while to load its dataset, too long to pay in every test).
type stubProvider struct{}

func (stubProvider) Name() string { return "stub" }

func (stubProvider) Nearby(ctx context.Context, req places.Request) ([]byte, error) {
	return []byte("{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n"), nil
}
