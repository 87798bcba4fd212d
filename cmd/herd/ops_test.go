package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/testutil"
)

// herd -h documents every key of the config, with its default.
func TestUsageHasEveryKey(t *testing.T) {
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			key := f.Tag.Get("toml")
			switch {
			case f.Type.Kind() == reflect.Struct:
				if !strings.Contains(usage, "  ["+key+"]\n") {
					t.Errorf("herd -h has no [%s] table", key)
				}
				walk(key, f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				if !strings.Contains(usage, "  [["+key+"]]") {
					t.Errorf("herd -h has no [[%s]]", key)
				}
				walk(key, f.Type.Elem())
			case !regexp.MustCompile(`(?m)^  ` + key + ` = \S`).MatchString(usage):
				t.Errorf("herd -h does not document %s.%s with its default", prefix, key)
			}
		}
	}
	walk("", reflect.TypeFor[herd.Config]())
}

// iamat sends one IAMAT for client on a connection of its own and checks the reply.
func iamat(t *testing.T, addr, client string) {
	t.Helper()
	if got := testutil.Exchange(t, addr, "IAMAT "+client+" +1.5-2.5 1700000000\n"); !strings.HasPrefix(got, "AT ") {
		t.Fatalf("IAMAT %s: reply %q", client, got)
	}
}

// logrotate's way, on the process: the log is moved away, SIGHUP, and the server stays up and
// writes on in a new file at the original path. Every request logged before and after is in
// one of the two files, once.
func TestProcessSIGHUPReopensLogs(t *testing.T) {
	dir := t.TempDir()
	p := serving(t, start(t, dir, "serve", "-config", testConfig(t, dir), "Gamma"))
	addr := addrs(p.Stdout.String())["Gamma"]
	logPath := filepath.Join(dir, "logs", "Gamma.log")
	const n = 60
	for k := range n {
		iamat(t, addr, fmt.Sprintf("c%d", k))
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	for k := n; k < 2*n; k++ { // logged after the move, before the signal: still the old file
		iamat(t, addr, fmt.Sprintf("c%d", k))
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "a new log at the original path", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte(`msg="log reopened" server=Gamma`))
	})
	for k := 2 * n; k < 3*n; k++ {
		iamat(t, addr, fmt.Sprintf("c%d", k))
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGHUP and SIGTERM, want 0; stderr %q", code, p.Stderr.String())
	}
	moved, err := os.ReadFile(logPath + ".1")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 * n {
		rec := []byte(fmt.Sprintf(`in="IAMAT c%d +1.5-2.5 1700000000"`, k))
		if c := bytes.Count(moved, rec) + bytes.Count(fresh, rec); c != 1 {
			t.Errorf("the IAMAT of c%d is logged %d times in the two files, want once", k, c)
		}
		if k >= 2*n && !bytes.Contains(fresh, rec) {
			t.Errorf("the IAMAT of c%d, after the reopen, is not in the new file", k)
		}
	}
	if !bytes.Contains(moved, []byte("msg=listening server=Gamma")) || !bytes.Contains(fresh, []byte("msg=stopped server=Gamma")) {
		t.Errorf("the moved file should start the log and the new one end it:\nmoved: %.300s\nnew: %.300s", moved, fresh)
	}
}

// log.dir = "-": the records go to standard error, whole lines, for a container or journald.
func TestProcessLogsToStderr(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "herd.toml", testutil.Config{LogDir: "-", Nodes: []testutil.Node{{Name: "A"}, {Name: "B", Peers: []string{"A"}}}}.TOML())
	p := serving(t, start(t, dir, "run", "-config", cfg))
	if !strings.Contains(p.Stdout.String(), "logs on standard error") {
		t.Errorf("stdout %q does not say where the logs go", p.Stdout.String())
	}
	a := addrs(p.Stdout.String())
	for k := range 20 {
		iamat(t, a["A"], fmt.Sprintf("a%d", k))
		iamat(t, a["B"], fmt.Sprintf("b%d", k))
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	stderr := p.Stderr.String()
	record := regexp.MustCompile(`^time=\S+ level=[A-Z]+ msg=`)
	for i, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if !record.MatchString(l) {
			t.Errorf("stderr line %d is not a whole record: %q", i+1, l)
		}
	}
	for _, want := range []string{`msg=reply server=A conn=`, `in="IAMAT a19 `, `msg=reply server=B conn=`, `in="IAMAT b19 `, `msg=stopped server=A`, `msg=stopped server=B`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files made in the working directory: %v", entries)
	}
}

// The exit status of each way a run ends, as herd -h lists them (0 and 3 have their own tests,
// TestProcessServe and TestProcessGraceOver).
func TestProcessExitStatus(t *testing.T) {
	t.Run("config error: 2, with the file, line and key", func(t *testing.T) {
		dir := t.TempDir()
		bad := testutil.WriteFile(t, dir, "bad.toml", "[places]\nprovider = \"offline\"\ntimeout = 5\n[[server]]\nname = \"A\"\naddr = \"127.0.0.1:0\"\n")
		p := start(t, dir, "serve", "-config", bad, "A")
		if code := p.Wait(t); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if s := p.Stderr.String(); !strings.Contains(s, `bad.toml:3: places.timeout: 5 has no unit: write a duration such as "5s"`) {
			t.Errorf("stderr %q does not name the file, line and key", s)
		}
	})
	t.Run("a server that cannot start: 1", func(t *testing.T) {
		dir := t.TempDir()
		p := start(t, dir, "serve", "-config", takenPortConfig(t, dir), "A")
		if code := p.Wait(t); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if s := p.Stderr.String(); !strings.Contains(s, "address already in use") {
			t.Errorf("stderr %q does not say why", s)
		}
	})
	t.Run("a second signal: ended by it at once", func(t *testing.T) {
		dir := t.TempDir()
		p := serving(t, start(t, dir, "serve", "-config", testConfig(t, dir), "-grace", "10m", "Gamma"))
		stalledClient(t, addrs(p.Stdout.String())["Gamma"], filepath.Join(dir, "logs", "Gamma.log"))
		p.Cmd.Process.Signal(syscall.SIGTERM)
		testutil.WaitFor(t, "the graceful stop to begin", func() bool { return strings.Contains(p.Stdout.String(), "herd: stopping") })
		p.Cmd.Process.Signal(syscall.SIGTERM)
		// The stop itself would wait ten minutes for the client that does not read.
		if code, sig := p.Wait(t), p.Signal(); sig != syscall.SIGTERM {
			t.Errorf("exit %d, signal %v: want the process ended by SIGTERM (143 in a shell)", code, sig)
		}
	})
}

// herd version, from a binary stamped the way the Dockerfile and scripts/build.sh stamp it.
func TestVersionStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out := filepath.Join(t.TempDir(), "herd")
	build := exec.Command("bash", "../../scripts/build.sh")
	build.Env = append(os.Environ(), "OUT="+out, "VERSION=v9.8.7", "COMMIT=0123456789abcdef0123456789abcdef01234567", "DATE=2026-01-02T03:04:05Z")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, b)
	}
	got, err := exec.Command(out, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("herd v9.8.7\ncommit: 0123456789abcdef0123456789abcdef01234567\nbuilt: 2026-01-02T03:04:05Z\ngo: %s %s/%s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if string(got) != want {
		t.Errorf("herd version:\n%s\nwant\n%s", got, want)
	}
	if b, _ := exec.Command("file", out).Output(); len(b) > 0 && !bytes.Contains(b, []byte("statically linked")) {
		t.Errorf("not a static binary: %s", b)
	}
}

// Without stamps, herd version tells what go build recorded from the git checkout.
func TestBuildInfoFrom(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261125120000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-11-25T12:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	var b bytes.Buffer
	buildInfoFrom(bi, "", "", "").print(&b)
	want := "herd v0.0.0-20261125120000-0123456789ab+dirty\ncommit: 0123456789abcdef (with uncommitted changes)\nbuilt: from the commit of 2026-11-25T12:00:00Z\ngo: go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if b.String() != want {
		t.Errorf("from the checkout:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	buildInfoFrom(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "", "").print(&b)
	if !strings.Contains(b.String(), "herd (devel)\ncommit: unknown") || !strings.Contains(b.String(), "built: unknown\n") {
		t.Errorf("without a checkout:\n%s", b.String())
	}
	if v := buildInfoFrom(bi, "v1.0.0", "fedcba9876543210", "2026-01-01T00:00:00Z"); v.version != "v1.0.0" || v.commit != "fedcba9876543210" || v.modified || v.dateIsVCS {
		t.Errorf("stamps do not win over the checkout: %+v", v)
	}
}

// herd health answers from the admin listener: 0 while the server runs, 1 when it cannot be
// read.
func TestHealthCommand(t *testing.T) {
	admins, stop := runInProcess(t, t.TempDir(), "h.toml", testutil.Node{Name: "Alpha", Admin: true})
	addr := admins["Alpha"]
	for _, args := range [][]string{{"health", "-addr", addr}, {"health", "-addr", addr, "-ready"}} {
		var stdout testutil.SyncBuffer
		if err := run(context.Background(), args, &stdout, &stdout); err != nil {
			t.Errorf("herd %v: %v", args, err)
		}
		if !strings.Contains(stdout.String(), "200 OK") {
			t.Errorf("herd %v: %q", args, stdout.String())
		}
	}
	stop()
	err := run(context.Background(), []string{"health", "-addr", addr, "-timeout", "5s"}, &testutil.SyncBuffer{}, &testutil.SyncBuffer{})
	if code := exitCode(err); code != 1 || !strings.Contains(fmt.Sprint(err), "herd: health: ") {
		t.Errorf("a stopped server: %v (exit %d), want exit 1", err, code)
	}
	for _, args := range [][]string{{"health"}, {"health", "-addr", addr, "extra"}, {"health", "-addr", addr, "-timeout", "0s"}} {
		if code := exitCode(run(context.Background(), args, &testutil.SyncBuffer{}, &testutil.SyncBuffer{})); code != 2 {
			t.Errorf("herd %v: exit %d, want 2", args, code)
		}
	}
}

// A config with a relative dataset and log dir means the same from any working directory: an
// OpenStreetMap-style dataset (with features that are not named Points) loads, answers a
// WHATSAT, and the logs go beside the config.
func TestRelativeDatasetFromAnotherDir(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "etc", "herd")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	dataset := `{"type":"FeatureCollection","features":[
	 {"type":"Feature","id":"node/1","properties":{"amenity":"cafe","name":"Kerckhoff Coffee"},"geometry":{"type":"Point","coordinates":[-118.4429,34.0703]}},
	 {"type":"Feature","id":"node/2","properties":{"amenity":"bench"},"geometry":{"type":"Point","coordinates":[-118.4431,34.0701]}},
	 {"type":"Feature","id":"way/3","properties":{"name":"Boelter Hall"},"geometry":{"type":"Polygon","coordinates":[[[-118.4434,34.0693],[-118.4426,34.0693],[-118.4426,34.0698],[-118.4434,34.0693]]]}}
	]}`
	testutil.WriteFile(t, conf, "ucla.geojson", dataset)
	testutil.WriteFile(t, conf, "herd.toml", "[places]\nprovider = \"offline\"\ndataset = \"ucla.geojson\"\n[log]\ndir = \"logs\"\n[[server]]\nname = \"A\"\naddr = \"127.0.0.1:0\"\n")
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, filepath.Join(conf, "herd.toml")) // ../001/etc/herd/herd.toml
	if err != nil {
		t.Fatal(err)
	}
	stdout, stop := runStarted(t, "serve", "-config", rel, "A")
	if want := "herd: places dataset " + filepath.Join(conf, "ucla.geojson") + ": 1 places; skipped 2 features (1 unnamed, 1 not Points, 0 invalid)"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", stdout.String(), want)
	}
	addr := addrs(stdout.String())["A"]
	testutil.Exchange(t, addr, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n")
	if got := testutil.Exchange(t, addr, "WHATSAT kiwi 5 5\n"); !strings.Contains(got, `"name" : "Kerckhoff Coffee"`) || strings.Contains(got, "Boelter") {
		t.Errorf("WHATSAT reply %q", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(conf, "logs", "A.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`msg="places dataset loaded" server=A file=\S+ucla.geojson places=1 skipped=2 unnamed=1 not_point=1 invalid=0`).Match(log) {
		t.Errorf("A.log has no dataset record:\n%s", log)
	}
}
