package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Implementations a scenario can run.
const (
	implHerd     = "herd"         // the reactor server, logging on
	implHerdNoLg = "herd-nolog"   // the reactor server, logging off
	implBaseline = "baseline"     // goroutine per connection
	implAsyncio  = "asyncio"      // Python asyncio, after the seed's design
	implUvloop   = "uvloop"       // the same on uvloop
	implBest     = "asyncio-best" // Python asyncio, the best design (bench/asyncio/best.py)
	implUvBest   = "uvloop-best"  // the same on uvloop
	implRedis    = "redis"        // inline SET, the reference single-threaded reactor
)

// pythonImpls are the Python servers: both designs, each on asyncio and on uvloop.
var pythonImpls = []string{implAsyncio, implUvloop, implBest, implUvBest}

// Runtimes of the Places path alone (placespath): a Nearby Search client in each, no server
// (bench/placespath).
const (
	rtGo      = "go-fasthttp"     // Go: herd/places (fasthttp) and codec's cut
	rtAsyncio = "aiohttp-asyncio" // Python: aiohttp on asyncio, json.loads and json.dumps
	rtUvloop  = "aiohttp-uvloop"  // the same on uvloop
	rtNode    = "node-http"       // Node.js: the http module, JSON.parse and JSON.stringify
)

// placesRuntimes are the clients the placespath scenario runs, in the report's order.
var placesRuntimes = []string{rtGo, rtAsyncio, rtUvloop, rtNode}

var implLabels = map[string]string{
	implHerd:     "herd reactor (log on)",
	implHerdNoLg: "herd reactor (log off)",
	implBaseline: "goroutine baseline",
	implAsyncio:  "Python asyncio (seed's design)",
	implUvloop:   "Python asyncio + uvloop (seed's design)",
	implBest:     "Python asyncio (best design)",
	implUvBest:   "Python asyncio + uvloop (best design)",
	implRedis:    "Redis (inline SET)",
	rtGo:         "Go: fasthttp, codec's cut (the herd's own path)",
	rtAsyncio:    "Python: aiohttp on asyncio, json",
	rtUvloop:     "Python: aiohttp on uvloop, json",
	rtNode:       "Node.js: http, JSON",
}

// tools holds the built binaries and what is missing, and why.
type tools struct {
	repo    string
	work    string
	bin     map[string]string // herd, baseline, fakeplaces, loadgen -> path
	missing map[string]string // implementation or tool -> reason it is not available
	python  string
	script  string // the seed's design
	best    string // the best asyncio design
	redis   string
	node    string            // the node binary, "" if none
	imports map[string]string // Python module -> why it cannot be imported ("": it can)
}

// binaries built with go build: name -> package directory.
var binaries = []struct{ name, pkg string }{
	{"loadgen", "bench/loadgen"},
	{"herd", "cmd/herd"},
	{"baseline", "bench/baseline"},
	{"fakeplaces", "bench/fakeplaces"},
	{"inproc", "bench/harness/inproc"},
	{"placespath", "bench/placespath"},
}

// prepare builds the binaries into work/bin and checks Python and Redis. Nothing missing is
// fatal here: each scenario reports what it could not run.
func prepare(ctx context.Context, repo, work string, prebuilt map[string]string, logf func(string, ...any)) *tools {
	t := &tools{repo: repo, work: work, bin: map[string]string{}, missing: map[string]string{}}
	binDir := filepath.Join(work, "bin")
	_ = os.MkdirAll(binDir, 0o755)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range binaries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reason := ""
			if p, ok := prebuilt[b.name]; ok {
				mu.Lock()
				defer mu.Unlock()
				if !exists(p) {
					t.missing[b.name] = "no such file: " + p
				} else {
					t.bin[b.name] = p
				}
				return
			}
			if !hasGoFiles(filepath.Join(repo, b.pkg)) {
				reason = "no Go source in ./" + b.pkg
			} else {
				start := time.Now()
				out, err := runCmd(ctx, repo, 10*time.Minute, "go", "build", "-o", filepath.Join(binDir, b.name), "./"+b.pkg)
				if err != nil {
					reason = "go build ./" + b.pkg + " failed: " + firstLine(out+" "+err.Error())
				} else {
					logf("built %s in %.1fs", b.name, time.Since(start).Seconds())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if reason != "" {
				t.missing[b.name] = reason
			} else {
				t.bin[b.name] = filepath.Join(binDir, b.name)
			}
		}()
	}
	wg.Wait()
	if r, ok := t.missing["herd"]; ok {
		t.missing[implHerd], t.missing[implHerdNoLg] = r, r
	}
	if r, ok := t.missing["baseline"]; ok {
		t.missing[implBaseline] = r
	}
	if r, ok := t.missing["inproc"]; ok {
		// Only the herds with a probe need it; without it they run one process per server.
		logf("inproc not available (%s): herds with a probe run one process per server", r)
	}

	t.python = "/usr/bin/python3"
	t.script = filepath.Join(repo, "bench", "asyncio", "server.py")
	switch {
	case !exists(t.python):
		t.missing[implAsyncio] = t.python + " not found"
	case !exists(t.script):
		t.missing[implAsyncio] = "no bench/asyncio/server.py"
	default:
		if r := t.pythonLacks(ctx, "aiohttp"); r != "" {
			t.missing[implAsyncio] = r
		}
	}
	t.best = filepath.Join(repo, "bench", "asyncio", "best.py")
	if r, ok := t.missing[implAsyncio]; ok {
		t.missing[implUvloop] = r
	} else if r := t.pythonLacks(ctx, "uvloop"); r != "" {
		t.missing[implUvloop] = r
	}
	switch {
	case t.missing[implAsyncio] != "":
		t.missing[implBest] = t.missing[implAsyncio]
	case !exists(t.best):
		t.missing[implBest] = "no bench/asyncio/best.py"
	}
	if r := cmp.Or(t.missing[implBest], t.missing[implUvloop]); r != "" {
		t.missing[implUvBest] = r
	}
	t.placesClients(ctx)
	if p, err := exec.LookPath("redis-server"); err != nil {
		t.missing[implRedis] = "redis-server not found in PATH"
	} else {
		t.redis = p
	}
	return t
}

// placesClients finds what each placespath runtime needs, and says why one is missing.
func (t *tools) placesClients(ctx context.Context) {
	if r, ok := t.missing["placespath"]; ok {
		t.missing[rtGo] = r
	}
	py := filepath.Join(t.repo, "bench", "placespath", "client.py")
	switch {
	case !exists(t.python):
		t.missing[rtAsyncio] = t.python + " not found"
	case !exists(py):
		t.missing[rtAsyncio] = "no bench/placespath/client.py"
	default:
		if r := t.pythonLacks(ctx, "aiohttp"); r != "" {
			t.missing[rtAsyncio] = r
		}
	}
	if r, ok := t.missing[rtAsyncio]; ok {
		t.missing[rtUvloop] = r
	} else if r := t.pythonLacks(ctx, "uvloop"); r != "" {
		t.missing[rtUvloop] = r
	}
	p, err := exec.LookPath("node")
	switch {
	case err != nil:
		t.missing[rtNode] = "node not found in PATH (Node.js is not installed here)"
	case !exists(filepath.Join(t.repo, "bench", "placespath", "client.mjs")):
		t.missing[rtNode] = "no bench/placespath/client.mjs"
	default:
		t.node = p
	}
}

// pythonLacks says why t.python cannot import module, or "" if it can; the answer is kept.
func (t *tools) pythonLacks(ctx context.Context, module string) string {
	if r, ok := t.imports[module]; ok {
		return r
	}
	r := ""
	if out, err := runCmd(ctx, t.repo, 30*time.Second, t.python, "-c", "import "+module); err != nil {
		r = t.python + " cannot import " + module + ": " + firstLine(out)
	}
	if t.imports == nil {
		t.imports = map[string]string{}
	}
	t.imports[module] = r
	return r
}

// clientArgv returns the command that runs the Nearby Search client of a placespath runtime,
// before its flags.
func (t *tools) clientArgv(rt string) []string {
	dir := filepath.Join(t.repo, "bench", "placespath")
	switch rt {
	case rtGo:
		return []string{t.bin["placespath"]}
	case rtAsyncio:
		return []string{t.python, filepath.Join(dir, "client.py")}
	case rtUvloop:
		return []string{t.python, filepath.Join(dir, "client.py"), "-uvloop"}
	case rtNode:
		return []string{t.node, filepath.Join(dir, "client.mjs")}
	}
	return nil
}

func hasGoFiles(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			return true
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// server is one server of a topology.
type server struct {
	name     string
	port     int
	peerPort int // the herd's peer port (peer_addr); 0: the default, port + 10000
	admin    int // the admin listener's port (admin_addr); 0: none
	peers    []string
}

func (s server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// adminAddr is the server's admin listener, or "" if it has none.
func (s server) adminAddr() string {
	if s.admin == 0 {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", s.admin)
}

// takePorts gives s fresh client and peer ports.
func (s *server) takePorts() (err error) {
	if s.port, err = freePort(); err != nil {
		return err
	}
	s.peerPort, err = freePort()
	return err
}

// topology is a herd config the harness writes: its servers, an optional probe (a
// pseudo-server at loadgen's listen address, a neighbour of probeOf) and the Places provider.
type topology struct {
	servers   []server
	probe     string // host:port or ""
	probeOf   string
	placesURL string // "" for the offline provider
	placesMax int    // [places] max_conns when > 0
	logDir    string // "off" or a directory
	noLog     bool   // the servers log nothing, whatever the implementation
}

// takeAdminPorts gives every server an admin listener if impl is a Go server (the reactor's
// serves its metrics and status, the baseline's the Go runtime's metrics only; the others
// have none).
func (tp *topology) takeAdminPorts(impl string) (err error) {
	if impl != implHerd && impl != implHerdNoLg && impl != implBaseline {
		return nil
	}
	for i := range tp.servers {
		if tp.servers[i].admin, err = freePort(); err != nil {
			return err
		}
	}
	return nil
}

// newTopology gives the named topology fresh ports: "single" (Hill alone), "five" (the
// default herd of SPEC §1) or "chainN" (S1 - S2 - ... - SN, N from 2 to 64).
func newTopology(kind string) (*topology, error) {
	var ss []server
	if n, err := strconv.Atoi(strings.TrimPrefix(kind, "chain")); err == nil && strings.HasPrefix(kind, "chain") {
		if n < 2 || n > 64 {
			return nil, fmt.Errorf("harness: topology %q: a chain has 2 to 64 servers", kind)
		}
		for i := 1; i <= n; i++ {
			s := server{name: fmt.Sprintf("S%d", i)}
			if i < n {
				s.peers = []string{fmt.Sprintf("S%d", i+1)}
			}
			ss = append(ss, s)
		}
		kind = "chain"
	}
	switch kind {
	case "chain":
	case "single":
		ss = []server{{name: "Hill"}}
	case "five":
		ss = []server{
			{name: "Hill", peers: []string{"Jaquez", "Smith"}},
			{name: "Jaquez", peers: []string{"Hill", "Singleton"}},
			{name: "Smith", peers: []string{"Hill", "Singleton", "Campbell"}},
			{name: "Singleton", peers: []string{"Jaquez", "Smith", "Campbell"}},
			{name: "Campbell", peers: []string{"Singleton", "Smith"}},
		}
	default:
		return nil, fmt.Errorf("harness: unknown topology %q", kind)
	}
	for i := range ss {
		if err := ss[i].takePorts(); err != nil {
			return nil, err
		}
	}
	return &topology{servers: ss, logDir: "off"}, nil
}

// toml renders the topology as a herd config.
func (tp *topology) toml() string {
	var b strings.Builder
	b.WriteString("[places]\n")
	if tp.placesURL == "" {
		b.WriteString("provider = \"offline\"\n")
	} else {
		fmt.Fprintf(&b, "provider = \"google\"\nurl = %q\nkey = \"bench\"\n", tp.placesURL)
		if tp.placesMax > 0 {
			fmt.Fprintf(&b, "max_conns = %d\n", tp.placesMax)
		}
	}
	b.WriteString("timeout = \"5s\"\n\n[log]\n")
	fmt.Fprintf(&b, "dir = %q\n\n", tp.logDir)
	b.WriteString("[limits]\nmax_clients = 20000\nmax_pending = 1024\nbackoff_base = \"50ms\"\nbackoff_cap = \"250ms\"\n")
	for _, s := range tp.servers {
		peers := append([]string(nil), s.peers...)
		if tp.probe != "" && s.name == tp.probeOf {
			peers = append(peers, "Probe")
		}
		fmt.Fprintf(&b, "\n[[server]]\nname = %q\naddr = %q\n", s.name, s.addr())
		if s.peerPort > 0 {
			fmt.Fprintf(&b, "peer_addr = \"127.0.0.1:%d\"\n", s.peerPort)
		}
		if s.admin > 0 {
			fmt.Fprintf(&b, "admin_addr = %q\n", s.adminAddr())
		}
		fmt.Fprintf(&b, "peers = [%s]\n", quoteList(peers))
	}
	if tp.probe != "" {
		// loadgen's probe reads bare AT lines, as a server of another implementation would:
		// the herd links with it plain, on the address it listens on.
		fmt.Fprintf(&b, "\n[[server]]\nname = \"Probe\"\naddr = %q\nlink = \"plain\"\npeers = [%q]\n", tp.probe, tp.probeOf)
	}
	return b.String()
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// herdArgv returns the command that serves every server of tp (written to config) in one
// process under impl, or nil if impl has none (Python: one process per server, its design).
// Without a probe it is the implementation's own herd command (herd run, baseline run); the
// probe is a server of the config that the load generator plays, so with one the servers are
// named to inproc, which runs them in one process as those commands do.
func (t *tools) herdArgv(impl, config string, tp *topology) []string {
	switch impl {
	case implHerd, implHerdNoLg, implBaseline:
	default:
		return nil
	}
	if tp.probe == "" {
		if impl == implBaseline {
			return []string{t.bin["baseline"], "run", "-config", config}
		}
		return []string{t.bin["herd"], "run", "-config", config}
	}
	bin, ok := t.bin["inproc"]
	if !ok {
		return nil
	}
	kind := "herd"
	if impl == implBaseline {
		kind = "baseline"
	}
	argv := []string{bin, "-impl", kind, "-config", config}
	for _, s := range tp.servers {
		argv = append(argv, s.name)
	}
	return argv
}

// argv returns the command that serves one server of a config under an implementation.
func (t *tools) argv(impl, config, name string) []string {
	switch impl {
	case implHerd, implHerdNoLg:
		return []string{t.bin["herd"], "serve", "-config", config, name}
	case implBaseline:
		return []string{t.bin["baseline"], "serve", "-config", config, name}
	case implAsyncio:
		return []string{t.python, t.script, "--config", config, name}
	case implUvloop:
		return []string{t.python, t.script, "--config", config, "--uvloop", name}
	case implBest:
		return []string{t.python, t.best, "--config", config, name}
	case implUvBest:
		return []string{t.python, t.best, "--config", config, "--uvloop", name}
	}
	return nil
}
