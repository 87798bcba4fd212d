package testutil

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a child process a test runs, with its output. Stdout is copied in whole lines,
// so a test that polls it never sees half of one.
type Process struct {
	Cmd    *exec.Cmd
	Stdout SyncBuffer
	Stderr SyncBuffer
	done   chan error // holds Wait's result once the process has exited and its output is copied
}

// Start starts cmd (which must not have its Stdout or Stderr set) and kills the process when
// the test ends, if it is still running.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, done: make(chan error, 1)}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.Stdout.Write(append(sc.Bytes(), '\n'))
		}
		p.done <- cmd.Wait() // after the copy: Wait closes the pipe
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		p.wait(Patience)
	})
	return p
}

// wait returns Wait's result, or exited false if the process is still running after d.
func (p *Process) wait(d time.Duration) (exited bool, err error) {
	select {
	case err := <-p.done:
		p.done <- err // for the next caller
		return true, err
	default:
	}
	if d <= 0 {
		return false, nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	case <-timer.C:
		return false, nil
	}
}

// Exited reports whether the process has exited. Any goroutine may call it.
func (p *Process) Exited() bool {
	exited, _ := p.wait(0)
	return exited
}

// Stop sends sig to the process and returns its exit code, failing t if it does not exit
// within Patience.
func (p *Process) Stop(t testing.TB, sig os.Signal) int {
	t.Helper()
	p.Cmd.Process.Signal(sig)
	return p.Wait(t)
}

// Signal returns the signal that ended the process, or 0 if it exited by itself or still
// runs. Any goroutine may call it once Wait or Stop has returned.
func (p *Process) Signal() syscall.Signal {
	if st := p.Cmd.ProcessState; st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// Wait waits for the process to exit and returns its exit code, failing t if it does not
// exit within Patience.
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	exited, err := p.wait(Patience)
	if !exited {
		t.Fatalf("%s did not exit; stdout %q stderr %q", p.Cmd.Path, p.Stdout.String(), p.Stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}
