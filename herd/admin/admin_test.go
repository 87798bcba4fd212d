package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// /metrics, scraped while clients send IAMATs and WHATSATs, parses as Prometheus text every
// time, and its counters move with the load: after each phase they count exactly what was
// sent.
func TestMetricsDuringLoad(t *testing.T) {
	h := startHerd(t, pair(t))
	hill := h.Server("Hill")
	_, base := startAdmin(t, hill)
	_, jbase := startAdmin(t, h.Server("Jaquez"))
	testutil.WaitFor(t, "Hill ready", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })

	const (
		phases   = 4
		clients  = 4
		iamats   = 25 // per client and phase
		whatsats = 2  // per client and phase
	)
	conns := make([]*testutil.Conn, clients)
	for i := range conns {
		conns[i] = testutil.Dial(t, hill.Addr().String())
	}
	done := make(chan struct{})
	scrapes := make(chan int, 1)
	go func() { // scrapes during the load: each must parse
		n := 0
		defer func() { scrapes <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			scrape(t, base)
			n++
		}
	}()
	for p := range phases {
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				for k := range iamats {
					c.Ask(fmt.Sprintf("IAMAT c%d-%d-%d +34.068930-118.445127 %d.5", p, i, k, 1621464827+k))
				}
				for range whatsats {
					if r := c.Ask(fmt.Sprintf("WHATSAT c%d-%d-0 10 5", p, i)); !strings.Contains(r, "ZERO_RESULTS") {
						t.Errorf("WHATSAT reply %q", r)
					}
				}
			})
		}
		wg.Wait()
		m := scrape(t, base)
		sent := float64((p + 1) * clients * iamats)
		asked := float64((p + 1) * clients * whatsats)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"herd_lines_total", []string{"command", "IAMAT"}, sent},
			{"herd_lines_total", []string{"command", "WHATSAT"}, asked},
			{"herd_updates_applied_total", nil, sent},
			{"herd_updates_flooded_total", nil, sent},
			{"herd_records", nil, sent},
			{"herd_clients_connected", nil, float64(clients)}, // Jaquez's link is on the peer port
			{"herd_invalid_total", []string{"reason", "unknown_client"}, 0},
			{"herd_link_up", []string{"peer", "Jaquez"}, 1},
			{"herd_link_discarded_lines_total", []string{"peer", "Jaquez"}, 0}, // not a plain peer
			{"herd_link_send_failures_total", []string{"peer", "Jaquez"}, 0},
			{"herd_plain_extra_fields_total", nil, 0},
		} {
			if got := value(t, m, c.name, c.labels...); got != c.want {
				t.Errorf("after phase %d: %s%v = %v, want %v", p, c.name, c.labels, got, c.want)
			}
		}
		calls := value(t, m, "herd_places_calls_total")
		if shared := value(t, m, "herd_places_coalesced_total"); calls+shared != asked {
			t.Errorf("after phase %d: %v Places calls + %v coalesced, want %v WHATSATs", p, calls, shared, asked)
		}
		if n := value(t, m, "herd_places_duration_seconds"); n != calls {
			t.Errorf("after phase %d: %v Places durations observed, want one per call (%v)", p, n, calls)
		}
	}
	close(done)
	if n := <-scrapes; n == 0 {
		t.Error("no scrape ran during the load")
	}

	m := scrape(t, base)
	testutil.WaitFor(t, "a loop-lag sample", func() bool { m = scrape(t, base); return value(t, m, "herd_loop_lag_seconds") > 0 })
	value(t, m, "go_goroutines")
	value(t, m, "process_open_fds")
	for name, f := range m {
		for _, s := range f.Metric {
			server := ""
			for _, lp := range s.Label {
				if lp.GetName() == "server" {
					server = lp.GetValue()
				}
			}
			if server != "Hill" {
				t.Fatalf("%s: a series labelled server=%q on Hill's listener", name, server)
			}
		}
	}
	// Jaquez, in the same process, has its own series: the floods it received.
	j := scrape(t, jbase)
	if got, want := value(t, j, "herd_updates_applied_total", "server", "Jaquez"), float64(phases*clients*iamats); got != want {
		t.Errorf("Jaquez applied %v updates, want %v", got, want)
	}
}

// /readyz answers 503 before the server listens and while a link is down, naming it, and
// 200 when every link is up again; /healthz answers 200 all along.
func TestReadyz(t *testing.T) {
	h := newHerd(t, pair(t))
	_, base := startAdmin(t, h.Server("Hill"))
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not listening") {
		t.Errorf("/readyz before Start: %d %q", code, body)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	ready := func(want int, body string) func() bool {
		return func() bool {
			code, b := get(t, base+"/readyz")
			return code == want && strings.Contains(b, body)
		}
	}
	testutil.WaitFor(t, "Hill ready", ready(http.StatusOK, "ready"))
	if err := h.SetLinkFault("Hill", "Jaquez", herd.LinkCut); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "Hill not ready, its link to Jaquez down", ready(http.StatusServiceUnavailable, "not ready: links down: Jaquez"))
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a link down: %d %q", code, body)
	}
	if err := h.SetLinkFault("Hill", "Jaquez", herd.NoFault); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "Hill ready again", ready(http.StatusOK, "ready"))
	m := scrape(t, base)
	if got := value(t, m, "herd_link_reconnects_total", "peer", "Jaquez"); got != 1 {
		t.Errorf("reconnects %v, want 1", got)
	}
}

// /status shows the server, its config without the Places key, the herd's topology, its
// links, counters and recent updates.
func TestStatus(t *testing.T) {
	cfg := pair(t)
	cfg.Places = herd.PlacesConfig{Provider: "google", URL: "http://user:sekrit-pass@127.0.0.1:1/?key=sekrit-q", Key: "sekrit-key-42", Timeout: time.Second}
	cfg.Servers[0].AdminAddr = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := startHerd(t, cfg)
	hill := h.Server("Hill")
	_, base := startAdmin(t, hill)
	testutil.WaitFor(t, "Hill ready", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
	c := testutil.Dial(t, hill.Addr().String())
	c.Ask("IAMAT kiwi +34.068930-118.445127 1621464827.959498503")
	c.Ask("IAMAT kiwi +34.068930-118.445127 1621464826.5") // older: stale

	code, body := get(t, base+"/status")
	if code != http.StatusOK {
		t.Fatalf("/status: %d %s", code, body)
	}
	if strings.Contains(body, "sekrit") {
		t.Fatalf("/status shows the Places key:\n%s", body)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Server != "Hill" || st.Addr != hill.Addr().String() || !st.Ready || st.Error != "" || st.Version != "test" {
		t.Errorf("status header %+v", st)
	}
	if p := st.Config.Places; p.Provider != "google" || !p.KeySet || p.Timeout != "1s" || p.URL != "http://127.0.0.1:1/" {
		t.Errorf("places summary %+v", p)
	}
	if st.Config.Limits["max_line"] != float64(4096) || st.Config.Limits["backoff_base"] != "20ms" || st.Config.AdminAddr != "127.0.0.1:0" {
		t.Errorf("config summary %+v", st.Config)
	}
	if len(st.Herd) != 2 || st.Herd[0].Name != "Hill" || st.Herd[1].Name != "Jaquez" || st.Herd[1].Peers[0] != "Hill" {
		t.Errorf("herd %+v", st.Herd)
	}
	if len(st.Links) != 1 || st.Links[0].Peer != "Jaquez" || !st.Links[0].Up || st.Links[0].Since == nil ||
		st.Links[0].Addr != h.Server("Jaquez").PeerAddr().String() {
		t.Errorf("links %+v", st.Links)
	}
	// Stale: the older IAMAT (Jaquez floods nothing back: an update is not sent back on the
	// link it came from).
	if st.Counters["records"] != 1 || st.Counters["updates_applied_total"] != 1 || st.Counters["updates_stale_total"] < 1 ||
		st.Labelled["lines_total"]["IAMAT"] != 2 {
		t.Errorf("counters %v %v", st.Counters, st.Labelled)
	}
	if len(st.Recent) != 1 || st.Recent[0].From != "client" || !strings.HasSuffix(st.Recent[0].Line, " kiwi +34.068930-118.445127 1621464827.959498503") {
		t.Errorf("recent %+v", st.Recent)
	}
}

// The status page, pprof and nothing else are served, and only to GET (and HEAD).
func TestRoutes(t *testing.T) {
	h := startHerd(t, pair(t))
	_, base := startAdmin(t, h.Server("Hill"))
	for _, tt := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/", http.StatusOK, "<svg id=\"topology\""},
		{"HEAD", "/", http.StatusOK, ""},
		{"GET", "/healthz", http.StatusOK, "ok"},
		{"GET", "/debug/pprof/", http.StatusOK, "goroutine"},
		{"GET", "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{"GET", "/nope", http.StatusNotFound, ""},
		{"POST", "/status", http.StatusMethodNotAllowed, ""},
		{"DELETE", "/metrics", http.StatusMethodNotAllowed, ""},
	} {
		req, err := http.NewRequestWithContext(context.Background(), tt.method, base+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.body) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", tt.method, tt.path, resp.StatusCode, b, tt.code, tt.body)
		}
	}
}

// During a graceful stop /readyz answers 503 at once, so that a load balancer drains the
// server while it finishes the replies it owes; /healthz answers 503 once its loop has ended.
func TestReadyzDuringStop(t *testing.T) {
	f, url := fake.StartTest(t, fake.Options{Hang: true}) // holds every request until closed
	cfg := testConfig(t, &herd.Config{
		Places:  herd.PlacesConfig{Provider: "google", URL: url, Key: "k", Timeout: 10 * time.Second},
		Limits:  herd.DefaultLimits(),
		Servers: []herd.ServerConfig{{Name: "Hill"}},
	})
	s, err := herd.NewServer(cfg, "Hill")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	_, base := startAdmin(t, s)
	testutil.WaitFor(t, "Hill ready", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
	c := testutil.Dial(t, s.Addr().String())
	c.Ask("IAMAT kiwi +34.068930-118.445127 1621464827.5")
	io.WriteString(c.TCP, "WHATSAT kiwi 10 5\n") // its reply waits on Places: the stop waits for it
	testutil.WaitFor(t, "the Places call", func() bool { return s.Metrics().PlacesCalls.Load() == 1 })

	stopped := testutil.GoStop(s.Shutdown, testutil.Patience)
	testutil.WaitFor(t, "not ready while stopping", func() bool {
		code, body := get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down")
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the stop finishes a reply: %d, want 200", code)
	}
	f.Close() // the WHATSAT gets its (UNKNOWN_ERROR) reply and the stop ends
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopped") {
		t.Errorf("/healthz after the stop: %d %q, want 503 stopped", code, body)
	}
}

// TestConnectionLimit: the admin listener holds at most maxConns connections at once, so
// idle connections cannot take the descriptors the server's budget reserves for it: one
// more waits, unanswered, until one of them closes, and is then served. The slots come
// back as connections close.
func TestConnectionLimit(t *testing.T) {
	h := startHerd(t, pair(t))
	a, _ := startAdmin(t, h.Server("Hill"))
	idle := make([]net.Conn, maxConns)
	for i := range idle {
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	extra, err := net.Dial("tcp", a.Addr().String()) // the kernel takes it, the listener does not
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if _, err := io.WriteString(extra, "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if b, err := io.ReadAll(extra); len(b) > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection past the limit was served: %q, %v", b, err)
	}
	idle[0].Close()
	extra.SetReadDeadline(time.Now().Add(testutil.Patience))
	b, err := io.ReadAll(extra)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		t.Fatalf("once a slot was free: %q, %v", b, err)
	}
	for _, c := range idle[1:] {
		c.Close()
	}
	for range 2 * maxConns { // every slot came back
		if code, _ := get(t, "http://"+a.Addr().String()+"/healthz"); code != 200 {
			t.Fatalf("healthz %d", code)
		}
	}
}
