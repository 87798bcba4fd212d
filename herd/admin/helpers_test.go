package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// stubPlaces answers every request with a small body in Google's layout.
type stubPlaces struct{}

func (stubPlaces) Name() string { return "stub" }

func (stubPlaces) Nearby(ctx context.Context, req places.Request) ([]byte, error) {
	return []byte("{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n"), nil
}

// testConfig is cfg with every server on 127.0.0.1:0, logging off and quick redials.
func testConfig(t testing.TB, cfg *herd.Config) *herd.Config {
	t.Helper()
	for i := range cfg.Servers {
		cfg.Servers[i].Addr = "127.0.0.1:0"
	}
	cfg.Log.Dir = "off"
	cfg.Limits.BackoffBase = 20 * time.Millisecond
	cfg.Limits.BackoffCap = 200 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// pair is a config of two linked servers, Hill and Jaquez.
func pair(t testing.TB) *herd.Config {
	return testConfig(t, &herd.Config{
		Places: herd.PlacesConfig{Provider: "offline", Timeout: 5 * time.Second},
		Limits: herd.DefaultLimits(),
		Servers: []herd.ServerConfig{
			{Name: "Hill", Peers: []string{"Jaquez"}},
			{Name: "Jaquez"},
		},
	})
}

// newHerd builds the servers of cfg (not started) and shuts them down when the test ends.
func newHerd(t testing.TB, cfg *herd.Config) *herd.Herd {
	t.Helper()
	h, err := herd.NewHerd(cfg, herd.WithProvider(stubPlaces{}), herd.WithDebug(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, h.Shutdown) })
	return h
}

// startHerd builds and starts the servers of cfg.
func startHerd(t testing.TB, cfg *herd.Config) *herd.Herd {
	t.Helper()
	h := newHerd(t, cfg)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	return h
}

// startAdmin starts s's admin listener on 127.0.0.1:0 and returns its base URL.
func startAdmin(t testing.TB, s *herd.Server) (*Admin, string) {
	t.Helper()
	a := New(s, Options{Version: "test"})
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(t, a.Close) })
	return a, "http://" + a.Addr().String()
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// get fetches url and returns the status code and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches base/metrics and parses it with Prometheus's own text parser.
func scrape(t testing.TB, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include labels (name,
// value pairs): a counter's or gauge's value, a histogram's count. It fails the test if
// there is no such series.
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		have := make(map[string]string)
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
