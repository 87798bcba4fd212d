package asyncio_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/bench/baseline/server"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places/fake"
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
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("herd server %s: shutdown: %v", name, err)
			}
		})
	}
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
// once with the reactor servers of package herd and once with the goroutine baseline, and
// checks that updates cross between the two implementations both ways, relayed by either,
// that concurrent updates converge by the newer rule, and that a Go server's resync brings a
// restarted Python server up to date.
func TestMixedHerd(t *testing.T) {
	needPython(t)
	f := fake.New(fake.Options{Results: 2})
	base, err := f.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, impl := range []struct {
		name  string
		start goServer
	}{
		{"herd", startHerd},
		{"baseline", startBaseline},
	} {
		t.Run(impl.name, func(t *testing.T) {
			hill, jaquez, smith, singleton := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
			cfg := herdConfig{
				Provider: "google", URL: base, Timeout: "2s",
				Limits: "backoff_base = \"20ms\"\nbackoff_cap = \"200ms\"",
				Nodes: []node{
					{Name: "Hill", Addr: hill, PeerAddr: freeAddr(t), Peers: []string{"Jaquez"}},
					{Name: "Jaquez", Addr: jaquez, Plain: true, Peers: []string{"Smith"}},
					{Name: "Smith", Addr: smith, PeerAddr: freeAddr(t), Peers: []string{"Singleton"}},
					{Name: "Singleton", Addr: singleton, Plain: true},
				},
			}
			path := cfg.write(t)
			stopJaquez := startPython(t, path, "Jaquez")
			startPython(t, path, "Singleton")
			impl.start(t, path, "Hill")
			impl.start(t, path, "Smith")
			all := []string{hill, jaquez, smith, singleton}

			// Go -> Python -> Go -> Python.
			at := strings.TrimSuffix(exchange(t, hill, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"), "\n")
			if !strings.HasPrefix(at, "AT Hill ") {
				t.Fatalf("Hill answered %q", at)
			}
			for _, a := range all {
				waitFor(t, "Hill's update at "+a, func() bool { return knows(a, "kiwi", at) })
			}
			// Python -> Go -> Python -> Go, replacing the record (a newer time).
			at2 := strings.TrimSuffix(exchange(t, singleton, "IAMAT kiwi +1-1 1621464827.959498504\n"), "\n")
			for _, a := range all {
				waitFor(t, "Singleton's update at "+a, func() bool { return knows(a, "kiwi", at2) })
			}
			// The Go server answers a WHATSAT for the client with Google's bytes.
			got := exchange(t, hill, "WHATSAT kiwi 10 1\n")
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
					out, _ := tryExchange(a, "IAMAT race +2+2 1700000000.5\n")
					race[i] = strings.TrimSuffix(out, "\n")
				}()
			}
			wg.Wait()
			if !strings.HasPrefix(race[0], "AT Hill ") || !strings.HasPrefix(race[1], "AT Singleton ") {
				t.Fatalf("replies %q", race)
			}
			for _, a := range all {
				waitFor(t, "convergence at "+a, func() bool { return knows(a, "race", race[1]) })
			}

			// A Python server that restarts learns what it missed from Hill's resync.
			stopJaquez()
			at3 := strings.TrimSuffix(exchange(t, hill, "IAMAT missed +3+3 5\n"), "\n")
			startPython(t, path, "Jaquez")
			waitFor(t, "Hill's resync to the restarted Jaquez", func() bool {
				return knows(jaquez, "missed", at3) && knows(jaquez, "kiwi", at2) && knows(jaquez, "race", race[1])
			})
		})
	}
}
