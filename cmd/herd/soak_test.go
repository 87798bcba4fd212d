package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/testutil"
)

// soakEnv sets how long TestSoak injects faults: a Go duration ("10m"). The default keeps
// the test, with its starts and its final convergence, well under 3 minutes.
const soakEnv = "HERD_SOAK"

// TestSoak runs the default five-server herd as five `herd serve` processes with snapshots
// ([store] path), under a mixed load (IAMATs and WHATSATs from several clients, each to a
// random server), while faults come one at a time: a server killed with SIGKILL and started
// again, or a link cut (every connection of the pair reset, new ones refused, as a network
// that fails) and healed; the next fault waits until every server is ready (/readyz: every
// link up). At the end, with every server up and every link healed, every server must hold,
// for every client, the newest record any server acknowledged (an AT reply the client read)
// or a newer one, and all five the same: the records lost must be 0.
//
// Links go through TCP proxies the test runs (each server's config names, as its
// neighbours' peer_addr, a proxy in front of the neighbour's peer port), which is how a cut
// reaches them; a proxy forwards a reset as a reset. HERD_SOAK=10m runs it longer.
func TestSoak(t *testing.T) {
	dur := 30 * time.Second
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", soakEnv, v, err)
		}
		dur = d
	}
	dir := t.TempDir()
	buildHerd(t)
	topo := herd.DefaultConfig()
	sh := newSoakHerd(t, dir, topo)
	for _, s := range topo.Servers {
		sh.start(s.Name)
	}
	sh.waitReady()

	stop := make(chan struct{})
	var load sync.WaitGroup
	clients := make([]*soakClient, 4)
	for i := range clients {
		clients[i] = &soakClient{sh: sh, ids: make([]string, 10), acked: make(map[string]soakAck)}
		for j := range clients[i].ids {
			clients[i].ids[j] = fmt.Sprintf("soak-%d-%d", i, j)
		}
		load.Go(func() { clients[i].run(stop) })
	}

	var kills, cuts int
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(200*time.Millisecond + rand.N(600*time.Millisecond))
		if rand.N(2) == 0 {
			name := topo.Servers[rand.N(len(topo.Servers))].Name
			sh.kill(name)
			kills++
			time.Sleep(200*time.Millisecond + rand.N(1300*time.Millisecond)) // the load meets a dead server
			sh.start(name)
		} else {
			e := sh.edges[rand.N(len(sh.edges))]
			sh.setCut(e, true)
			cuts++
			time.Sleep(200*time.Millisecond + rand.N(1300*time.Millisecond))
			sh.setCut(e, false)
		}
		sh.waitReady()
	}
	close(stop)
	load.Wait()

	// Every acknowledged update, or a newer one, everywhere, and the same everywhere.
	want := make(map[string]soakAck)
	var sent, acked, whatsats, failed int
	for _, c := range clients {
		for id, a := range c.acked {
			want[id] = a
		}
		sent += c.sent
		acked += c.ackedN
		whatsats += c.whatsats
		failed += c.failed
	}
	lost := func() (n int, why string) {
		for id, w := range want {
			var first string
			for _, s := range topo.Servers {
				got, err := testutil.TryExchange(sh.addr[s.Name], "WHATSAT "+id+" 1 1\n")
				line, _, _ := strings.Cut(got, "\n")
				switch {
				case err != nil || !strings.HasPrefix(line, "AT "):
					n, why = n+1, fmt.Sprintf("%s holds no record of %s (%q, %v); want %q", s.Name, id, line, err, w.line)
				case soakTime(line).Compare(w.tm) < 0:
					n, why = n+1, fmt.Sprintf("%s holds %q for %s; the newest acknowledged is %q", s.Name, line, id, w.line)
				case first == "":
					first = line
				case line != first:
					why = fmt.Sprintf("%s holds %q for %s, another server %q", s.Name, line, id, first)
					n++
				}
			}
		}
		return n, why
	}
	var n int
	var why string
	testutil.Eventually(func() bool { n, why = lost(); return n == 0 })
	t.Logf("soak %v: %d updates sent, %d acknowledged, %d WHATSATs, %d requests failed (server down); faults injected: %d kills, %d link cuts; %d clients; records lost: %d",
		dur, sent, acked, whatsats, failed, kills, cuts, len(want), n)
	if n > 0 {
		t.Errorf("%d records lost or not converged, e.g. %s", n, why)
	}
	if acked == 0 || kills+cuts == 0 {
		t.Errorf("no load or no fault: %d acknowledged, %d faults", acked, kills+cuts)
	}
}

// soakHerd is the herd of TestSoak: its processes, ports, configs and link proxies.
type soakHerd struct {
	t       *testing.T
	dir     string
	addr    map[string]string // client addresses
	admin   map[string]string
	config  map[string]string // each server's config file
	procs   map[string]*testutil.Process
	proxies map[[2]string]*soakProxy // by (dialler, neighbour)
	edges   [][2]string
}

func newSoakHerd(t *testing.T, dir string, topo *herd.Config) *soakHerd {
	sh := &soakHerd{t: t, dir: dir, addr: map[string]string{}, admin: map[string]string{}, config: map[string]string{},
		procs: map[string]*testutil.Process{}, proxies: map[[2]string]*soakProxy{}}
	taken := map[int]bool{}
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", loopbackPort(t, taken)) }
	peer := map[string]string{}
	for _, s := range topo.Servers {
		sh.addr[s.Name], peer[s.Name], sh.admin[s.Name] = port(), port(), port()
	}
	for _, s := range topo.Servers {
		for _, p := range s.Peers {
			sh.proxies[[2]string{s.Name, p}] = startSoakProxy(t, peer[p])
			if s.Name < p {
				sh.edges = append(sh.edges, [2]string{s.Name, p})
			}
		}
	}
	for _, s := range topo.Servers {
		var b strings.Builder
		fmt.Fprintf(&b, "[places]\nprovider = \"offline\"\n[log]\ndir = %q\n[store]\npath = %q\n[limits]\nbackoff_base = \"10ms\"\nbackoff_cap = \"200ms\"\n",
			filepath.Join(dir, "logs"), filepath.Join(dir, "store"))
		for _, o := range topo.Servers {
			pa := peer[o.Name]
			if o.Name != s.Name {
				if px := sh.proxies[[2]string{s.Name, o.Name}]; px != nil {
					pa = px.ln.Addr().String()
				}
			}
			fmt.Fprintf(&b, "[[server]]\nname = %q\naddr = %q\npeer_addr = %q\npeers = [\"%s\"]\n", o.Name, sh.addr[o.Name], pa, strings.Join(o.Peers, `", "`))
			if o.Name == s.Name {
				fmt.Fprintf(&b, "admin_addr = %q\n", sh.admin[o.Name])
			}
		}
		sh.config[s.Name] = testutil.WriteFile(t, dir, s.Name+".toml", b.String())
	}
	return sh
}

// start starts (or restarts) the process of server name and waits until it serves.
func (sh *soakHerd) start(name string) {
	sh.procs[name] = serving(sh.t, start(sh.t, sh.dir, "serve", "-config", sh.config[name], name))
}

// kill ends the process of server name with SIGKILL: no stop, no last snapshot.
func (sh *soakHerd) kill(name string) {
	p := sh.procs[name]
	p.Cmd.Process.Kill()
	p.Wait(sh.t)
}

// setCut cuts the link between the two servers of e (both ways), or heals it.
func (sh *soakHerd) setCut(e [2]string, cut bool) {
	sh.proxies[[2]string{e[0], e[1]}].setCut(cut)
	sh.proxies[[2]string{e[1], e[0]}].setCut(cut)
}

// waitReady waits until every server answers /readyz with 200: it listens, with every link up.
func (sh *soakHerd) waitReady() {
	c := &http.Client{Timeout: time.Second}
	for name, a := range sh.admin {
		testutil.WaitFor(sh.t, name+" to be ready", func() bool {
			r, err := c.Get("http://" + a + "/readyz")
			if err != nil {
				return false
			}
			r.Body.Close()
			return r.StatusCode == http.StatusOK
		})
	}
}

// soakAck is an acknowledged update: the AT line a server answered, and its client time.
type soakAck struct {
	line string
	tm   soakTm
}

// soakTm is a client time as (seconds, nanoseconds).
type soakTm struct{ sec, nsec int64 }

func (a soakTm) Compare(b soakTm) int {
	switch {
	case a.sec != b.sec:
		return compareInt(a.sec, b.sec)
	default:
		return compareInt(a.nsec, b.nsec)
	}
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// soakTime returns the client time of an AT line ("sec.nnnnnnnnn", as soakClient writes it).
func soakTime(line string) soakTm {
	f := strings.Fields(line)
	if len(f) != 6 {
		return soakTm{}
	}
	sec, frac, _ := strings.Cut(f[5], ".")
	s, _ := strconv.ParseInt(sec, 10, 64)
	n, _ := strconv.ParseInt(frac, 10, 64)
	return soakTm{s, n}
}

// soakClient sends IAMATs (with ever later times) and WHATSATs for its clients to random
// servers, one connection a request, and keeps what was acknowledged.
type soakClient struct {
	sh    *soakHerd
	ids   []string
	last  map[string]soakTm
	acked map[string]soakAck // the newest acknowledged update of each client

	sent, ackedN, whatsats, failed int
}

func (c *soakClient) run(stop <-chan struct{}) {
	c.last = make(map[string]soakTm)
	names := make([]string, 0, len(c.sh.addr))
	for n := range c.sh.addr {
		names = append(names, n)
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := c.ids[rand.N(len(c.ids))]
		addr := c.sh.addr[names[rand.N(len(names))]]
		if _, ok := c.acked[id]; ok && rand.N(6) == 0 {
			c.whatsats++
			if _, err := testutil.TryExchange(addr, "WHATSAT "+id+" 5 2\n"); err != nil {
				c.failed++
			}
			continue
		}
		now := time.Now()
		tm := soakTm{now.Unix(), int64(now.Nanosecond())}
		if l := c.last[id]; tm.Compare(l) <= 0 {
			tm = soakTm{l.sec, l.nsec + 1}
			if tm.nsec == 1e9 {
				tm = soakTm{tm.sec + 1, 0}
			}
		}
		c.last[id] = tm
		c.sent++
		got, err := soakExchange(addr, fmt.Sprintf("IAMAT %s +%d.5-%d.5 %d.%09d\n", id, rand.N(80), rand.N(170), tm.sec, tm.nsec))
		if err != nil || !strings.HasPrefix(got, "AT ") {
			c.failed++
			continue
		}
		line := strings.TrimSuffix(got, "\n")
		c.ackedN++
		if a, ok := c.acked[id]; !ok || tm.Compare(a.tm) > 0 {
			c.acked[id] = soakAck{line, tm}
		}
		time.Sleep(time.Millisecond)
	}
}

// soakExchange sends one line on a connection of its own and returns the first line of the
// reply: what a client that read its AT reply has read.
func soakExchange(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// soakProxy forwards the connections made to it to target, until cut: then it resets every
// connection it holds, both ways, and resets new ones as it accepts them, until healed. A
// reset from one side is forwarded as a reset to the other, after the bytes read before it.
type soakProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]net.Conn // each accepted connection and its upstream
}

func startSoakProxy(t *testing.T, target string) *soakProxy {
	p := &soakProxy{ln: testutil.Listen(t), target: target, conns: map[net.Conn]net.Conn{}}
	go p.accept()
	t.Cleanup(func() {
		p.ln.Close()
		p.setCut(true)
	})
	return p
}

func (p *soakProxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(down)
	}
}

func (p *soakProxy) serve(down net.Conn) {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if cut {
		reset(down)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		reset(down)
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		reset(down)
		reset(up)
		return
	}
	p.conns[down] = up
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, down) })
	wg.Go(func() { pipe(down, up) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, down)
	p.mu.Unlock()
	down.Close()
	up.Close()
}

// pipe copies from src to dst; at src's end it half-closes dst, and at a reset (or any other
// error) it resets dst.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		dst.(*net.TCPConn).CloseWrite()
		return
	}
	if !errors.Is(err, net.ErrClosed) { // a reset, or another failure; ErrClosed: cut here
		reset(dst)
	}
}

// setCut cuts the proxy (every connection reset, new ones too) or heals it.
func (p *soakProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for down, up := range p.conns {
			reset(down)
			reset(up)
		}
	}
}

// reset closes c with a reset (SO_LINGER 0), as a failed network or a killed peer does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
