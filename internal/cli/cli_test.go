package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// returning is a command whose Run returns err.
func returning(err error, o Options) func() {
	return func() { Main(func(context.Context, []string, io.Writer, io.Writer) error { return err }, o) }
}

// commands are the bodies the test binary runs as a command when CLI_TEST_COMMAND names one.
var commands = map[string]func(){
	"ok":    returning(nil, Options{}),
	"help":  returning(fmt.Errorf("parsing: %w", flag.ErrHelp), Options{}),
	"fail":  returning(errors.New("cmd: it broke"), Options{}),
	"usage": returning(errors.New("cmd: bad flag"), Options{ExitCode: func(error) int { return 6 }}),
	// stopping waits for the first signal, then stops forever: only a hard stop ends it.
	"stopping": func() {
		Main(func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "running")
			<-ctx.Done()
			fmt.Fprintln(stdout, "stopping")
			select {}
		}, Options{HardStop: true})
	},
}

func TestMain(m *testing.M) {
	if c := commands[os.Getenv("CLI_TEST_COMMAND")]; c != nil {
		c()
	}
	os.Exit(m.Run())
}

// command runs the test binary as the named command.
func command(t *testing.T, name string) *testutil.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "CLI_TEST_COMMAND="+name)
	cmd.Dir = filepath.Dir(exe)
	return testutil.Start(t, cmd)
}

func TestMainExit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		code   int
		stderr string
	}{
		{"ok", 0, ""},
		{"help", 0, ""},
		{"fail", 1, "cmd: it broke\n"},
		{"usage", 6, "cmd: bad flag\n"},
	} {
		p := command(t, tt.name)
		if code := p.Wait(t); code != tt.code || p.Stderr.String() != tt.stderr {
			t.Errorf("%s: exit %d, stderr %q; want %d, %q", tt.name, code, p.Stderr.String(), tt.code, tt.stderr)
		}
	}
}

// The first signal ends Run's context; with HardStop a second one ends the process while Run
// is still stopping.
func TestMainHardStop(t *testing.T) {
	p := command(t, "stopping")
	testutil.WaitFor(t, "the command to run", func() bool { return strings.Contains(p.Stdout.String(), "running") })
	p.Cmd.Process.Signal(syscall.SIGTERM)
	testutil.WaitFor(t, "the command to stop", func() bool { return strings.Contains(p.Stdout.String(), "stopping") })
	p.Stop(t, syscall.SIGTERM)
	if sig := p.Signal(); sig != syscall.SIGTERM {
		t.Errorf("after the second signal: %v, want the process ended by SIGTERM", p.Cmd.ProcessState)
	}
}

func TestStartCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := StartCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("no profile written: %v", err)
	}
	if _, err := StartCPUProfile(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Error("a profile in a missing directory: no error")
	}
}

func TestFlagSet(t *testing.T) {
	var out strings.Builder
	fs := FlagSet("cmd", &out, func(w io.Writer) { io.WriteString(w, "usage: cmd [-n N]\n") })
	fs.Int("n", 1, "how many")
	if err := fs.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if s := out.String(); !strings.HasPrefix(s, "usage: cmd [-n N]\n") || !strings.Contains(s, "how many (default 1)") {
		t.Errorf("-h printed %q, want the usage, then the flags", s)
	}
	out.Reset()
	if err := fs.Parse([]string{"-x"}); err == nil || !strings.Contains(out.String(), "flag provided but not defined: -x") {
		t.Errorf("-x: %v, printed %q", err, out.String())
	}
}
