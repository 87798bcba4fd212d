package asyncio_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/internal/testutil"
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

// startPython runs server.py for the named server of the config and returns once it
// listens. The process is killed when the test ends if it still runs.
func startPython(t *testing.T, config, name string, extra ...string) *testutil.Process {
	t.Helper()
	return startScript(t, "server.py", config, name, extra...)
}

// designs are the Python servers: the seed's design and the best asyncio design.
var designs = []string{"server.py", "best.py"}

// startScript runs script (server.py or best.py) for the named server of the config and
// returns once it listens. The process is killed when the test ends if it still runs.
func startScript(t *testing.T, script, config, name string, extra ...string) *testutil.Process {
	t.Helper()
	args := append([]string{script, "--config", config}, extra...)
	p := testutil.Start(t, exec.Command(python, append(args, name)...))
	ready := name + " listening on "
	testutil.WaitFor(t, script+" "+name+" to listen", func() bool {
		out := p.Stdout.String()
		return strings.HasPrefix(out, ready) || strings.Contains(out, "\n"+ready) || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("%s %s exited before listening (port taken?): %s", script, name, p.Stderr.String())
	}
	return p
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
