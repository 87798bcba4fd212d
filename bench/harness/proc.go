package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herd-project/herd/internal/ephemeral"
)

// proc is one started server process. Its stdout and stderr go to a log file in the work dir.
type proc struct {
	name string
	addr string // where it listens, for the readiness check
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts argv (argv[0] a path) with output to logPath.
func startProc(name, addr, logPath, dir string, env []string, argv ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("harness: start %s: %w", name, err)
	}
	p := &proc{name: name, addr: addr, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitReady dials the process's address until it accepts, the process exits or the timeout
// passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	return p.waitListening(ctx, p.addr, timeout)
}

// waitListening dials addr, served by the process, until it accepts, the process exits or the
// timeout passes.
func (p *proc) waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (%v): %s", p.name, addr, p.err, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v: %s", p.name, addr, timeout, p.tail())
		}
	}
}

// stop asks the process to stop (SIGTERM), and kills it after 5 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// tail returns the end of the process's output, on one line.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	s := strings.ReplaceAll(string(b), "\n", " | ")
	if s == "" {
		return "(no output)"
	}
	return s
}

// portRange is the range every port the harness listens on, or has a server listen on, comes
// from: lo to hi, both included.
type portRange struct{ lo, hi int }

func (r portRange) String() string { return fmt.Sprintf("%d-%d", r.lo, r.hi) }

// parsePorts reads a -ports value, "LO-HI".
func parsePorts(s string) (portRange, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case !ok || err1 != nil || err2 != nil:
		return portRange{}, fmt.Errorf("harness: -ports %q: want LO-HI, such as 20000-29999", s)
	case lo < 1 || hi > 65535 || lo > hi:
		return portRange{}, fmt.Errorf("harness: -ports %q: want 1 <= LO <= HI <= 65535", s)
	case hi-lo+1 < minPorts:
		return portRange{}, fmt.Errorf("harness: -ports %q: %d ports, want at least %d (a run's herds hold about 25 at once)", s, hi-lo+1, minPorts)
	}
	return portRange{lo, hi}, nil
}

// minPorts is the smallest range -ports takes: a chain of nine servers with peer ports, admin
// listeners and a probe, beside ports not yet released by the run before.
const minPorts = 100

// ports is where freePort takes its ports from: without -ports, from 10000 to below the
// kernel's ephemeral range, so that the outgoing connections of a run (10,000 clients, links)
// can never hold a port a server is about to bind (the kernel picks when that range is small).
var ports atomic.Pointer[ephemeral.Ports]

func init() { ports.Store(ephemeral.Below()) }

// setPorts makes freePort take its ports from r. Any goroutine, before the first freePort.
func setPorts(r portRange) { ports.Store(ephemeral.NewPorts(r.lo, r.hi)) }

// freePort returns a loopback port of the range that was free a moment ago, in turn from a
// random start (ephemeral.Ports), so that one run's servers do not get the ports the last
// run's are still releasing.
func freePort() (int, error) {
	p, err := ports.Load().Next()
	if err != nil {
		return 0, fmt.Errorf("harness: %w", err)
	}
	return p, nil
}

// raiseFileLimit raises this process's soft open-file limit to its hard limit.
func raiseFileLimit() error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	rl.Cur = rl.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
}

// runCmd runs a command to completion and returns its combined output.
func runCmd(ctx context.Context, dir string, timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return string(out), fmt.Errorf("%s: timed out after %v", strings.Join(argv, " "), timeout)
	}
	return string(out), err
}

// firstLine returns the first non-empty line of s, shortened.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			return l
		}
	}
	return ""
}

// cpuSeconds returns the CPU time (user + system) process pid has used, from /proc/pid/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15, in clock ticks of 1/100 s) from a
// /proc/pid/stat line; the command name in parentheses may hold spaces.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("harness: bad /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, errors.New("harness: short /proc stat")
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("harness: bad /proc stat times")
	}
	return (u + s) / 100, nil
}

// machineBusy returns the CPU seconds all cores have spent running processes since boot
// (user, nice and system time), from the first line of /proc/stat.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseStatBusy(string(b))
}

// parseStatBusy reads the "cpu" line of /proc/stat (clock ticks of 1/100 s: user nice system
// idle iowait irq softirq steal ...) and returns user+nice+system. Interrupt and softirq time
// (loopback's packet processing may land there, charged to no process) and steal are left
// out, so that what is not the measured processes' own is other processes' work.
func parseStatBusy(stat string) (float64, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("harness: bad /proc/stat")
	}
	busy := 0.0
	for _, v := range f[1:4] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, errors.New("harness: bad /proc/stat")
		}
		busy += n
	}
	return busy / 100, nil
}
