package admin

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/testutil"
)

// The status page, loaded in headless Chromium on the default herd: it draws the five
// servers and six links, shows a link as down once the neighbour stops, and shows a new
// update within two seconds of page time without being reloaded. It saves a screenshot in
// artifacts/ (see README).
func TestStatusPage(t *testing.T) {
	browser := findChromium(t)
	h := startHerd(t, testConfig(t, herd.DefaultConfig()))
	hill := h.Server("Hill")
	a := New(hill, Options{Version: "test"})
	t.Cleanup(func() { a.Close(context.Background()) })
	hook := &statusHook{next: a.Handler()}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	testutil.WaitFor(t, "Hill ready", func() bool { code, _ := get(t, srv.URL+"/readyz"); return code == http.StatusOK })

	dom := loadPage(t, browser, srv.URL+"/", 1500)
	nodes := nodeRE.FindAllStringSubmatch(dom, -1)
	var names []string
	for _, n := range nodes {
		names = append(names, n[2])
	}
	if want := []string{"Hill", "Jaquez", "Smith", "Singleton", "Campbell"}; !slices.Equal(names, want) {
		t.Fatalf("servers drawn %v, want %v", names, want)
	}
	if !strings.Contains(nodes[0][1], "self") {
		t.Errorf("Hill is not drawn as this server: class %q", nodes[0][1])
	}
	edges := pageEdges(dom)
	want := map[string]string{
		"Hill-Jaquez": "edge own up", "Hill-Smith": "edge own up",
		"Jaquez-Singleton": "edge other", "Singleton-Smith": "edge other",
		"Campbell-Smith": "edge other", "Campbell-Singleton": "edge other",
	}
	if !mapsEqual(edges, want) {
		t.Fatalf("links drawn %v, want %v", edges, want)
	}

	// A new update: sent once the page has read /status, so that only a refresh shows it.
	client := fmt.Sprintf("live-%d", time.Now().UnixNano())
	c := testutil.Dial(t, hill.Addr().String())
	hook.afterFirst(func() { c.Ask("IAMAT " + client + " +34.068930-118.445127 1621464827.5") })
	dom = loadPage(t, browser, srv.URL+"/", 2000)
	if n := hook.served(); n < 2 {
		t.Errorf("the page read /status %d times in 2 s, want it to refresh on its own", n)
	}
	if !regexp.MustCompile(`<td class="line">AT Hill \S+ ` + client + ` `).MatchString(dom) {
		t.Errorf("the update to %s is not on the page within 2 s:\n%s", client, recentSection(dom))
	}

	// Jaquez stops: Hill's link to it is drawn down.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Server("Jaquez").Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "Hill's link to Jaquez down", func() bool {
		code, body := get(t, srv.URL+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "Jaquez")
	})
	dom = loadPage(t, browser, srv.URL+"/", 1500)
	if got := pageEdges(dom)["Hill-Jaquez"]; got != "edge own down" {
		t.Errorf("Hill-Jaquez drawn %q after Jaquez stopped, want \"edge own down\"", got)
	}
	if got := pageEdges(dom)["Hill-Smith"]; got != "edge own up" {
		t.Errorf("Hill-Smith drawn %q, want \"edge own up\"", got)
	}
	if !strings.Contains(dom, `<tr data-peer="Jaquez"><td>Jaquez</td><td>`) || !strings.Contains(dom, `<td class="down">down</td>`) {
		t.Errorf("the links table does not show Jaquez down")
	}

	// A few updates from Smith's clients, flooded to Hill, for the screenshot to show.
	sc := testutil.Dial(t, h.Server("Smith").Addr().String())
	for i, who := range []string{"kiwi.cs.ucla.edu", "lnxsrv07.seas.ucla.edu", "ucla-wifi-42"} {
		sc.Ask(fmt.Sprintf("IAMAT %s +34.0%d8930-118.445127 %d.959498503", who, i, time.Now().Unix()))
	}
	testutil.WaitFor(t, "Smith's updates at Hill", func() bool { _, ok := hill.Record("ucla-wifi-42"); return ok })
	shot := filepath.Join(artifactsDir(t), "status-page.png")
	runChromium(t, browser, srv.URL+"/", 1500, "--screenshot="+shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

var (
	nodeRE = regexp.MustCompile(`<g class="(node[^"]*)" data-name="([^"]+)"`)
	edgeRE = regexp.MustCompile(`<line class="(edge[^"]*)"[^>]* data-a="([^"]+)" data-b="([^"]+)"`)
)

// pageEdges returns the links drawn, by their two ends sorted ("Hill-Jaquez"), with their class.
func pageEdges(dom string) map[string]string {
	out := make(map[string]string)
	for _, m := range edgeRE.FindAllStringSubmatch(dom, -1) {
		ends := []string{m[2], m[3]}
		slices.Sort(ends)
		out[strings.Join(ends, "-")] = m[1]
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// recentSection returns the recent-updates table of a dumped page, for an error message.
func recentSection(dom string) string {
	if i := strings.Index(dom, `<tbody id="recent">`); i >= 0 {
		dom = dom[i:]
		if j := strings.Index(dom, "</tbody>"); j >= 0 {
			return dom[:j]
		}
	}
	return dom
}

// statusHook passes requests on to next, counting those for /status, and runs a function
// once after the first /status it serves from then on.
type statusHook struct {
	next http.Handler
	mu   sync.Mutex
	n    int
	fn   func()
}

func (h *statusHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.next.ServeHTTP(w, r)
	if r.URL.Path != "/status" {
		return
	}
	h.mu.Lock()
	h.n++
	fn := h.fn
	h.fn = nil
	h.mu.Unlock()
	if fn != nil {
		fn() // the answer is written: this page load saw the state before fn
	}
}

// afterFirst resets the count and runs fn after the next /status served.
func (h *statusHook) afterFirst(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n, h.fn = 0, fn
}

func (h *statusHook) served() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// findChromium returns the path of a Chromium binary. Without one the test fails when run as
// root in CI (scripts/deps.sh installs Debian's chromium there) and is skipped otherwise.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium on PATH: the status page test needs headless Chromium (Debian's chromium package, which scripts/deps.sh installs when run as root)"
	if os.Geteuid() == 0 && os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// loadPage loads url in headless Chromium, lets it run for budget ms of page time (timers
// run; the page's fetches hold that clock while they wait) and returns the DOM it built.
func loadPage(t *testing.T, browser, url string, budget int) string {
	t.Helper()
	return runChromium(t, browser, url, budget, "--dump-dom")
}

// runChromium runs headless Chromium on url with a fresh profile and returns its output.
func runChromium(t *testing.T, browser, url string, budget int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,1100",
		fmt.Sprintf("--virtual-time-budget=%d", budget),
	}, args...)
	cmd := exec.CommandContext(ctx, browser, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, stderr.String())
	}
	return stdout.String()
}

// artifactsDir returns the repository's artifacts/ folder (git-ignored), where CI picks up
// what tests leave for people to look at; HERD_ARTIFACTS overrides it.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HERD_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "artifacts")
				break
			}
			if filepath.Dir(d) == d {
				dir = filepath.Join(wd, "artifacts")
				break
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
