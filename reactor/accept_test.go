package reactor

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// acceptChildEnv makes the test binary run as the child of TestAcceptSurvivesFileLimit: an
// echo loop under a small open file limit.
const acceptChildEnv = "REACTOR_ACCEPT_CHILD"

// TestAcceptSurvivesFileLimit is the regression test for a connection burst that killed the
// loop: gnet's acceptor ends the engine when accept fails with EMFILE. A child process runs an
// echo loop under RLIMIT_NOFILE 48 and takes a burst of 200 connections; it must stay up, back
// off (the accept errors are counted), and echo again once the burst is gone.
func TestAcceptSurvivesFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), acceptChildEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	exited := make(chan struct{}) // closed once the child has exited, with waitErr set
	var waitErr error
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	next := func(what string) string {
		t.Helper()
		select {
		case s, ok := <-lines:
			if !ok {
				t.Fatalf("child ended before %s; stderr:\n%s", what, stderr.String())
			}
			return s
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s from the child; stderr:\n%s", what, stderr.String())
		}
		return ""
	}
	addr, ok := strings.CutPrefix(next("address"), "addr ")
	if !ok {
		t.Fatalf("child said %q, want its address", addr)
	}
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	var burst []net.Conn
	for range 200 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			select {
			case <-exited:
				t.Fatalf("the child exited during the burst: %v; stderr:\n%s", waitErr, stderr.String())
			case <-time.After(time.Second):
			}
			t.Fatalf("dial %d of the burst: %v", len(burst), err)
		}
		burst = append(burst, c)
	}
	// Each connection the child took and echoes proves it ran on; give it time to hit the limit.
	echoOK := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return false
		}
		b := make([]byte, 5)
		_, err := io.ReadFull(c, b)
		return err == nil && string(b) == "ping\n"
	}
	// Right at the limit an accepted connection may be closed (gnet's duplicate of it found no
	// descriptor: see listeners.go), so the proof is the first connection that echoes, in
	// order: a closed one fails at once, and the ones served come before the backlog's.
	echoed := false
	for _, c := range burst {
		if echoed = echoOK(c); echoed {
			break
		}
	}
	if !echoed {
		t.Fatal("no connection of the burst got an echo")
	}
	select {
	case <-exited:
		t.Fatalf("the child exited during the burst: %v; stderr:\n%s", waitErr, stderr.String())
	case <-time.After(200 * time.Millisecond):
	}
	for _, c := range burst {
		c.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("the child exited after the burst: %v; stderr:\n%s", waitErr, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			ok := echoOK(c)
			c.Close()
			if ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no echo after the burst; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stdin.Close() // the child stops its loop and reports
	report := next("report")
	var n uint64
	if _, err := fmt.Sscanf(report, "accept_errors %d", &n); err != nil || n == 0 {
		t.Errorf("child reported %q, want accept errors counted", report)
	}
	t.Logf("a burst of %d connections under RLIMIT_NOFILE 48: %d accept errors (accept, or gnet's duplicate of a descriptor, out of descriptors)", len(burst), n)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the child did not exit after its report")
	}
	if waitErr != nil {
		t.Errorf("child: %v; stderr:\n%s", waitErr, stderr.String())
	}
}

// TestAcceptChild is the child of TestAcceptSurvivesFileLimit; it does nothing in a normal run.
func TestAcceptChild(t *testing.T) {
	if os.Getenv(acceptChildEnv) == "" {
		t.Skip("the child of TestAcceptSurvivesFileLimit")
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = 48
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	l := New(Options{})
	if err := l.Listen("127.0.0.1:0", func() Protocol { return &echo{} }); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("addr %s\n", l.Addrs()[0])
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-l.Done():
		t.Fatalf("the loop ended on its own: %v", l.Wait())
	}
	l.Stop()
	<-l.Done()
	fmt.Printf("accept_errors %d\n", l.AcceptErrors())
}
