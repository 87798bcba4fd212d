package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/testutil"
)

// testConfig writes a config of three servers in a chain, Alpha - Beta - Gamma, on port 0,
// with logs in dir/logs.
func testConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := testutil.Config{
		LogDir: filepath.Join(dir, "logs"),
		Limits: "backoff_base = \"10ms\"\nbackoff_cap = \"100ms\"",
		Nodes: []testutil.Node{
			{Name: "Alpha", Peers: []string{"Beta"}},
			{Name: "Beta", Peers: []string{"Gamma"}},
			{Name: "Gamma"},
		},
	}
	return testutil.WriteFile(t, dir, "herd.toml", cfg.TOML())
}

var listening = regexp.MustCompile(`herd: (\S+) listening on (\S+)`)

// addrs parses the "listening on" lines of the output.
func addrs(out string) map[string]string {
	m := make(map[string]string)
	for _, sm := range listening.FindAllStringSubmatch(out, -1) {
		m[sm[1]] = sm[2]
	}
	return m
}

func TestRunArgs(t *testing.T) {
	dir := t.TempDir()
	bad := testutil.WriteFile(t, dir, "bad.toml", "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:0\"\npeers = [\"Nobody\"]\n")
	badURL := testutil.WriteFile(t, dir, "badurl.toml", "[places]\nprovider = \"google\"\nkey = \"k\"\nurl = \"::bad\"\n[[server]]\nname = \"A\"\naddr = \"127.0.0.1:0\"\n")
	tests := []struct {
		args []string
		code int
		out  string // in stdout, or in the error
	}{
		{[]string{"-h"}, 0, "herd run"},
		{[]string{"help"}, 0, "max_link_unsent"},
		{[]string{"run", "-h"}, 0, "-config FILE"},
		{[]string{"version"}, 0, "herd "},
		{nil, 2, "missing command"},
		{[]string{"fly"}, 2, `unknown command "fly"`},
		{[]string{"run", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"run", "extra"}, 2, `herd: run takes no arguments, got "extra"`},
		{[]string{"serve"}, 2, "herd: serve needs the name of one server of the config: Hill, Jaquez, Smith, Singleton, Campbell (see herd -h)"},
		{[]string{"serve", "-config", bad}, 2, "unknown peer"},
		{[]string{"serve", "A", "B"}, 2, `herd: serve takes the name of one server, got "A B"`},
		{[]string{"status"}, 2, "herd: status: no server to read: give servers an admin_addr in the config"},
		{[]string{"status", "Nope"}, 2, `herd: status: no server named "Nope" in the config`},
		{[]string{"status", "-interval", "0s"}, 2, "-interval and -timeout must be positive"},
		{[]string{"serve", "Nobody", "-grace", "0s"}, 2, "-grace must be positive"},
		{[]string{"serve", "Nobody", "-config", bad}, 2, "unknown peer"},
		{[]string{"serve", "-config", badURL, "A"}, 2, `herd: config: places.url: "::bad": want http(s)://host[:port]`},
		{[]string{"run", "-grace", "0s"}, 2, "-grace"},
		{[]string{"run", "-config", filepath.Join(dir, "missing.toml")}, 2, "missing.toml"},
		{[]string{"run", "-config", bad}, 2, `bad.toml:4: server[0].peers: unknown peer "Nobody"`},
		{[]string{"serve", "-config", bad, "A"}, 2, "unknown peer"},
		{[]string{"serve", "Nobody"}, 2, `no server named "Nobody"`},
	}
	for _, tt := range tests {
		var stdout, stderr testutil.SyncBuffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if got := exitCode(err); got != tt.code {
			t.Errorf("herd %v: exit %d (%v), want %d", tt.args, got, err, tt.code)
		}
		text := stdout.String()
		if err != nil {
			text = err.Error()
		}
		if !strings.Contains(text, tt.out) {
			t.Errorf("herd %v: %q does not contain %q", tt.args, text, tt.out)
		}
	}
}

// runStarted calls run with args on a goroutine of its own, as main does, and returns once
// it says the herd is up. stop ends run as a signal does and returns its error; the end of
// the test calls it too.
func runStarted(t *testing.T, args ...string) (stdout *testutil.SyncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout = new(testutil.SyncBuffer)
	var stderr testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, stdout, &stderr) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("herd %v: %v", args, err)
		}
	})
	testutil.WaitFor(t, "the herd to start", func() bool {
		select {
		case err := <-done:
			done <- err // for stop
			t.Fatalf("herd %v ended before it started: %v", args, err)
		default:
		}
		return strings.Contains(stdout.String(), "stop with Ctrl-C")
	})
	return stdout, stop
}

// run in-process: a three-server herd on port 0, an update at one end read at the other,
// stopped by cancelling the context.
func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.prof")
	stdout, stop := runStarted(t, "run", "-config", testConfig(t, dir), "-cpuprofile", prof)
	a := addrs(stdout.String())
	if len(a) != 3 {
		t.Fatalf("listening lines: %q", stdout.String())
	}
	got := testutil.Exchange(t, a["Alpha"], "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n")
	if !strings.HasPrefix(got, "AT Alpha ") || !strings.HasSuffix(got, " kiwi +34.068930-118.445127 1621464827.959498503\n") {
		t.Fatalf("IAMAT reply %q", got)
	}
	// Gamma hears of kiwi through Beta; its WHATSAT answers with Alpha's AT line.
	at := strings.TrimSuffix(got, "\n")
	var reply string
	testutil.WaitFor(t, "the flood to reach Gamma", func() bool {
		reply = testutil.Exchange(t, a["Gamma"], "WHATSAT kiwi 10 2\n")
		return !strings.HasPrefix(reply, "?")
	})
	if !strings.HasPrefix(reply, at+"\n{\n") || !strings.HasSuffix(reply, "}\n\n") {
		t.Errorf("WHATSAT reply %q", reply)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "Alpha.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`msg=reply`, `in="IAMAT kiwi`, `out="AT Alpha`, `msg="link up"`, `msg=stopped`} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("Alpha.log lacks %q:\n%s", want, log)
		}
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("-cpuprofile: no profile written (%v)", err)
	}
}

// buildHerd builds the binary once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildHerd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herdbin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "herd")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// start runs the binary with args in dir.
func start(t *testing.T, dir string, args ...string) *testutil.Process {
	t.Helper()
	return startCmd(t, dir, buildHerd(t), args...)
}

// serving waits until the process says its servers are up, and returns it. It fails the test
// if the process exits first.
func serving(t *testing.T, p *testutil.Process) *testutil.Process {
	t.Helper()
	testutil.WaitFor(t, "the herd to start", func() bool {
		if strings.Contains(p.Stdout.String(), "stop with Ctrl-C") {
			return true
		}
		if p.Exited() {
			t.Fatalf("exited before it started; stderr %q", p.Stderr.String())
		}
		return false
	})
	return p
}

// startCmd runs name (the binary, or a shell that runs it) with args in dir, with no Places
// key in its environment.
func startCmd(t *testing.T, dir, name string, args ...string) *testutil.Process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOGLE_PLACES_API_KEY=")
	return testutil.Start(t, cmd)
}

func TestProcessRun(t *testing.T) {
	dir := t.TempDir()
	p := serving(t, start(t, dir, "run", "-config", testConfig(t, dir)))
	a := addrs(p.Stdout.String())
	got := testutil.Exchange(t, a["Beta"], "IAMAT phone +1.5-2.5 1700000000\n")
	if !strings.HasPrefix(got, "AT Beta ") {
		t.Fatalf("reply %q", got)
	}
	if !strings.Contains(p.Stdout.String(), "nc 127.0.0.1 ") {
		t.Errorf("no nc hint in %q", p.Stdout.String())
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr %q", code, p.Stderr.String())
	}
}

func TestProcessServe(t *testing.T) {
	dir := t.TempDir()
	p := serving(t, start(t, dir, "serve", "-config", testConfig(t, dir), "Gamma"))
	a := addrs(p.Stdout.String())
	if len(a) != 1 || a["Gamma"] == "" {
		t.Fatalf("listening lines: %q", p.Stdout.String())
	}
	got := testutil.Exchange(t, a["Gamma"], "IAMAT phone +1.5-2.5 1700000000\nWHATSAT phone 5 3\n")
	if !strings.HasPrefix(got, "AT Gamma ") || !strings.HasSuffix(got, "}\n\n") {
		t.Fatalf("reply %q", got)
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr %q", code, p.Stderr.String())
	}
}

func TestProcessBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := testutil.WriteFile(t, dir, "bad.toml", "[[server]]\nname = \"A\"\nadress = \"127.0.0.1:0\"\n")
	p := start(t, dir, "run", "-config", bad)
	if code := p.Wait(t); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if s := p.Stderr.String(); !strings.Contains(s, "bad.toml:3: server.adress: unknown key") {
		t.Errorf("stderr %q does not name the problem", s)
	}
}

// The default herd, with no config, on 127.0.0.1:12000-12004 (links on 22000-22004): only when
// those ports are free.
func TestProcessDefaultHerd(t *testing.T) {
	for _, port := range []int{12000, 12001, 12002, 12003, 12004, 22000, 22001, 22002, 22003, 22004} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Skipf("port %d is taken (%v): not running the default herd", port, err)
		}
		ln.Close()
	}
	dir := t.TempDir()
	p := start(t, dir, "run")
	testutil.WaitFor(t, "the herd to start", func() bool {
		return strings.Contains(p.Stdout.String(), "stop with Ctrl-C") || strings.Contains(p.Stderr.String(), "herd:")
	})
	a := addrs(p.Stdout.String())
	want := map[string]string{"Hill": "127.0.0.1:12000", "Jaquez": "127.0.0.1:12001", "Smith": "127.0.0.1:12002", "Singleton": "127.0.0.1:12003", "Campbell": "127.0.0.1:12004"}
	for name, addr := range want {
		if a[name] != addr {
			t.Errorf("%s on %q, want %s (stderr %q)", name, a[name], addr, p.Stderr.String())
		}
	}
	if got := testutil.Exchange(t, "127.0.0.1:12000", "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"); !strings.HasPrefix(got, "AT Hill ") {
		t.Errorf("reply %q", got)
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "Hill.log")); err != nil {
		t.Errorf("default log: %v", err)
	}
}

// takenPortConfig writes a config in dir whose one server, A, has an address that a socket
// of the test holds until it ends.
func takenPortConfig(t *testing.T, dir string) string {
	t.Helper()
	ln := testutil.Listen(t)
	cfg := testutil.Config{Nodes: []testutil.Node{{Name: "A", Addr: ln.Addr().String()}}}
	return testutil.WriteFile(t, dir, "herd.toml", cfg.TOML())
}

// A taken port: a clear error and exit status 1, at once.
func TestRunPortTaken(t *testing.T) {
	p := takenPortConfig(t, t.TempDir())
	for _, args := range [][]string{{"run", "-config", p}, {"serve", "-config", p, "A"}} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if exitCode(err) != 1 || !strings.Contains(fmt.Sprint(err), "address already in use") {
			t.Errorf("herd %v: %v (exit %d)", args, err, exitCode(err))
		}
	}
}

// TestFileLimitBurst is the regression test for a connection burst that ended the process:
// under a small open file limit (soft = hard, so it cannot be raised) idle clients fill
// max_clients, and a burst of connections comes on top, more than there are descriptors. gnet's
// acceptor stopped the engine at EMFILE; now the accept backs off, so the process stays up,
// the idle clients are still served, and new clients are served once the burst is gone.
func TestFileLimitBurst(t *testing.T) {
	dir := t.TempDir()
	bin := buildHerd(t)
	p := serving(t, startCmd(t, dir, "sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin, "serve", "-config", testConfig(t, dir), "Alpha"))
	m := regexp.MustCompile(`max_clients lowered from 16384 to (\d+) per server to fit the open file limit \(256 for 1 servers`).FindStringSubmatch(p.Stdout.String())
	if m == nil {
		t.Fatalf("no word of the lowered max_clients in %q", p.Stdout.String())
	}
	maxClients, _ := strconv.Atoi(m[1])
	addr := addrs(p.Stdout.String())["Alpha"]
	alive := func() {
		t.Helper()
		if p.Exited() {
			t.Fatalf("the process exited; stdout %q stderr %q", p.Stdout.String(), p.Stderr.String())
		}
	}
	iamat := func(c net.Conn, id string) bool {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "IAMAT "+id+" +1.5-2.5 1700000000\n"); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "AT Alpha ")
	}
	var idle []net.Conn
	for i := range maxClients + 1 { // on loopback a neighbour's room (one) comes on top
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !iamat(c, "idle"+strconv.Itoa(i)) {
			t.Fatalf("idle client %d not served", i)
		}
		idle = append(idle, c)
	}
	var burst []net.Conn
	for range 1000 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			break // the backlog is full: the kernel refuses, as it should
		}
		burst = append(burst, c)
	}
	if len(burst) <= 256 {
		t.Fatalf("only %d connections of the burst were made, not past the limit", len(burst))
	}
	// Every connection of the burst is over max_clients: the server accepts it (at once, or
	// after backing off while it is out of descriptors) and closes it.
	for i, c := range burst {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
			alive()
			t.Fatalf("connection %d of the burst not closed by the server: %v", i, err)
		}
	}
	alive()
	if !iamat(idle[0], "idle0") {
		t.Fatal("an idle client is not served after the burst")
	}
	for _, c := range burst {
		c.Close()
	}
	for _, c := range idle[:10] {
		c.Close()
	}
	testutil.WaitFor(t, "a new client served", func() bool {
		alive()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		return iamat(c, "new")
	})
	alive()
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr %q", code, p.Stderr.String())
	}
	logs, err := os.ReadFile(filepath.Join(dir, "logs", "Alpha.log"))
	if err != nil {
		t.Fatal(err)
	}
	refused := strings.Count(string(logs), "why=\"over max_clients\"")
	if refused < len(burst)/2 {
		t.Errorf("the log shows %d connections refused over max_clients, want most of the %d of the burst", refused, len(burst))
	}
	t.Logf("%d idle clients, a burst of %d: %d refused over max_clients, %d accept failures backed off",
		len(idle), len(burst), refused, strings.Count(string(logs), "accept failed; retrying"))
}

// TestServerStoppedExits: a server whose loop ends while no signal came makes run return at
// once with an error naming it (exit 1), instead of running on without it.
func TestServerStoppedExits(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	defer func(f func([]*herd.Server)) { started = f }(started)
	started = func(servers []*herd.Server) {
		for _, s := range servers {
			if s.Name() == "Beta" {
				go s.Shutdown(context.Background()) // its loop ends; run was not told to stop
			}
		}
	}
	var stdout, stderr testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), []string{"run", "-config", cfg}, &stdout, &stderr) }()
	err := testutil.Recv(t, done, "run to return after a server stopped")
	if err == nil || !strings.HasPrefix(err.Error(), "herd: Beta stopped: ") {
		t.Errorf("run: %v", err)
	}
	if code := exitCode(err); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
}

// stalledClient connects to addr with a 2 KiB receive buffer, sends 3000 IAMATs and never
// reads: the replies it does not read stay in the server's socket, so a graceful stop waits
// for it. It returns once the server's log (logPath) shows every request read.
func stalledClient(t *testing.T, addr, logPath string) net.Conn {
	t.Helper()
	c, err := testutil.SmallReceiveBuffer(2048).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	const n = 3000
	var reqs strings.Builder
	for k := range n {
		fmt.Fprintf(&reqs, "IAMAT mute +1+1 %d\n", k+1)
	}
	if _, err := io.WriteString(c, reqs.String()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the server to read every request", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte(fmt.Sprintf(`in="IAMAT mute +1+1 %d"`, n)))
	})
	return c
}

// TestProcessGraceOver: a client that never reads again after SIGTERM holds the stop only for
// the grace period; then the process exits 3, and the server's log says how many connections
// were owed how many bytes.
func TestProcessGraceOver(t *testing.T) {
	dir := t.TempDir()
	const grace = time.Second
	p := serving(t, start(t, dir, "serve", "-config", testConfig(t, dir), "-grace", grace.String(), "Gamma"))
	logPath := filepath.Join(dir, "logs", "Gamma.log")
	stalledClient(t, addrs(p.Stdout.String())["Gamma"], logPath)
	t0 := time.Now()
	code := p.Stop(t, syscall.SIGTERM)
	took := time.Since(t0)
	if code != 3 {
		t.Errorf("exit %d, want 3 (grace period over); stderr %q", code, p.Stderr.String())
	}
	if took < grace {
		t.Errorf("exited %v after SIGTERM, before the grace period (%v) was over", took, grace)
	}
	if s := p.Stderr.String(); !strings.Contains(s, "herd: Gamma: grace period over with 1 connections owed ") {
		t.Errorf("stderr %q does not say what was dropped", s)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`level=WARN msg="grace period over: replies not delivered" server=Gamma conns=1 bytes=[1-9]\d* whatsats=0\n`).Match(b) {
		t.Errorf("Gamma.log has no grace period record:\n%s", b[max(0, len(b)-2000):])
	}
}

// loopbackPort returns a loopback port that was free a moment ago, below the kernel's
// ephemeral range (from 32768), so that no outgoing connection can hold it when a server
// binds it again.
func loopbackPort(t *testing.T, taken map[int]bool) int {
	t.Helper()
	for range 1000 {
		p := 15000 + rand.IntN(15000)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		taken[p] = true
		return p
	}
	t.Fatal("no free loopback port")
	return 0
}

// TestGradingFlow plays the course's grading script on the default topology, one `herd serve`
// process per server: it kills a server the way the grader does (kill $(lsof -ti:PORT), PORT
// its client port), and no other server dies with it, since links use the peer ports; it
// restarts the server, and 0.5 s after it listens (the grader's pause) an IAMAT at a
// neighbour reaches it; then, 100 times, a WHATSAT sent to a neighbour right after an IAMAT's
// reply returns the new record.
func TestGradingFlow(t *testing.T) {
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		t.Fatalf("lsof, which the grader uses, is not installed (scripts/deps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	buildHerd(t)
	topo := herd.DefaultConfig()
	taken := map[int]bool{}
	ports := map[string]int{}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[places]\nprovider = \"offline\"\n[log]\ndir = %q\n", filepath.Join(dir, "logs"))
	for _, s := range topo.Servers {
		ports[s.Name] = loopbackPort(t, taken)
		fmt.Fprintf(&cfg, "[[server]]\nname = %q\naddr = \"127.0.0.1:%d\"\npeer_addr = \"127.0.0.1:%d\"\npeers = [\"%s\"]\n",
			s.Name, ports[s.Name], loopbackPort(t, taken), strings.Join(s.Peers, `", "`))
	}
	path := testutil.WriteFile(t, dir, "herd.toml", cfg.String())
	addr := func(name string) string { return fmt.Sprintf("127.0.0.1:%d", ports[name]) }
	serve := func(name string) *testutil.Process { return serving(t, start(t, dir, "serve", "-config", path, name)) }
	procs := map[string]*testutil.Process{}
	for _, s := range topo.Servers {
		procs[s.Name] = serve(s.Name)
	}
	// iamat sends an IAMAT to name and returns the AT line of the reply.
	iamat := func(name, client string) string {
		got := testutil.Exchange(t, addr(name), fmt.Sprintf("IAMAT %s +34.068930-118.445127 %d.000000001\n", client, time.Now().Unix()))
		if !strings.HasPrefix(got, "AT "+name+" ") {
			t.Fatalf("%s answered the IAMAT with %q", name, got)
		}
		return strings.TrimSuffix(got, "\n")
	}
	first := iamat("Hill", "first")
	testutil.WaitFor(t, "the herd to link up", func() bool { return testutil.Knows(addr("Campbell"), "first", first) })

	// kill $(lsof -ti:PORT): the owner of Smith's client port, and no one else.
	out, err := exec.Command(lsof, "-ti:"+strconv.Itoa(ports["Smith"])).Output()
	if err != nil {
		t.Fatalf("lsof: %v", err)
	}
	pids := strings.Fields(string(out))
	if want := strconv.Itoa(procs["Smith"].Cmd.Process.Pid); len(pids) != 1 || pids[0] != want {
		t.Fatalf("lsof -ti:%d = %v, want Smith's process %s alone", ports["Smith"], pids, want)
	}
	if err := exec.Command("kill", pids...).Run(); err != nil {
		t.Fatal(err)
	}
	procs["Smith"].Wait(t)
	for name, p := range procs {
		if name != "Smith" && p.Exited() {
			t.Errorf("%s died with Smith; stderr %q", name, p.Stderr.String())
		}
	}

	// The grader restarts Smith, waits 0.5 s, sends an IAMAT to a neighbour and asks Smith.
	procs["Smith"] = serve("Smith")
	listened := time.Now()
	time.Sleep(time.Until(listened.Add(500 * time.Millisecond))) // the grader's pause, not a wait for a condition
	at := iamat("Hill", "restarted")
	if reply := testutil.Exchange(t, addr("Smith"), "WHATSAT restarted 10 1\n"); !strings.HasPrefix(reply, at+"\n") {
		t.Errorf("0.5 s after the restart, Smith answers %q, want the record %q", reply, at)
	}
	if !testutil.Knows(addr("Smith"), "first", first) {
		t.Error("the restarted Smith did not get the records it missed by resync")
	}

	// 100 times: an IAMAT, then at once a WHATSAT to a neighbour.
	for i := range 100 {
		s := topo.Servers[i%len(topo.Servers)]
		n := s.Peers[i%len(s.Peers)]
		client := fmt.Sprintf("g%d", i)
		at := iamat(s.Name, client)
		if reply := testutil.Exchange(t, addr(n), "WHATSAT "+client+" 10 1\n"); !strings.HasPrefix(reply, at+"\n") {
			t.Fatalf("try %d: %s answered %q right after %s's reply %q", i, n, reply, s.Name, at)
		}
	}
	relinkTimes(t, filepath.Join(dir, "logs", "Smith.log"))
}

// relinkTimes logs how long the restarted server took, from its second "listening" record, to
// its "link up" and "resync done" records.
func relinkTimes(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var listened time.Time
	starts := 0
	for _, line := range strings.Split(string(b), "\n") {
		tm, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(line + " x")[0], "time="))
		switch {
		case err != nil:
		case strings.Contains(line, "msg=listening"):
			starts++
			listened = tm
		case starts == 2 && (strings.Contains(line, `msg="link up"`) || strings.Contains(line, `msg="resync done"`)):
			t.Logf("restarted Smith, %v after listening: %s", tm.Sub(listened), line[strings.Index(line, "msg="):])
		}
	}
}
