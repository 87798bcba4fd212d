package asyncio_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// TestBestHerd runs the five-server herd of SPEC §1 with best.py, on asyncio and on uvloop: an
// update made anywhere reaches every server over the persistent links, concurrent updates with
// one client time converge on the larger AT line, and a server that restarts empty is brought
// up to date by its neighbours' full resync on link-up, and floods what it learns on.
func TestBestHerd(t *testing.T) {
	for _, loop := range []string{"asyncio", "uvloop"} {
		t.Run(loop, func(t *testing.T) {
			needPython(t)
			var extra []string
			if loop == "uvloop" {
				needPython(t, "uvloop")
				extra = []string{"--uvloop"}
			}
			names := []string{"Hill", "Jaquez", "Smith", "Singleton", "Campbell"}
			peers := map[string][]string{
				"Hill": {"Jaquez", "Smith"}, "Jaquez": {"Singleton"}, "Smith": {"Singleton", "Campbell"},
				"Singleton": {"Campbell"},
			}
			addr := map[string]string{}
			logs := t.TempDir()
			cfg := testutil.Config{LogDir: logs, Limits: "backoff_base = \"20ms\"\nbackoff_cap = \"200ms\""}
			for _, n := range names {
				addr[n] = testutil.FreeAddr(t)
				cfg.Nodes = append(cfg.Nodes, testutil.Node{Name: n, Addr: addr[n], Peers: peers[n]})
			}
			path := cfg.Write(t)
			procs := map[string]*testutil.Process{}
			for _, n := range names {
				procs[n] = startScript(t, "best.py", path, n, extra...)
			}
			everywhere := func(what, client, at string) {
				t.Helper()
				for _, n := range names {
					testutil.WaitFor(t, what+" at "+n, func() bool { return testutil.Knows(addr[n], client, at) })
				}
			}

			at := strings.TrimSuffix(testutil.Exchange(t, addr["Hill"], "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"), "\n")
			if !strings.HasPrefix(at, "AT Hill ") {
				t.Fatalf("Hill answered %q", at)
			}
			everywhere("Hill's update", "kiwi", at)
			at2 := strings.TrimSuffix(testutil.Exchange(t, addr["Campbell"], "IAMAT kiwi +1-1 1621464827.959498504\n"), "\n")
			everywhere("Campbell's newer update", "kiwi", at2)

			var wg sync.WaitGroup
			race := make([]string, 2)
			for i, n := range []string{"Hill", "Campbell"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, _ := testutil.TryExchange(addr[n], "IAMAT race +2+2 1700000000.5\n")
					race[i] = strings.TrimSuffix(out, "\n")
				}()
			}
			wg.Wait()
			if !strings.HasPrefix(race[0], "AT Hill ") || !strings.HasPrefix(race[1], "AT Campbell ") {
				t.Fatalf("Hill and Campbell answered %q", race)
			}
			won := max(race[0], race[1])
			everywhere("convergence on the larger line", "race", won)

			// Smith, in the middle, restarts empty while updates are made at both ends; many
			// records, so the resync takes several chunks.
			procs["Smith"].Stop(t, syscall.SIGTERM)
			var batch strings.Builder
			for i := range 3000 {
				fmt.Fprintf(&batch, "IAMAT bulk%d +%d.5-118.1 1700000001.%09d\n", i, i%80, i)
			}
			bulk := strings.Split(strings.TrimSuffix(testutil.Exchange(t, addr["Hill"], batch.String()), "\n"), "\n")
			if len(bulk) != 3000 {
				t.Fatalf("Hill answered %d lines to 3,000 IAMATs", len(bulk))
			}
			missed := strings.TrimSuffix(testutil.Exchange(t, addr["Campbell"], "IAMAT missed +3+3 1700000002\n"), "\n")
			procs["Smith"] = startScript(t, "best.py", path, "Smith", extra...)
			testutil.WaitFor(t, "the resync of the restarted Smith", func() bool {
				return testutil.Knows(addr["Smith"], "missed", missed) && testutil.Knows(addr["Smith"], "kiwi", at2) &&
					testutil.Knows(addr["Smith"], "race", won) && testutil.Knows(addr["Smith"], "bulk0", bulk[0]) &&
					testutil.Knows(addr["Smith"], "bulk2999", bulk[2999])
			})
			// What Smith floods after its restart reaches the others.
			after := strings.TrimSuffix(testutil.Exchange(t, addr["Smith"], "IAMAT after +4+4 1700000003\n"), "\n")
			everywhere("Smith's update after its restart", "after", after)
			log, err := os.ReadFile(filepath.Join(logs, "Smith.log"))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(log), `msg="resync done"`); n < 4 {
				t.Errorf("Smith's log has %d \"resync done\" records, want one per link at each start (4):\n%s", n, log)
			}
		})
	}
}
