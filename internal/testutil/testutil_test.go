package testutil_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/testutil"
)

// A Config renders to TOML that herd reads as the config it describes.
func TestConfigTOML(t *testing.T) {
	c := testutil.Config{
		PlacesURL:     "http://127.0.0.1:9",
		PlacesTimeout: "2s",
		LogDir:        t.TempDir(),
		Limits:        "max_line = 100\nbackoff_base = \"10ms\"",
		Nodes: []testutil.Node{
			{Name: "A", Peers: []string{"B"}, Admin: true},
			{Name: "B", Addr: "127.0.0.1:4000"},
		},
	}
	cfg, err := herd.LoadConfig(c.Write(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, c.TOML())
	}
	a, b := cfg.Server("A"), cfg.Server("B")
	if cfg.Places.Provider != "google" || cfg.Places.URL != c.PlacesURL || cfg.Places.Key != "test-key" ||
		cfg.Places.Timeout.String() != "2s" || cfg.Log.Dir != c.LogDir || cfg.Limits.MaxLine != 100 ||
		a == nil || a.Addr != "127.0.0.1:0" || a.AdminAddr != "127.0.0.1:0" || strings.Join(a.Peers, ",") != "B" ||
		b == nil || b.Addr != "127.0.0.1:4000" || b.AdminAddr != "" {
		t.Errorf("config read back: %+v\n%s", cfg, c.TOML())
	}
	off, err := herd.ParseConfig([]byte(testutil.Config{Nodes: []testutil.Node{{Name: "A"}}}.TOML()), "off.toml")
	if err != nil || off.Places.Provider != "offline" || !off.Log.Off() {
		t.Errorf("zero Config: %+v, %v; want offline Places and no logs", off, err)
	}
}

// lineServer answers every line it reads with "re: " and the line, and closes when its
// client half-closes.
func lineServer(t *testing.T) net.Listener {
	ln := testutil.Listen(t)
	testutil.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			c.Write([]byte("re: " + sc.Text() + "\n"))
		}
	})
	return ln
}

func TestExchangeAndConn(t *testing.T) {
	addr := lineServer(t).Addr().String()
	if got := testutil.Exchange(t, addr, "a\nb\n"); got != "re: a\nre: b\n" {
		t.Errorf("Exchange = %q", got)
	}
	c := testutil.Dial(t, addr)
	c.Send("one\n")
	if got := c.Line(); got != "re: one\n" {
		t.Errorf("Line = %q", got)
	}
	if got := c.Ask("two"); got != "re: two\n" {
		t.Errorf("Ask = %q", got)
	}
	c.Send("three\n")
	c.TCP.CloseWrite()
	if got := c.ReadAll(); got != "re: three\n" {
		t.Errorf("ReadAll = %q", got)
	}
	addr = testutil.FreeAddr(t)
	if !testutil.Refused(addr) {
		t.Errorf("%s not refused", addr)
	}
	if _, err := testutil.TryExchange(addr, "x\n"); err == nil {
		t.Errorf("TryExchange with %s: no error", addr)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b testutil.SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 400 {
		t.Errorf("%d bytes, want 400", n)
	}
}

func TestProcess(t *testing.T) {
	p := testutil.Start(t, exec.Command("sh", "-c", `trap 'exit 7' TERM; echo oops >&2; echo ready; while :; do sleep 0.01; done`))
	testutil.WaitFor(t, "ready", func() bool { return p.Stdout.String() == "ready\n" })
	if p.Exited() {
		t.Fatal("exited early")
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 7 || p.Stderr.String() != "oops\n" || !p.Exited() {
		t.Errorf("exit %d, stderr %q", code, p.Stderr.String())
	}
	if code := testutil.Start(t, exec.Command("sh", "-c", "exit 3")).Wait(t); code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
}

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 5
	if v := testutil.Recv(t, ch, "five"); v != 5 {
		t.Errorf("Recv = %d", v)
	}
	n := 0
	testutil.WaitFor(t, "three polls", func() bool { n++; return n == 3 })
}

// TestFreeAddrBelowEphemeralRange checks that FreeAddr hands out distinct ports that no
// outgoing connection can be given: below the kernel's ephemeral range.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	below := low-10000 >= 1000 // otherwise FreeAddr lets the kernel choose
	seen := map[string]bool{}
	for range 50 {
		addr := testutil.FreeAddr(t)
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if below && (p < 10000 || p >= low) {
			t.Errorf("FreeAddr gave %s, outside 10000-%d", addr, low-1)
		}
		if seen[addr] {
			t.Errorf("FreeAddr gave %s twice", addr)
		}
		seen[addr] = true
	}
}
