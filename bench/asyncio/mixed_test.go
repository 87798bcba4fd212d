package asyncio_test

import (
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/herd-project/herd/bench/baseline/server"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// goServer starts the Go server called name of the config at path, and returns a function
// that stops it (also run when the test ends).
type goServer func(t *testing.T, path, name string) (stop func())

// startHerd runs a reactor server of package herd in this process.
func startHerd(t *testing.T, path, name string) (stop func()) {
	t.Helper()
	cfg, err := herd.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := herd.NewServer(cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("herd server %s: %v (port taken?)", name, err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { testutil.Stop(t, s.Shutdown) }) }
	t.Cleanup(stop)
	return stop
}

// startBaseline runs a goroutine baseline server (bench/baseline/server) in this process.
func startBaseline(t *testing.T, path, name string) (stop func()) {
	t.Helper()
	cfg, err := herd.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := herd.NewProvider(cfg.Places)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, name, prov, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(cfg.Server(name).Addr); err != nil {
		t.Fatalf("baseline server %s: %v (port taken?)", name, err)
	}
	s.Start()
	var once sync.Once
	stop = func() { once.Do(func() { s.Close() }) }
	t.Cleanup(stop)
	return stop
}

// TestMixedHerd runs a chain Hill (Go) - Jaquez (Python) - Smith (Go) - Singleton (Python),
// with the reactor servers of package herd and with the goroutine baseline, each with the
// Python servers of either design (server.py, best.py), and
// checks that updates cross between the two implementations both ways, relayed by either,
// that concurrent updates converge by the newer rule, and that a Go server's resync brings a
// restarted Python server up to date.
func TestMixedHerd(t *testing.T) {
	needPython(t)
	_, base := fake.StartTest(t, fake.Options{Results: 2})
	for _, impl := range []struct {
		name  string
		start goServer
	}{
		{"herd", startHerd},
		{"baseline", startBaseline},
	} {
		t.Run(impl.name, func(t *testing.T) {
			eachDesign(t, func(t *testing.T, script string) {
				hill, jaquez, smith, singleton := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
				cfg := testutil.Config{
					PlacesURL: base, PlacesTimeout: "2s",
					Limits: "backoff_base = \"20ms\"\nbackoff_cap = \"200ms\"",
					Nodes: []testutil.Node{
						{Name: "Hill", Addr: hill, PeerAddr: testutil.FreeAddr(t), Peers: []string{"Jaquez"}},
						{Name: "Jaquez", Addr: jaquez, Plain: true, Peers: []string{"Smith"}},
						{Name: "Smith", Addr: smith, PeerAddr: testutil.FreeAddr(t), Peers: []string{"Singleton"}},
						{Name: "Singleton", Addr: singleton, Plain: true},
					},
				}
				path := cfg.Write(t)
				jaq := startScript(t, script, path, "Jaquez")
				startScript(t, script, path, "Singleton")
				impl.start(t, path, "Hill")
				impl.start(t, path, "Smith")
				all := []string{hill, jaquez, smith, singleton}

				// Go -> Python -> Go -> Python.
				at := strings.TrimSuffix(testutil.Exchange(t, hill, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"), "\n")
				if !strings.HasPrefix(at, "AT Hill ") {
					t.Fatalf("Hill answered %q", at)
				}
				for _, a := range all {
					testutil.WaitFor(t, "Hill's update at "+a, func() bool { return testutil.Knows(a, "kiwi", at) })
				}
				// Python -> Go -> Python -> Go, replacing the record (a newer time).
				at2 := strings.TrimSuffix(testutil.Exchange(t, singleton, "IAMAT kiwi +1-1 1621464827.959498504\n"), "\n")
				for _, a := range all {
					testutil.WaitFor(t, "Singleton's update at "+a, func() bool { return testutil.Knows(a, "kiwi", at2) })
				}
				// The Go server answers a WHATSAT for the client with Google's bytes.
				got := testutil.Exchange(t, hill, "WHATSAT kiwi 10 1\n")
				if !strings.HasPrefix(got, at2+"\n{\n   \"html_attributions\" : [],") || !strings.HasSuffix(got, "}\n\n") {
					t.Errorf("Hill's WHATSAT reply: %q", got)
				}

				// Updates at both ends with the same client time: every server converges on the
				// record with the larger AT line, Singleton's.
				var wg sync.WaitGroup
				var race [2]string
				for i, a := range []string{hill, singleton} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						out, _ := testutil.TryExchange(a, "IAMAT race +2+2 1700000000.5\n")
						race[i] = strings.TrimSuffix(out, "\n")
					}()
				}
				wg.Wait()
				if !strings.HasPrefix(race[0], "AT Hill ") || !strings.HasPrefix(race[1], "AT Singleton ") {
					t.Fatalf("replies %q", race)
				}
				for _, a := range all {
					testutil.WaitFor(t, "convergence at "+a, func() bool { return testutil.Knows(a, "race", race[1]) })
				}

				// A Python server that restarts learns what it missed from Hill's resync.
				jaq.Stop(t, syscall.SIGTERM)
				at3 := strings.TrimSuffix(testutil.Exchange(t, hill, "IAMAT missed +3+3 5\n"), "\n")
				startScript(t, script, path, "Jaquez")
				testutil.WaitFor(t, "Hill's resync to the restarted Jaquez", func() bool {
					return testutil.Knows(jaquez, "missed", at3) && testutil.Knows(jaquez, "kiwi", at2) && testutil.Knows(jaquez, "race", race[1])
				})
			})
		})
	}
}
