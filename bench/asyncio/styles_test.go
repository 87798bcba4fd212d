package asyncio_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// pythonStyles are the kinds of Python neighbour a Go server links with: the flags that make
// server.py one, and the link mode the Go servers' config gives it.
var pythonStyles = []struct {
	name  string
	flags []string
	link  string
}{
	// The seed's prototype: floats for time differences, a connection per flood, and any
	// number of lines read from a connection.
	{"seed", []string{"--float-skew"}, herd.LinkPlain},
	// Names appended to the AT lines it floods, to stop loops.
	{"append-name", []string{"--float-skew", "--append-name"}, herd.LinkPlain},
	// One line read from each connection, then closed.
	{"one-line", []string{"--float-skew", "--one-line"}, herd.LinkPlainPerMessage},
}

// convergenceGoal is how soon after its IAMAT's reply an update must be at every server of
// the mixed herd.
const convergenceGoal = 2 * time.Second

// TestMixedHerdStyles runs the default five-server herd with Jaquez and Singleton (neighbours
// of each other and of three Go servers) played by server.py in each style, the other three
// by package herd. From each server in turn a new client, then a client that moves there,
// must reach every server, Go and Python, within convergenceGoal; and an update whose time
// difference Python prints with an exponent reaches every Go server. The convergence times
// are measured and logged for each style (go test -v).
func TestMixedHerdStyles(t *testing.T) {
	needPython(t)
	_, base := fake.StartTest(t, fake.Options{Results: 1})
	topo := herd.DefaultConfig().Servers
	python := []string{"Jaquez", "Singleton"}
	for _, style := range pythonStyles {
		t.Run(style.name, func(t *testing.T) {
			cfg := testutil.Config{PlacesURL: base, PlacesTimeout: "2s", Limits: "backoff_base = \"20ms\"\nbackoff_cap = \"200ms\""}
			addr := map[string]string{}
			for _, s := range topo {
				n := testutil.Node{Name: s.Name, Addr: testutil.FreeAddr(t), Peers: s.Peers}
				if slices.Contains(python, s.Name) {
					n.Link = style.link
				} else {
					n.PeerAddr = testutil.FreeAddr(t)
				}
				addr[s.Name] = n.Addr
				cfg.Nodes = append(cfg.Nodes, n)
			}
			path := cfg.Write(t)
			for _, s := range topo {
				if slices.Contains(python, s.Name) {
					startPython(t, path, s.Name, style.flags...)
				} else {
					startHerd(t, path, s.Name)
				}
			}
			iamat := func(at, client, location, ctime string) string {
				t.Helper()
				got := strings.TrimSuffix(testutil.Exchange(t, addr[at], fmt.Sprintf("IAMAT %s %s %s\n", client, location, ctime)), "\n")
				if !strings.HasPrefix(got, "AT "+at+" ") {
					t.Fatalf("%s answered %q", at, got)
				}
				return got
			}
			// everywhere waits until every server holds line for client, and returns how long
			// after start the last one had it.
			everywhere := func(client, line string, start time.Time) time.Duration {
				t.Helper()
				var last time.Duration
				for _, s := range topo {
					testutil.WaitFor(t, fmt.Sprintf("%s at %s", line, s.Name), func() bool { return testutil.Knows(addr[s.Name], client, line) })
					last = max(last, time.Since(start))
				}
				return last
			}
			// The links are up, and every Python server floods to every Go server: a first
			// update from each server reaches all, with no time limit yet.
			now := time.Now().Unix()
			for _, s := range topo {
				everywhere("warm-"+s.Name, iamat(s.Name, "warm-"+s.Name, "+1+1", strconv.FormatInt(now, 10)), time.Now())
			}

			var times []time.Duration
			check := func(what, client, line string, start time.Time) {
				t.Helper()
				d := everywhere(client, line, start)
				times = append(times, d)
				if d > convergenceGoal {
					t.Errorf("%s: %v until every server had it, want at most %v", what, d, convergenceGoal)
				}
			}
			for i, s := range topo { // a new client at each server, Go and Python
				client := "new-" + s.Name
				start := time.Now()
				check("a new client at "+s.Name, client, iamat(s.Name, client, "+34.068930-118.445127", posix(start.Add(-time.Duration(i)*time.Millisecond))), start)
			}
			for i, s := range topo { // one client that moves from server to server
				start := time.Now()
				loc := fmt.Sprintf("+%d.5-%d.25", 10+i, 100+i)
				check("the client moved to "+s.Name, "mover", iamat(s.Name, "mover", loc, posix(start)), start)
			}
			slices.Sort(times)
			t.Logf("%s: %d updates, convergence at every server: median %v, max %v (goal %v)",
				style.name, len(times), times[len(times)/2].Round(time.Microsecond), times[len(times)-1].Round(time.Microsecond), convergenceGoal)

			// Python prints a difference under 1e-4 s with an exponent ("+5.2e-05"): aim the
			// client's time at Python's clock until one comes, then find it at every server.
			// Each try is a client of its own: the times aimed at may go back.
			var expo, client string
			offset := time.Duration(0)
			tries := 0
			testutil.WaitFor(t, "a time difference Python prints with an exponent", func() bool {
				tries++
				sent := time.Now().Add(offset)
				client = fmt.Sprintf("expo%d", tries)
				line := iamat("Jaquez", client, "+2+2", posix(sent))
				skew := strings.Fields(line)[2]
				if strings.ContainsAny(skew, "eE") {
					expo = line
					return true
				}
				f, err := strconv.ParseFloat(skew, 64)
				if err != nil {
					t.Fatalf("Jaquez's skew %q: %v", skew, err)
				}
				offset += time.Duration(f * float64(time.Second)) // the next one nearer Python's clock
				return false
			})
			start := time.Now()
			check("an exponent from Jaquez ("+strings.Fields(expo)[2]+")", client, expo, start)
			t.Logf("%s: %s after %d tries", style.name, expo, tries)
		})
	}
}

// TestOneLinePeerThousandFloods: a Go server floods 1,000 updates in a row to server.py
// --one-line (it reads one line from a connection and closes it), its neighbour with
// link = "plain-per-message": every one of them reaches it.
func TestOneLinePeerThousandFloods(t *testing.T) {
	needPython(t)
	_, base := fake.StartTest(t, fake.Options{Results: 1})
	cfg := testutil.Config{
		PlacesURL: base,
		Limits:    "backoff_base = \"20ms\"\nbackoff_cap = \"200ms\"",
		Nodes: []testutil.Node{
			{Name: "Hill", Addr: testutil.FreeAddr(t), PeerAddr: testutil.FreeAddr(t), Peers: []string{"Jaquez"}},
			{Name: "Jaquez", Addr: testutil.FreeAddr(t), Link: herd.LinkPlainPerMessage},
		},
	}
	path := cfg.Write(t)
	startPython(t, path, "Jaquez", "--one-line", "--no-log")
	startHerd(t, path, "Hill")
	hill, jaquez := cfg.Nodes[0].Addr, cfg.Nodes[1].Addr
	const n = 1000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "IAMAT f%d +34.068930-118.445127 %d.25\n", i, 1700000000+i)
	}
	out := testutil.Exchange(t, hill, in.String())
	replies := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(replies) != n {
		t.Fatalf("Hill answered %d lines, want %d", len(replies), n)
	}
	// Eight askers at once: each WHATSAT is a connection and a Places call at Jaquez.
	start := time.Now()
	deadline := start.Add(testutil.Patience)
	next := make(chan int)
	var missing atomic.Int32
	var askers sync.WaitGroup
	for range 8 {
		askers.Go(func() {
			for i := range next {
				for !testutil.Knows(jaquez, fmt.Sprintf("f%d", i), replies[i]) {
					if time.Now().After(deadline) {
						missing.Add(1)
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	askers.Wait()
	if m := missing.Load(); m > 0 {
		t.Fatalf("%d of %d floods never reached Jaquez", m, n)
	}
	t.Logf("1,000 floods to a one-line peer: all there %v after the last reply", time.Since(start).Round(time.Millisecond))
}
