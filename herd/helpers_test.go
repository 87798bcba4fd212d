package herd

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/internal/testutil"
)

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

// runServer builds and starts server name of cfg in debug mode (with the stub provider when
// cfg has no Places URL); the test stops it.
func runServer(t testing.TB, cfg *Config, name string, opts ...Option) *Server {
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
	return s
}

// startServer is runServer that shuts the server down when the test ends.
func startServer(t testing.TB, cfg *Config, name string, opts ...Option) *Server {
	t.Helper()
	s := runServer(t, cfg, name, opts...)
	t.Cleanup(func() { testutil.Stop(t, s.Shutdown) })
	return s
}

// newHerd builds the servers of cfg (not started) in debug mode with the stub provider (opts
// come after, and may name others), and shuts them down when the test ends.
func newHerd(t testing.TB, cfg *Config, opts ...Option) *Herd {
	t.Helper()
	h, err := NewHerd(cfg, append([]Option{WithProvider(stubProvider{}), WithDebug(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, h.Shutdown) })
	return h
}

// startHerd is newHerd and Start.
func startHerd(t testing.TB, cfg *Config, opts ...Option) *Herd {
	t.Helper()
	h := newHerd(t, cfg, opts...)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	return h
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
