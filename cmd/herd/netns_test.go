package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/netns"
	"github.com/herd-project/herd/internal/testutil"
)

// Tests of the default herd on hosts of their own: each server is a `herd serve` process in a
// network namespace with its own address (internal/netns), as in production, where a
// neighbour's host and a stranger's are told apart and a partition is a link going down.
// They run as root with HERD_NETNS=1 (scripts/test.sh sets it), and skip otherwise.

// nsPort is every server's client port (each host has its own address); the peer ports are
// the default, nsPort + 10000.
const nsPort = 12000

// nsHerd is the default herd, one `herd serve` per host of a Lab.
type nsHerd struct {
	t     *testing.T // the test the processes belong to
	lab   *netns.Lab
	dir   string
	path  string
	topo  []herd.ServerConfig
	procs map[string]*testutil.Process
}

// startNSHerd makes a Lab with a host per server of the default herd and runs each server on
// its host, with extra (TOML tables) added to the config. Everything ends with the test.
func startNSHerd(t *testing.T, extra string) *nsHerd {
	t.Helper()
	netns.Need(t)
	buildHerd(t)
	h := &nsHerd{t: t, dir: t.TempDir(), topo: herd.DefaultConfig().Servers, procs: map[string]*testutil.Process{}}
	var names []string
	for _, s := range h.topo {
		names = append(names, s.Name)
	}
	h.lab = netns.New(t, names...)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[places]\nprovider = \"offline\"\n[log]\ndir = %q\n", filepath.Join(h.dir, "logs"))
	fmt.Fprintf(&cfg, "[limits]\nbackoff_base = \"20ms\"\nbackoff_cap = \"500ms\"\n%s\n", extra)
	for _, s := range h.topo {
		fmt.Fprintf(&cfg, "[[server]]\nname = %q\naddr = %q\npeers = [\"%s\"]\n", s.Name, h.addr(s.Name), strings.Join(s.Peers, `", "`))
	}
	h.path = testutil.WriteFile(t, h.dir, "herd.toml", cfg.String())
	for _, s := range h.topo {
		h.serve(t, s.Name)
	}
	return h
}

// addr returns the client address of server name.
func (h *nsHerd) addr(name string) string {
	for i, s := range h.topo {
		if s.Name == name {
			return fmt.Sprintf("10.77.0.%d:%d", i+1, nsPort)
		}
	}
	return ""
}

// serve starts server name on its host and waits until it listens. The process runs until
// the herd's test ends, whichever (sub)test t started it.
func (h *nsHerd) serve(t *testing.T, name string) {
	t.Helper()
	cmd := h.lab.Host(name).Command(buildHerd(t), "serve", "-config", h.path, name)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), "GOOGLE_PLACES_API_KEY=")
	h.procs[name] = serving(t, testutil.Start(h.t, cmd))
}

// exchange sends input from host from to server at's client port, half-closes, and returns
// what comes back until the server closes.
func (h *nsHerd) exchange(from *netns.Host, at, input string) (string, error) {
	c, err := from.Dial(h.addr(at), testutil.Patience)
	if err != nil {
		return "", err
	}
	return testutil.TryExchangeOn(c, input)
}

// iamat sends an IAMAT for client from host from to server at and returns the AT line of the
// reply, failing the test if there is none.
func (h *nsHerd) iamat(t *testing.T, from *netns.Host, at, client, ctime string) string {
	t.Helper()
	out, err := h.exchange(from, at, fmt.Sprintf("IAMAT %s +34.068930-118.445127 %s\n", client, ctime))
	if err != nil || !strings.HasPrefix(out, "AT "+at+" ") {
		t.Fatalf("IAMAT %s at %s from %s: %q, %v", client, at, from.Name, out, err)
	}
	return strings.TrimSuffix(out, "\n")
}

// missing asks server at, from the hub, for the record of every client of want (client ->
// AT line) and returns the clients whose record is not that line. The WHATSATs go out in
// batches on one connection; a "?" (no record) ends the connection, and the next batch
// starts on a new one.
func (h *nsHerd) missing(at string, want map[string]string) []string {
	clients := make([]string, 0, len(want))
	for c := range want {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	var miss []string
	for len(clients) > 0 {
		batch := clients[:min(len(clients), 100)]
		c, err := h.lab.Hub.Dial(h.addr(at), testutil.Patience)
		if err != nil {
			return clients
		}
		c.SetDeadline(time.Now().Add(testutil.Patience))
		var req strings.Builder
		for _, client := range batch {
			fmt.Fprintf(&req, "WHATSAT %s 0.001 1\n", client)
		}
		c.Write([]byte(req.String()))
		r := bufio.NewReader(c)
		done := 0
		for _, client := range batch {
			first, err := r.ReadString('\n')
			if err != nil {
				break
			}
			done++
			if strings.HasPrefix(first, "? ") { // no record; the server closes
				miss = append(miss, client)
				break
			}
			for line := ""; line != "\n"; { // the rest of the reply, to its blank line
				if line, err = r.ReadString('\n'); err != nil {
					break
				}
			}
			if strings.TrimSuffix(first, "\n") != want[client] {
				miss = append(miss, client)
			}
		}
		c.Close()
		if done == 0 {
			return append(miss, clients...)
		}
		clients = clients[done:]
	}
	return miss
}

// everywhere waits until every server holds the record of want for each of its clients, and
// fails the test, naming what is missing where, if one does not within testutil.Patience.
func (h *nsHerd) everywhere(t *testing.T, what string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(testutil.Patience)
	for _, s := range h.topo {
		for {
			miss := h.missing(s.Name, want)
			if len(miss) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %s lacks %d of %d records, such as %.5q", what, s.Name, len(miss), len(want), miss)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// nsTime formats t as a client's POSIX time.
func nsTime(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// TestNetnsHerd runs the default herd, five `herd serve` processes on five hosts, and checks
// that an update made anywhere reaches every server; that AT lines are taken only from a
// neighbour's host, while clients anywhere are served; that after a partition, updates on
// both sides and a heal, every server holds the newest record of each client; and that
// after a server is killed with SIGKILL under load and restarted, no acknowledged update is
// lost anywhere.
func TestNetnsHerd(t *testing.T) {
	h := startNSHerd(t, "")
	hub := h.lab.Hub

	t.Run("flood", func(t *testing.T) {
		want := map[string]string{}
		for _, s := range h.topo {
			client := "from-" + s.Name
			want[client] = h.iamat(t, hub, s.Name, client, nsTime(time.Now()))
		}
		h.everywhere(t, "every server's update", want)
	})

	t.Run("neighbour hosts", func(t *testing.T) {
		for _, from := range []string{"hub", "Campbell"} { // neither is a neighbour of Hill
			host := hub
			if from != "hub" {
				host = h.lab.Host(from)
			}
			at := "AT Jaquez +0.500000000 forged-" + from + " +1+1 5"
			if out, err := h.exchange(host, "Hill", at+"\n"); err != nil || out != "? "+at+"\n" {
				t.Errorf("an AT line from %s's host: %q, %v; want \"?\"", from, out, err)
			}
			h.iamat(t, host, "Hill", "client-on-"+from, nsTime(time.Now())) // its clients are served
		}
		// From a neighbour's host (no secret): taken, flooded, unanswered.
		at := "AT Jaquez +0.500000000 from-neighbour-host +1+1 5"
		if out, err := h.exchange(h.lab.Host("Jaquez"), "Hill", at+"\n"); err != nil || out != "" {
			t.Errorf("an AT line from Jaquez's host: %q, %v; want no reply", out, err)
		}
		h.everywhere(t, "the update from Jaquez's host", map[string]string{"from-neighbour-host": at})
		for _, from := range []string{"hub", "Campbell"} {
			if miss := h.missing("Hill", map[string]string{"forged-" + from: ""}); len(miss) != 1 {
				t.Errorf("Hill holds a record of the AT line from %s's host", from)
			}
		}
	})

	t.Run("partition", func(t *testing.T) {
		smith := h.lab.Host("Smith")
		smith.Cut()
		cut := true
		defer func() {
			if cut {
				smith.Heal()
			}
		}()
		t0 := time.Now()
		want := map[string]string{}
		// p1: older at Campbell, newer at Smith; p2: older at Smith, newer at Hill.
		h.iamat(t, hub, "Campbell", "p1", nsTime(t0))
		want["p1"] = h.iamat(t, smith, "Smith", "p1", nsTime(t0.Add(time.Millisecond)))
		h.iamat(t, smith, "Smith", "p2", nsTime(t0.Add(2*time.Millisecond)))
		want["p2"] = h.iamat(t, hub, "Hill", "p2", nsTime(t0.Add(3*time.Millisecond)))
		want["smith-side"] = h.iamat(t, smith, "Smith", "smith-side", nsTime(t0))
		want["other-side"] = h.iamat(t, hub, "Jaquez", "other-side", nsTime(t0))
		for _, s := range []string{"Hill", "Jaquez", "Singleton", "Campbell"} {
			testutil.WaitFor(t, "the other side's update at "+s, func() bool {
				return len(h.missing(s, map[string]string{"other-side": want["other-side"]})) == 0
			})
		}
		// The partition holds: Smith (asked from its own host: the hub cannot reach it) lacks
		// the other side's update, and the other side lacks Smith's.
		if out, _ := h.exchange(smith, "Smith", "WHATSAT other-side 0.001 1\n"); !strings.HasPrefix(out, "? ") {
			t.Fatalf("the partition let an update through to Smith: %.100q", out)
		}
		if miss := h.missing("Hill", map[string]string{"smith-side": want["smith-side"]}); len(miss) != 1 {
			t.Fatal("the partition let Smith's update through to Hill")
		}
		smith.Heal()
		cut = false
		h.everywhere(t, "the newest records after the heal", want)
	})

	t.Run("kill -9 under load", func(t *testing.T) {
		var mu sync.Mutex
		acked := map[string]string{}
		stop := make(chan struct{})
		var load sync.WaitGroup
		for g := range 4 {
			load.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					at := h.topo[(g+i)%len(h.topo)].Name
					client := fmt.Sprintf("k%d-%d", g, i)
					out, err := h.exchange(hub, at, fmt.Sprintf("IAMAT %s +1+1 %s\n", client, nsTime(time.Now())))
					if err == nil && strings.HasPrefix(out, "AT "+at+" ") {
						mu.Lock()
						acked[client] = strings.TrimSuffix(out, "\n")
						mu.Unlock()
					}
				}
			})
		}
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
		testutil.WaitFor(t, "some load", func() bool { return count() >= 100 })
		p := h.procs["Singleton"]
		p.Cmd.Process.Kill() // SIGKILL: nothing is flushed, no link closed cleanly
		p.Wait(t)
		before := count()
		testutil.WaitFor(t, "load while Singleton is down", func() bool { return count() >= before+100 })
		h.serve(t, "Singleton")
		before = count()
		testutil.WaitFor(t, "load after the restart", func() bool { return count() >= before+100 })
		close(stop)
		load.Wait()
		h.everywhere(t, fmt.Sprintf("the %d acknowledged updates", len(acked)), acked)
		t.Logf("%d updates acknowledged under load, Singleton killed and restarted: all at every server", len(acked))
	})
}

// TestNetnsSecret runs the default herd with a links secret and checks that it links and
// floods, and that a process on a neighbour's host that lacks the secret cannot inject a
// record: not by an AT line on a client port, nor on a link it opens to a peer port.
func TestNetnsSecret(t *testing.T) {
	h := startNSHerd(t, "[links]\nsecret = \"netns-test-secret-0123456789\"\n")
	hub, jaquez := h.lab.Hub, h.lab.Host("Jaquez")
	h.everywhere(t, "an update", map[string]string{"first": h.iamat(t, hub, "Hill", "first", nsTime(time.Now()))})

	at := "AT Jaquez +0.500000000 injected +1+1 9999999999"
	if out, err := h.exchange(jaquez, "Hill", at+"\n"); err != nil || out != "? "+at+"\n" {
		t.Errorf("an AT line from Jaquez's host on Hill's client port: %q, %v; want \"?\"", out, err)
	}
	// A link to Hill's peer port in Jaquez's name, without the secret: Hill proves itself,
	// the forged AUTH fails, and the AT line after it is never read.
	c, err := jaquez.Dial(strings.Replace(h.addr("Hill"), ":12000", ":22000", 1), testutil.Patience)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testutil.Patience))
	fmt.Fprintf(c, "HELLO 1 Jaquez Hill 00000000000000aa %s\n", strings.Repeat("0", 32))
	r := bufio.NewReader(c)
	if hello, err := r.ReadString('\n'); err != nil || len(strings.Fields(hello)) != 7 {
		t.Fatalf("Hill's HELLO with a proof: %q, %v", hello, err)
	}
	fmt.Fprintf(c, "AUTH %s\n%s\n", strings.Repeat("0", 64), at)
	if refusal, _ := r.ReadString('\n'); refusal != "ERR authentication failed\n" {
		t.Errorf("Hill's answer to a forged AUTH: %q", refusal)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("Hill kept the connection open after the refusal")
	}
	c.Close()
	// An update after the attempts has reached every server: the injected one would have too.
	h.everywhere(t, "a later update", map[string]string{"after": h.iamat(t, hub, "Hill", "after", nsTime(time.Now()))})
	for _, s := range h.topo {
		if miss := h.missing(s.Name, map[string]string{"injected": at}); len(miss) != 1 {
			t.Errorf("%s holds the injected record", s.Name)
		}
	}
}
