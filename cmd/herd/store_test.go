package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// TestProcessKillLosesAtMostASecond: a `herd serve` with [store] path, killed with SIGKILL
// while it takes a stream of updates, starts again with every update it acknowledged up to
// about a second before it died: what a snapshot, written at most a second apart, had not
// taken yet is all that is lost.
func TestProcessKillLosesAtMostASecond(t *testing.T) {
	dir := t.TempDir()
	buildHerd(t)
	port := loopbackPort(t, map[int]bool{})
	conf := fmt.Sprintf("[places]\nprovider = \"offline\"\n[log]\ndir = \"off\"\n[store]\npath = %q\n"+
		"[[server]]\nname = \"Solo\"\naddr = \"127.0.0.1:%d\"\npeer_addr = \"127.0.0.1:0\"\n", dir+"/store", port)
	path := testutil.WriteFile(t, dir, "herd.toml", conf)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := serving(t, start(t, dir, "serve", "-config", path, "Solo"))

	// 20 clients, updated in turn with ever later times; acked[c] are the times of c's
	// updates in the order their replies were read, with when they were read.
	type ack struct {
		tm int
		at time.Time
	}
	const clients = 20
	acked := make([][]ack, clients)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var killed time.Time
	// The kill comes at any point of the snapshot cycle.
	deadline := time.Now().Add(2*time.Second + rand.N(time.Second))
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			killed = time.Now()
			p.Cmd.Process.Kill() // SIGKILL: no last snapshot
			break
		}
		tm := 1_700_000_000 + i
		fmt.Fprintf(c, "IAMAT k%d +1+1 %d\n", i%clients, tm)
		line, err := r.ReadString('\n')
		if !strings.HasPrefix(line, "AT Solo ") || err != nil {
			t.Fatalf("IAMAT reply %q, %v", line, err)
		}
		acked[i%clients] = append(acked[i%clients], ack{tm, time.Now()})
		time.Sleep(time.Millisecond)
	}
	c.Close()
	p.Wait(t)

	p = serving(t, start(t, dir, "serve", "-config", path, "Solo"))
	var lost int
	var oldest time.Duration // the age at the kill of the oldest update lost
	for k := range clients {
		reply := testutil.Exchange(t, addr, fmt.Sprintf("WHATSAT k%d 1 1\n", k))
		f := strings.Fields(reply)
		held := -1
		if len(f) > 5 && f[0] == "AT" {
			held, _ = strconv.Atoi(f[5])
		}
		for _, a := range acked[k] {
			if a.tm > held {
				lost++
				oldest = max(oldest, killed.Sub(a.at))
			}
		}
	}
	total := 0
	for _, a := range acked {
		total += len(a)
	}
	t.Logf("%d updates acknowledged in 2-3 s, %d lost at the kill, the oldest acknowledged %v before it", total, lost, oldest)
	// A snapshot begins at most a second after a change; what it misses is what changed
	// while it was written (a table of 20 records: milliseconds, fsync included, but a busy
	// machine may take longer to run the writer).
	if oldest > 1500*time.Millisecond {
		t.Errorf("an update acknowledged %v before the kill was lost: snapshots begin at most a second apart", oldest)
	}
	if total < 500 {
		t.Errorf("only %d updates in 2 s or more", total)
	}
}
