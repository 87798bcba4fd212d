// Package netns builds, for a test, a small network of hosts in Linux network namespaces: one
// namespace per host, each with its own address on one Ethernet segment (a veth pair from the
// host to a bridge in a hub namespace, which is also where the test's clients live), so that a
// herd's servers can run on hosts of their own, be partitioned by taking a link down, and tell
// their neighbours' hosts from strangers'.
//
// It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's ip. Tests that use it are
// off unless the environment has HERD_NETNS=1, which scripts/test.sh sets when it runs as
// root: then Need fails the test if a namespace cannot be made, rather than skip it
// silently; otherwise it skips with the reason.
//
// Everything a Lab makes is removed when its test ends, failed or not: processes started
// with Host.Command are killed first (testutil.Start's cleanup, registered after the Lab's),
// then the namespaces are deleted, which takes their interfaces with them. Names are unique
// to the process (its PID), so concurrent test runs on one machine never meet; and the
// processes a Lab starts get SIGKILL if the test process dies, so that a test binary killed
// on a timeout leaves no server running. Addresses are private to the Lab's namespaces
// (10.77.0.0/24), so they cannot clash with the machine's or another run's either.
//
// Host.Dial opens a connection from inside a host's namespace, on a thread of the test
// process that joins the namespace for the connect and returns to its own before it is
// given back to the runtime; the connection, once made, is used from any goroutine.
package netns

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Env is the environment variable that turns namespace tests on ("1").
const Env = "HERD_NETNS"

// Need skips t unless namespace tests are on (Env) and this process may make namespaces:
// when not root it skips, saying why; as root with Env on, a namespace that cannot be made
// fails t. Call it first in a test, from the test's goroutine.
func Need(t testing.TB) {
	t.Helper()
	if os.Getenv(Env) != "1" {
		t.Skipf("network namespace tests are off: set %s=1 as root (scripts/test.sh does when run as root)", Env)
	}
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces need Linux")
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s=1 but not root: network namespaces cannot be made, skipping", Env)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("%s=1 as root, but iproute2's ip is not installed (scripts/deps.sh installs it): %v", Env, err)
	}
	probe := fmt.Sprintf("herdt%d-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Fatalf("%s=1 as root, but ip netns add fails: %v: %s", Env, err, bytes.TrimSpace(out))
	}
	exec.Command("ip", "netns", "del", probe).Run()
}

// The Lab's segment: host i has the address 10.77.0.(i+1).
const (
	subnet = "10.77.0."
	// HubIP is the hub's address, from which the test's clients connect.
	HubIP = subnet + "254"
)

// Lab is a set of hosts in namespaces on one segment, for one test.
type Lab struct {
	t      testing.TB
	prefix string
	Hub    *Host // the bridge's namespace: the test's clients, on a host that is no server's
	Hosts  []*Host
	byName map[string]*Host
}

// Host is one namespace of a Lab, with its address.
type Host struct {
	lab  *Lab
	Name string // the name the test gave it
	NS   string // the namespace's name (ip netns)
	IP   string // its address on the segment
	port string // its veth end in the hub, "" for the hub
}

// New makes a Lab with a host for each name (host i has the address 10.77.0.(i+1)) and the
// hub (HubIP), and removes them when the test ends. It fails t if any step does. Call Need
// first. The methods of a Lab and its Hosts that can fail the test (New, Host, Cut, Heal)
// are for the test's goroutine; the others, for any.
func New(t testing.TB, names ...string) *Lab {
	t.Helper()
	l := &Lab{t: t, byName: map[string]*Host{}}
	if len(names) > 250 {
		t.Fatalf("netns: %d hosts, at most 250", len(names))
	}
	for i := 0; ; i++ { // a process may make several Labs: the first free prefix
		p := fmt.Sprintf("herdt%d-%d-", os.Getpid(), i)
		if _, err := os.Stat("/run/netns/" + p + "hub"); os.IsNotExist(err) {
			l.prefix = p
			break
		}
	}
	l.Hub = &Host{lab: l, Name: "hub", NS: l.prefix + "hub", IP: HubIP}
	t.Cleanup(l.remove) // first registered, so it runs after the cleanups of what runs in it
	l.ip("netns", "add", l.Hub.NS)
	l.ip("-n", l.Hub.NS, "link", "set", "lo", "up")
	l.ip("-n", l.Hub.NS, "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.Hub.NS, "addr", "add", HubIP+"/24", "dev", "br0")
	l.ip("-n", l.Hub.NS, "link", "set", "br0", "up")
	for i, name := range names {
		h := &Host{lab: l, Name: name, NS: fmt.Sprintf("%s%d", l.prefix, i), IP: fmt.Sprintf("%s%d", subnet, i+1), port: fmt.Sprintf("p%d", i)}
		l.ip("netns", "add", h.NS)
		l.ip("-n", h.NS, "link", "set", "lo", "up")
		l.ip("-n", l.Hub.NS, "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
		l.ip("-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
		l.ip("-n", h.NS, "link", "set", "eth0", "up")
		l.ip("-n", l.Hub.NS, "link", "set", h.port, "master", "br0", "up")
		l.Hosts = append(l.Hosts, h)
		l.byName[name] = h
	}
	return l
}

// Host returns the host called name, failing the test if there is none.
func (l *Lab) Host(name string) *Host {
	h := l.byName[name]
	if h == nil {
		l.t.Fatalf("netns: no host %q", name)
	}
	return h
}

// ip runs ip with args, failing the test if it fails.
func (l *Lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// remove deletes every namespace of the Lab (their interfaces go with them), and reports
// one that stays.
func (l *Lab) remove() {
	for _, h := range append(l.Hosts, l.Hub) {
		if out, err := exec.Command("ip", "netns", "del", h.NS).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("No such file")) {
			l.t.Errorf("netns: removing %s: %v: %s", h.NS, err, bytes.TrimSpace(out))
		}
	}
	if left := l.Namespaces(); len(left) > 0 {
		l.t.Errorf("netns: namespaces left behind: %v", left)
	}
}

// Namespaces returns the names of the Lab's namespaces that exist now.
func (l *Lab) Namespaces() []string {
	entries, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), l.prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// Command returns a command that runs name with args in the host's namespace (ip netns
// exec, which execs it: the process is the command's own). It gets SIGKILL if the test
// process dies.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Cut takes the host's link to the bridge down, at the bridge's end: the host reaches no
// other, nor they it, while its own interface stays up, so a client on the host itself
// still reaches its server.
func (h *Host) Cut() { h.lab.ip("-n", h.lab.Hub.NS, "link", "set", h.port, "down") }

// Heal brings the host's link to the bridge back up.
func (h *Host) Heal() { h.lab.ip("-n", h.lab.Hub.NS, "link", "set", h.port, "up") }

// Dial connects to addr over TCP from inside the host's namespace, within timeout. Any
// goroutine.
func (h *Host) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// do runs f on a thread that has joined the host's namespace. The socket a dial creates
// there stays in it. The thread goes back to its own namespace before the runtime may use it
// for anything else; if it cannot, it ends with the goroutine (a locked thread does).
func (h *Host) do(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: %w", err)
			return
		}
		defer unix.Close(own)
		target, err := unix.Open("/run/netns/"+h.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: %s: %w", h.NS, err)
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: enter %s: %w", h.NS, err)
			return
		}
		err = f()
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}
