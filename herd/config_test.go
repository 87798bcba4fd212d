package herd

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

const goodConfig = `
[places]
provider = "offline"
timeout = "2s"

[log]
dir = "off"

[limits]
max_line = 1000
backoff_cap = "3s"

[[server]]
name = "A"
addr = "127.0.0.1:0"
peers = ["B"]

[[server]]
name = "B"
addr = "127.0.0.1:0"
peers = ["C"]

[[server]]
name = "C"
addr = "127.0.0.1:0"
`

func TestParseConfigGood(t *testing.T) {
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	c, err := ParseConfig([]byte(goodConfig), "herd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Places.Timeout != 2*time.Second || c.Limits.MaxLine != 1000 || c.Limits.BackoffCap != 3*time.Second {
		t.Errorf("values not decoded: %+v %+v", c.Places, c.Limits)
	}
	if c.Limits.MaxPending != 256 || c.Limits.DialTimeout != time.Second {
		t.Errorf("defaults not kept: %+v", c.Limits)
	}
	if !c.Log.Off() {
		t.Errorf("log dir off not seen")
	}
	want := map[string][]string{"A": {"B"}, "B": {"C", "A"}, "C": {"B"}}
	for _, s := range c.Servers {
		if !reflect.DeepEqual(s.Peers, want[s.Name]) {
			t.Errorf("%s peers = %v, want %v (links completed)", s.Name, s.Peers, want[s.Name])
		}
	}
}

func TestParseConfigProviderDefault(t *testing.T) {
	base := "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\n"
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	c, err := ParseConfig([]byte(base), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Places.Provider != "offline" {
		t.Errorf("no key: provider %q, want offline", c.Places.Provider)
	}
	t.Setenv("GOOGLE_PLACES_API_KEY", "k123")
	c, err = ParseConfig([]byte(base), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Places.Provider != "google" || c.Places.Key != "k123" {
		t.Errorf("env key: provider %q key %q, want google k123", c.Places.Provider, c.Places.Key)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	srv := "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\n"
	tests := []struct {
		name, src string
		line      int
		want      string
	}{
		{"syntax", "[places\nprovider = 1\n", 2, "table name"},
		{"unknown key", srv + "nmae = \"x\"\n", 4, "server.nmae: unknown key"},
		{"unknown table key", "[places]\nprovidr = \"offline\"\n" + srv, 2, "places.providr: unknown key"},
		{"unknown section", "[limitz]\nx = 1\n" + srv, 1, "limitz: unknown key"},
		{"bad duration", "[places]\ntimeout = \"5 parsecs\"\n" + srv, 2, "timeout"},
		{"negative duration", "[limits]\ndial_timeout = \"-1s\"\n" + srv, 2, "limits.dial_timeout: must be a positive duration"},
		{"idle timeout", "[limits]\nidle_timeout = \"-1s\"\n" + srv, 2, "limits.idle_timeout: must not be negative"},
		{"line timeout", "[limits]\nline_timeout = \"-1s\"\n" + srv, 2, "limits.line_timeout: must not be negative"},
		{"bad limit", "[limits]\nmax_pending = 0\n" + srv, 2, "limits.max_pending: must be positive"},
		{"line limit", "[limits]\nmax_line = 10\n" + srv, 2, "limits.max_line"},
		{"backoff order", "[limits]\nbackoff_base = \"1s\"\nbackoff_cap = \"10ms\"\n" + srv, 3, "less than backoff_base"},
		{"provider", "[places]\nprovider = \"bing\"\n" + srv, 2, "unknown provider \"bing\""},
		{"no key", "[places]\nprovider = \"google-v1\"\n" + srv, 2, "needs an API key"},
		{"level", "[log]\nlevel = \"loud\"\n" + srv, 2, "unknown level"},
		{"workers", "[places]\nworkers = -1\n" + srv, 2, "places.workers: must be between 1 and"},
		{"max_conns", "[places]\nmax_conns = -5\n" + srv, 2, "places.max_conns: must not be negative"},
		{"no servers", "[places]\n", 0, "no [[server]]"},
		{"duplicate", srv + srv, 5, "duplicate server name \"A\""},
		{"space in name", "[[server]]\nname = \"A B\"\naddr = \"127.0.0.1:1\"\n", 2, "contains white space"},
		{"long name", "[[server]]\nname = \"" + strings.Repeat("n", MaxNameLen+1) + "\"\naddr = \"127.0.0.1:1\"\n", 2, "longer than 64 bytes"},
		{"missing name", "[[server]]\naddr = \"127.0.0.1:1\"\n", 1, "missing server name"},
		{"bad address", "[[server]]\nname = \"A\"\naddr = \"localhost\"\n", 3, "bad address \"localhost\""},
		{"bad port", "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:99999\"\n", 3, "bad port"},
		{"missing address", "[[server]]\nname = \"A\"\n", 1, "missing address"},
		{"bad admin address", srv + "admin_addr = \"13000\"\n", 4, "server[0].admin_addr: bad address \"13000\""},
		{"unknown peer", srv + "peers = [\"Z\"]\n", 4, "unknown peer \"Z\""},
		{"self link", srv + "peers = [\"A\"]\n", 4, "names itself"},
		{"twice", srv + "peers = [\"B\", \"B\"]\n[[server]]\nname = \"B\"\naddr = \"127.0.0.1:2\"\n", 4, "named twice"},
		{"type", srv + "peers = \"B\"\n", 4, "server[0].peers: want an array, got a string"},
		{"type in the second server", srv + "[[server]]\nname = 2\naddr = \"127.0.0.1:2\"\n", 5, "server[1].name: want a string, got an integer"},
		{"type in a peer", srv + "peers = [\"B\", 3]\n", 4, "server[0].peers[1]: want a string, got an integer"},
		{"type of a limit", "[limits]\nmax_line = \"4k\"\n" + srv, 2, "limits.max_line: want an integer, got a string"},
		{"type of a duration", "[places]\ntimeout = true\n" + srv, 2, `places.timeout: want a duration ("5s"), got a boolean`},
		{"type of a table", "places = 1\n" + srv, 1, "places: want a table, got an integer"},
		// "timeout = 5" would be 5 nanoseconds, and every WHATSAT would fail.
		{"duration without a unit", "[places]\ntimeout = 5\n" + srv, 2, `places.timeout: 5 has no unit: write a duration such as "5s" or "5ms"`},
		{"duration text without a unit", "[limits]\nidle_timeout = \"30\"\n" + srv, 2, `limits.idle_timeout: "30" has no unit: write a duration such as "30s"`},
		{"fraction without a unit", "[limits]\ndial_timeout = \"1.5\"\n" + srv, 2, `limits.dial_timeout: "1.5" has no unit`},
		{"not a duration", "[places]\ncache_ttl = \"soon\"\n" + srv, 2, `places.cache_ttl: "soon" is not a duration`},
		{"size without a unit", "[log]\nmax_size = 100\n" + srv, 2, `log.max_size: 100 has no unit: write a size such as "100MiB"`},
		{"size text without a unit", "[log]\nmax_size = \"100\"\n" + srv, 2, `log.max_size: 100 has no unit`},
		{"not a size", "[log]\nmax_size = \"100 parsecs\"\n" + srv, 2, `log.max_size: "100 parsecs" is not a size`},
		{"type of a size", "[log]\nmax_size = 1.5\n" + srv, 2, `log.max_size: want a size ("100MiB"), got a float`},
		{"size too small", "[log]\nmax_size = \"512KiB\"\n" + srv, 2, "log.max_size: must be 0 (no rotation) or at least 1MiB, got 512KiB"},
		{"no rotated file", "[log]\nmax_files = 0\n" + srv, 2, "log.max_files: must be at least 1"},
		{"several at once", "[places]\ntimeout = 5\n[limits]\nbackoff_cap = 100\n" + srv, 2, "limits.backoff_cap: 100 has no unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.src), "h.toml")
			if err == nil {
				t.Fatalf("ParseConfig(%q) = nil error", tt.src)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if ce.Line != tt.line {
				t.Errorf("error %q: line %d, want %d", err, ce.Line, tt.line)
			}
			if !strings.HasPrefix(err.Error(), "herd: config h.toml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// Durations and sizes with their units; a bare 0 needs none.
func TestParseConfigUnits(t *testing.T) {
	src := "[places]\ntimeout = \"1m30s\"\ncache_ttl = 0\n[log]\nmax_size = \"1GiB\"\nmax_files = 3\n" +
		"[limits]\nidle_timeout = \"0\"\n[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\n"
	c, err := ParseConfig([]byte(src), "h.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Places.Timeout != 90*time.Second || c.Places.CacheTTL != 0 || c.Limits.IdleTimeout != 0 {
		t.Errorf("durations: %v %v %v", c.Places.Timeout, c.Places.CacheTTL, c.Limits.IdleTimeout)
	}
	if c.Log.MaxSize != 1<<30 || c.Log.MaxFiles != 3 {
		t.Errorf("log rotation: %v %d", c.Log.MaxSize, c.Log.MaxFiles)
	}
	c, err = ParseConfig([]byte("[log]\nmax_size = 0\n[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\n"), "h.toml")
	if err != nil || c.Log.MaxSize != 0 {
		t.Errorf("max_size = 0 (rotation off): %v, %v", c.Log.MaxSize, err)
	}
	for in, want := range map[string]ByteSize{"0": 0, "1MiB": 1 << 20, "1 MB": 1 << 20, "64K": 64 << 10, "2GB": 2 << 30, "10B": 10} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "-1MiB", "1.5MiB", "1TiB", "MiB", "99999999999GiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %v, want an error", in, got)
		}
	}
	if got := DefaultConfig().Log; got.MaxSize != 100<<20 || got.MaxFiles != 10 || got.MaxSize.String() != "100MiB" {
		t.Errorf("default rotation: %v x %d", got.MaxSize, got.MaxFiles)
	}
}

// Relative paths in a config file are the file's folder's, whatever the working directory.
func TestLoadConfigRelativePaths(t *testing.T) {
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc")
	if err := os.Mkdir(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\n"
	tests := []struct{ src, logDir, dataset string }{
		{"[places]\ndataset = \"data/places.geojson\"\n[log]\ndir = \"var/logs\"\n" + srv, filepath.Join(conf, "var/logs"), filepath.Join(conf, "data/places.geojson")},
		{srv, filepath.Join(conf, "logs"), ""}, // the default log.dir too
		{"[places]\ndataset = \"/srv/p.geojson\"\n[log]\ndir = \"/var/log/herd\"\n" + srv, "/var/log/herd", "/srv/p.geojson"},
		{"[log]\ndir = \"-\"\n" + srv, "-", ""},
		{"[log]\ndir = \"off\"\n" + srv, "off", ""},
	}
	t.Chdir(t.TempDir()) // another working directory
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		p := testutil.WriteFile(t, conf, "herd.toml", tt.src)
		rel, err := filepath.Rel(wd, p) // "../002/etc/herd.toml"
		if err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(rel)
		if err != nil {
			t.Fatal(err)
		}
		if c.Log.Dir != tt.logDir || c.Places.Dataset != tt.dataset {
			t.Errorf("%q: log.dir %q dataset %q, want %q %q", tt.src, c.Log.Dir, c.Places.Dataset, tt.logDir, tt.dataset)
		}
	}
}

func TestParseConfigPlacesPool(t *testing.T) {
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	srv := "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\n"
	google := "[places]\nprovider = \"google\"\nkey = \"k\"\n"
	cpus := runtime.GOMAXPROCS(0)
	tests := []struct {
		src               string
		workers, maxConns int
	}{
		// max_conns 0 is resolved for the process: workers for each server (FileBudget).
		{srv, cpus, 0}, // offline: CPU-bound
		{google + srv, DefaultWorkers, 0},
		{google + "workers = 200\n" + srv, 200, 0},
		{google + "workers = 200\nmax_conns = 50\n" + srv, 200, 50},
		{google + "max_conns = 8\n" + srv, DefaultWorkers, 8},
		{"[places]\nworkers = 3\n" + srv, 3, 0},
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(tt.src), "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Places.Workers != tt.workers || c.Places.MaxConns != tt.maxConns {
			t.Errorf("ParseConfig(%q): workers %d max_conns %d, want %d %d", tt.src, c.Places.Workers, c.Places.MaxConns, tt.workers, tt.maxConns)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	t.Setenv("GOOGLE_PLACES_API_KEY", "")
	dir := t.TempDir()
	p := testutil.WriteFile(t, dir, "herd.toml", goodConfig)
	if _, err := LoadConfig(p); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(filepath.Join(dir, "missing.toml"))
	if !IsConfigError(err) {
		t.Errorf("missing file: %v is not a config error", err)
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.Clone().Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Hill": "127.0.0.1:12000", "Jaquez": "127.0.0.1:12001", "Smith": "127.0.0.1:12002", "Singleton": "127.0.0.1:12003", "Campbell": "127.0.0.1:12004"}
	for name, addr := range want {
		s := c.Server(name)
		if s == nil || s.Addr != addr {
			t.Errorf("server %s = %+v, want addr %s", name, s, addr)
		}
	}
	links := 0
	for _, s := range c.Servers {
		for _, p := range s.Peers {
			if !contains(c.Server(p).Peers, s.Name) {
				t.Errorf("link %s-%s is one-sided", s.Name, p)
			}
			links++
		}
	}
	if links != 12 {
		t.Errorf("%d link ends, want 12 (6 links)", links)
	}
	if c.Places.Provider != "offline" {
		t.Errorf("provider %q, want offline", c.Places.Provider)
	}
	// herd run's five servers: a pool the size of the cores each, not 1,024 workers each.
	if c.Places.Workers != runtime.GOMAXPROCS(0) {
		t.Errorf("places.workers %d, want GOMAXPROCS (%d) for the offline provider", c.Places.Workers, runtime.GOMAXPROCS(0))
	}
}
