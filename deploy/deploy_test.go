package deploy

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
)

// loadConfig reads a herd config of the deploy files through the herd's own validation.
func loadConfig(t *testing.T, path string) *herd.Config {
	t.Helper()
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseConfig(t, data, path)
}

func parseConfig(t *testing.T, data []byte, name string) *herd.Config {
	t.Helper()
	cfg, err := herd.ParseConfig(data, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cfg
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// graceOf returns the -grace of a herd command line (10s when absent, herd's default).
func graceOf(t *testing.T, args []string) time.Duration {
	t.Helper()
	i := slices.Index(args, "-grace")
	if i < 0 {
		return 10 * time.Second
	}
	if i+1 == len(args) {
		t.Fatalf("-grace without a value in %q", args)
	}
	d, err := time.ParseDuration(args[i+1])
	if err != nil {
		t.Fatalf("-grace in %q: %v", args, err)
	}
	return d
}

// unit is a systemd unit file: section, then key, then its values in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// last returns the value of key in section that systemd uses: the last one.
func (u unit) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// The systemd template unit: what it runs, its hardening and its stop timeout, then
// systemd-analyze's own verdicts.
func TestSystemdUnit(t *testing.T) {
	const path = "systemd/herd@.service"
	u := readUnit(t, path)
	exec0 := strings.Fields(u.last("Service", "ExecStart"))
	if len(exec0) < 4 || exec0[0] != "/usr/local/bin/herd" || exec0[1] != "serve" || exec0[len(exec0)-1] != "%i" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/herd serve ... %%i", exec0)
	}
	if i := slices.Index(exec0, "-config"); i < 0 || exec0[i+1] != "/etc/herd/herd.toml" {
		t.Errorf("ExecStart %q does not read /etc/herd/herd.toml", exec0)
	}
	stop, err := time.ParseDuration(u.last("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if grace := graceOf(t, exec0); stop <= grace {
		t.Errorf("TimeoutStopSec %v is not longer than -grace %v: SIGKILL would cut the graceful stop", stop, grace)
	}
	want := map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "KillSignal": "SIGTERM", "ExecReload": "/bin/kill -HUP $MAINPID",
		"LogsDirectory": "herd", "ConfigurationDirectory": "herd", "RestartPreventExitStatus": "2",
	}
	for k, v := range want {
		if got := u.last("Service", k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if n, err := strconv.Atoi(u.last("Service", "LimitNOFILE")); err != nil || n < herd.DefaultLimits().MaxClients+1024 {
		t.Errorf("LimitNOFILE=%q: want room for max_clients (%d) and then some", u.last("Service", "LimitNOFILE"), herd.DefaultLimits().MaxClients)
	}
	cfg := loadConfig(t, "systemd/herd.toml")
	if cfg.Log.Dir != "/var/log/"+u.last("Service", "LogsDirectory") {
		t.Errorf("herd.toml log.dir %q is not the unit's LogsDirectory", cfg.Log.Dir)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd): the unit is not verified")
	}
	// verify checks that ExecStart's program exists: run it on a copy whose program is one
	// that does (this test's binary), the rest byte for byte.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copied := filepath.Join(dir, "herd@.service")
	if err := os.WriteFile(copied, bytes.ReplaceAll(src, []byte("/usr/local/bin/herd"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", filepath.Join(dir, "herd@Hill.service")},
		// Exposure 0 (locked down) to 100 (unprotected); 20 is systemd's "OK" band.
		{"security", "--offline=yes", "--threshold=20", copied},
	} {
		out, err := exec.Command(analyze, args...).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze %s: %v\n%s", args[0], err, out)
		} else if args[0] == "verify" && len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify warns:\n%s", out)
		}
	}
}

// The logrotate snippet rotates the files the systemd config writes and signals SIGHUP, with
// herd's own rotation off; logrotate parses it without an error.
func TestLogrotate(t *testing.T) {
	const path = "systemd/herd.logrotate"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, "systemd/herd.toml")
	if cfg.Log.MaxSize != 0 {
		t.Errorf("herd.toml log.max_size = %v: with logrotate, herd's own rotation should be off (0)", cfg.Log.MaxSize)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(regexp.MustCompile(`(?m)^#.*\n`).ReplaceAll(src, nil)), []byte(cfg.Log.Dir+"/*.log {")) {
		t.Errorf("%s does not rotate %s/*.log", path, cfg.Log.Dir)
	}
	m := regexp.MustCompile(`(?s)\n\s*postrotate\n(.*?)\n\s*endscript`).FindSubmatch(src)
	if m == nil || !regexp.MustCompile(`\bkill -HUP\b`).Match(m[1]) {
		t.Fatalf("%s: no postrotate script that sends SIGHUP", path)
	}
	if out, err := exec.Command("sh", "-n", "-c", string(m[1])).CombinedOutput(); err != nil {
		t.Errorf("postrotate script: %v\n%s", err, out)
	}
	if !bytes.Contains(src, []byte("\n    sharedscripts\n")) {
		t.Errorf("%s: without sharedscripts the servers are signalled once per file", path)
	}
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		logrotate, err = exec.LookPath("/usr/sbin/logrotate") // not on a user's PATH
	}
	if err != nil {
		t.Skip("logrotate is not installed (Debian: apt-get install logrotate): the snippet is not parsed")
	}
	out, _ := exec.Command(logrotate, "-d", "-s", filepath.Join(t.TempDir(), "state"), path).CombinedOutput()
	if bytes.Contains(out, []byte("error:")) {
		t.Errorf("logrotate -d %s:\n%s", path, out)
	}
}
