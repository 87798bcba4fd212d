package asyncio_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
)

const python = "/usr/bin/python3"

// needPython skips the test when Debian's Python or aiohttp is missing (CI installs both:
// apt-get install python3 python3-aiohttp python3-uvloop).
func needPython(t *testing.T, modules ...string) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("skipping: %s not found (apt-get install python3 python3-aiohttp)", python)
	}
	for _, m := range append([]string{"aiohttp"}, modules...) {
		if out, err := exec.Command(python, "-c", "import "+m).CombinedOutput(); err != nil {
			t.Skipf("skipping: %s cannot import %s (apt-get install python3-%s): %v\n%s", python, m, m, err, out)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago. The port is
// closed again before the server under test binds it, so another process could take it in
// between: a small race that a test run on a busy machine may lose (the server then fails to
// start and the test says so).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// node is one server of a test herd.
type node struct {
	Name     string
	Addr     string
	PeerAddr string // a Go server's peer port ("": the default, the client port + 10000)
	Plain    bool   // a Python server: linked with bare AT lines on its client port
	Peers    []string
}

// herdConfig is a test herd's config.
type herdConfig struct {
	Provider string // "google" (with URL) or "offline"
	URL      string
	Timeout  string
	Limits   string // TOML lines for [limits] (the Python server reads max_line only)
	Nodes    []node
}

// write writes the config as TOML in a temporary directory and returns its path.
func (c herdConfig) write(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[places]\nprovider = %q\nurl = %q\nkey = \"test-key\"\n", c.Provider, c.URL)
	timeout := c.Timeout
	if timeout == "" {
		timeout = "5s"
	}
	fmt.Fprintf(&b, "timeout = %q\n\n[log]\ndir = \"off\"\n\n", timeout)
	if c.Limits != "" {
		fmt.Fprintf(&b, "[limits]\n%s\n\n", c.Limits)
	}
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "[[server]]\nname = %q\naddr = %q\n", n.Name, n.Addr)
		if n.PeerAddr != "" {
			fmt.Fprintf(&b, "peer_addr = %q\n", n.PeerAddr)
		}
		if n.Plain {
			b.WriteString("link = \"plain\"\n")
		}
		b.WriteString("peers = [")
		for i, p := range n.Peers {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", p)
		}
		b.WriteString("]\n\n")
	}
	path := filepath.Join(t.TempDir(), "herd.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPython runs server.py for the named server and returns once it listens. The process
// is stopped (SIGTERM, then SIGKILL) by the returned function or when the test ends.
func startPython(t *testing.T, config, name string, extra ...string) (stop func()) {
	t.Helper()
	args := append([]string{"server.py", "--config", config}, extra...)
	args = append(args, name)
	cmd := exec.Command(python, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), name+" listening on ") {
				close(ready)
				signalled = true
			}
		}
		cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("server.py %s exited before listening (port taken?): %s", name, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("server.py %s did not listen within 20s: %s", name, stderr.String())
	}
	return stop
}

// exchange sends input on a new connection, half-closes it, and returns everything the server
// writes until it closes the connection.
func exchange(t *testing.T, addr, input string) string {
	t.Helper()
	out, err := tryExchange(addr, input)
	if err != nil {
		t.Fatalf("exchange with %s: %v (got %q)", addr, err, out)
	}
	return out
}

func tryExchange(addr, input string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, input); err != nil {
		return "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// knows reports whether the server at addr answers WHATSAT client with the AT line want.
func knows(addr, client, want string) bool {
	out, err := tryExchange(addr, "WHATSAT "+client+" 1 1\n")
	return err == nil && strings.HasPrefix(out, want+"\n")
}

// nanos returns t as nanoseconds since the epoch.
func nanos(t codec.Time) int64 { return t.Sec*1e9 + int64(t.Nsec) }

// posix formats a time.Time as a POSIX time with 9 fraction digits.
func posix(tm time.Time) string {
	return fmt.Sprintf("%d.%09d", tm.Unix(), tm.Nanosecond())
}

// checkAT checks that reply is the AT line for the IAMAT "IAMAT client location ctime"
// received by server between before and after: the skew plus the client's time must be a
// receive time inside that window.
func checkAT(reply, server, client, location, ctime string, before, after time.Time) error {
	f := strings.Fields(strings.TrimSuffix(reply, "\n"))
	if !strings.HasSuffix(reply, "\n") || strings.Count(reply, "\n") != 1 || len(f) != 6 {
		return fmt.Errorf("reply %q is not one AT line", reply)
	}
	if f[0] != "AT" || f[1] != server || f[3] != client || f[4] != location || f[5] != ctime {
		return fmt.Errorf("reply %q does not echo AT %s <skew> %s %s %s", reply, server, client, location, ctime)
	}
	skew := f[2]
	if len(skew) < 12 || (skew[0] != '+' && skew[0] != '-') || skew[len(skew)-10] != '.' {
		return fmt.Errorf("skew %q is not signed with 9 fraction digits", skew)
	}
	s, err := codec.ParseTime([]byte(skew))
	if err != nil {
		return fmt.Errorf("skew %q: %v", skew, err)
	}
	ct, err := codec.ParseTime([]byte(ctime))
	if err != nil {
		return err
	}
	recv := nanos(ct) + nanos(s)
	if recv < before.UnixNano() || recv > after.UnixNano() {
		return errors.New("skew + client time = " + time.Unix(0, recv).String() +
			", not between the request and the reply")
	}
	return nil
}

// syncBuffer is a strings.Builder that a process may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
