package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

var adminLine = regexp.MustCompile(`herd: (\S+) admin on http://(\S+)/`)

// runInProcess runs "herd run" on a config of servers on port 0 written to file in dir, and
// returns the admin addresses it printed and a function that stops it.
func runInProcess(t *testing.T, dir, file string, servers ...testutil.Node) (admins map[string]string, stop func() error) {
	t.Helper()
	cfg := testutil.Config{Limits: "backoff_base = \"10ms\"\nbackoff_cap = \"100ms\"", Nodes: servers}
	stdout, stop := runStarted(t, "run", "-config", testutil.WriteFile(t, dir, file, cfg.TOML()))
	admins = make(map[string]string)
	for _, m := range adminLine.FindAllStringSubmatch(stdout.String(), -1) {
		admins[m[1]] = m[2]
	}
	return admins, stop
}

// herd status against running herds prints every server of the config, and exits non-zero
// once one of them is down.
func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	ab, _ := runInProcess(t, dir, "ab.toml",
		testutil.Node{Name: "Alpha", Peers: []string{"Beta"}, Admin: true}, testutil.Node{Name: "Beta", Admin: true})
	g, stopGamma := runInProcess(t, dir, "g.toml", testutil.Node{Name: "Gamma", Admin: true})
	if len(ab) != 2 || len(g) != 1 {
		t.Fatalf("admin lines: %v %v", ab, g)
	}
	for _, addr := range []string{ab["Alpha"], ab["Beta"]} {
		testutil.WaitFor(t, "the link up", func() bool {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	// What an operator's config says: every server, with its admin address (Delta has none).
	view := testutil.WriteFile(t, dir, "view.toml", fmt.Sprintf(`[[server]]
name = "Alpha"
addr = "127.0.0.1:1"
peers = ["Beta"]
admin_addr = %q
[[server]]
name = "Beta"
addr = "127.0.0.1:2"
admin_addr = %q
[[server]]
name = "Gamma"
addr = "127.0.0.1:3"
admin_addr = %q
[[server]]
name = "Delta"
addr = "127.0.0.1:4"
`, ab["Alpha"], ab["Beta"], g["Gamma"]))

	var out testutil.SyncBuffer
	err := run(context.Background(), []string{"status", "-config", view, "-interval", "100ms"}, &out, &out)
	if err != nil {
		t.Fatalf("status with every server up: %v\n%s", err, out.String())
	}
	rows := statusRows(t, out.String())
	for name, want := range map[string]string{
		"Alpha": `^Alpha\s+(?:\d+h)?(?:\d+m)?\d+s\s+\d+\s+0\s+1/1\s+\d+\.\d\s+0\s*$`,
		"Beta":  `^Beta\s+(?:\d+h)?(?:\d+m)?\d+s\s+\d+\s+0\s+1/1\s+\d+\.\d\s+0\s*$`,
		"Gamma": `^Gamma\s+(?:\d+h)?(?:\d+m)?\d+s\s+0\s+0\s+0/0\s+\d+\.\d\s+0\s*$`,
		"Delta": `^Delta\s+-\s+-\s+-\s+-\s+-\s+-\s+no admin_addr$`,
	} {
		if !regexp.MustCompile(want).MatchString(rows[name]) {
			t.Errorf("row %q, want %s\n%s", rows[name], want, out.String())
		}
	}

	stopGamma()
	out = testutil.SyncBuffer{}
	err = run(context.Background(), []string{"status", "-config", view, "-interval", "100ms", "-timeout", "1s"}, &out, &out)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "unreachable: Gamma") {
		t.Errorf("status with Gamma down: %v (exit %d), want exit 1 naming Gamma", err, exitCode(err))
	}
	rows = statusRows(t, out.String())
	if !strings.Contains(rows["Gamma"], "unreachable: ") || !strings.HasPrefix(rows["Alpha"], "Alpha ") || strings.Contains(rows["Alpha"], "unreachable") {
		t.Errorf("rows with Gamma down:\n%s", out.String())
	}

	// Only some servers, watched until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	out = testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"status", "-config", view, "-watch", "-interval", "50ms", "Beta"}, &out, &out)
	}()
	testutil.WaitFor(t, "three tables", func() bool { return strings.Count(out.String(), "NAME ") >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("status -watch stopped: %v", err)
	}
	if s := out.String(); strings.Contains(s, "Alpha") || !strings.Contains(s, "herd status, ") {
		t.Errorf("status -watch Beta printed:\n%s", s)
	}
}

// statusRows returns the rows of the last table in out, by server name.
func statusRows(t *testing.T, out string) map[string]string {
	t.Helper()
	i := strings.LastIndex(out, "NAME ")
	if i < 0 {
		t.Fatalf("no table in %q", out)
	}
	rows := make(map[string]string)
	for _, l := range strings.Split(strings.TrimSpace(out[i:]), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = strings.TrimRight(l, " ")
		}
	}
	return rows
}

// A server's admin listener cannot start (its port is taken): the process stops before it
// serves, with exit status 1.
func TestAdminPortTaken(t *testing.T) {
	dir := t.TempDir()
	taken, _ := runInProcess(t, dir, "one.toml", testutil.Node{Name: "Alpha", Admin: true})
	p := testutil.WriteFile(t, dir, "two.toml", fmt.Sprintf("[log]\ndir = \"off\"\n[[server]]\nname = \"B\"\naddr = \"127.0.0.1:0\"\nadmin_addr = %q\n", taken["Alpha"]))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out testutil.SyncBuffer
	err := run(ctx, []string{"run", "-config", p}, &out, &out)
	if exitCode(err) != 1 || !strings.Contains(fmt.Sprint(err), "admin: B: listen "+taken["Alpha"]) {
		t.Errorf("run with the admin port taken: %v (exit %d)", err, exitCode(err))
	}
	if strings.Contains(out.String(), "listening on") {
		t.Errorf("the server started although its admin listener could not:\n%s", out.String())
	}
}
