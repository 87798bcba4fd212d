package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/admin"
	"github.com/herd-project/herd/internal/cli"
	"golang.org/x/term"
)

// maxStatusBytes bounds what herd status reads of one answer: a /status of the default
// config is about 6 KiB.
const maxStatusBytes = 4 << 20

// statusCmd is herd status: it reads /status from the admin listener of each server named
// (all by default) and prints a table, once (rates from two readings -interval apart) or, with
// -watch, every -interval until ctx is done.
func statusCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := cli.FlagSet("herd status", io.Discard, nil) // parseFlags prints the usage
	configPath := fs.String("config", "", "the herd's TOML config")
	watch := fs.Bool("watch", false, "print the table every interval until interrupted")
	interval := fs.Duration("interval", time.Second, "time between two readings")
	timeout := fs.Duration("timeout", 2*time.Second, "time to wait for each server's answer")
	names, err := parseFlags(fs, args, stdout)
	if err != nil {
		return ignoreHelp(err)
	}
	if *interval <= 0 || *timeout <= 0 {
		return &usageError{"-interval and -timeout must be positive"}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	targets, err := statusTargets(cfg, names)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: *timeout}
	prev := readAll(ctx, client, targets)
	if !*watch {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
		cur := readAll(ctx, client, targets)
		printStatus(stdout, targets, prev, cur)
		return unreachable(targets, cur)
	}
	tty := isTerminal(stdout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
		cur := readAll(ctx, client, targets)
		if ctx.Err() != nil {
			return nil
		}
		if tty {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home and clear, as watch(1) does
		}
		fmt.Fprintf(stdout, "herd status, %s, every %s (Ctrl-C to stop)\n", time.Now().Format(time.TimeOnly), *interval)
		printStatus(stdout, targets, prev, cur)
		if !tty {
			fmt.Fprintln(stdout)
		}
		prev = cur
	}
}

// statusTarget is a server to read: its name and the URL of its /status ("" without an
// admin_addr).
type statusTarget struct {
	name string
	url  string
}

// statusTargets returns the servers named (all of cfg's if none), in the config's order. A
// name the config does not have, or a selection in which no server has an admin_addr, is a
// usage error.
func statusTargets(cfg *herd.Config, names []string) ([]statusTarget, error) {
	var all []string
	for _, sc := range cfg.Servers {
		all = append(all, sc.Name)
	}
	for _, n := range names {
		if cfg.Server(n) == nil {
			return nil, &usageError{fmt.Sprintf("status: no server named %q in the config (servers: %s)", n, strings.Join(all, ", "))}
		}
	}
	var ts []statusTarget
	withAdmin := 0
	for _, sc := range cfg.Servers {
		if len(names) > 0 && !contains(names, sc.Name) {
			continue
		}
		t := statusTarget{name: sc.Name}
		if sc.AdminAddr != "" {
			t.url = "http://" + dialable(sc.AdminAddr) + "/status"
			withAdmin++
		}
		ts = append(ts, t)
	}
	if withAdmin == 0 {
		return nil, &usageError{"status: no server to read: give servers an admin_addr in the config"}
	}
	return ts, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// dialable returns addr with an unspecified host (":13000", "0.0.0.0:13000") replaced by
// loopback: a listener on every address answers there.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// reading is one server's /status, or why it could not be read.
type reading struct {
	st  *admin.Status
	err error
}

// readAll reads every target's /status at once. The result is indexed like targets.
func readAll(ctx context.Context, client *http.Client, targets []statusTarget) []reading {
	out := make([]reading, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		if t.url == "" {
			continue
		}
		wg.Go(func() { out[i].st, out[i].err = readStatus(ctx, client, t.url) })
	}
	wg.Wait()
	return out
}

// readStatus gets and decodes one /status.
func readStatus(ctx context.Context, client *http.Client, url string) (*admin.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // without net/http's "Get URL:" prefix: the table names the server
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	var st admin.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&st); err != nil {
		return nil, fmt.Errorf("bad /status: %w", err)
	}
	return &st, nil
}

// printStatus prints one row per target from cur, with the line rate from prev to cur.
func printStatus(w io.Writer, targets []statusTarget, prev, cur []reading) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUP\tCLIENTS\tRECORDS\tLINKS\tLINES/S\tPLACES ERRORS\tNOTE")
	for i, t := range targets {
		r := cur[i]
		switch {
		case t.url == "":
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\tno admin_addr\n", t.name)
			continue
		case r.err != nil:
			fmt.Fprintf(tw, "%s\tno\t-\t-\t-\t-\t-\tunreachable: %v\n", t.name, r.err)
			continue
		}
		st := r.st
		up := 0
		for _, l := range st.Links {
			if l.Up {
				up++
			}
		}
		rate := "-"
		if p := prev[i].st; p != nil {
			dt := st.Now.Sub(p.Now).Seconds()
			dl := sum(st.Labelled["lines_total"]) - sum(p.Labelled["lines_total"])
			if dt > 0 && dl >= 0 && p.Start.Equal(st.Start) {
				rate = strconv.FormatFloat(dl/dt, 'f', 1, 64)
			}
		}
		note := st.Error
		if note == "" && !st.Ready {
			note = "not ready: " + st.NotReady
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%d/%d\t%s\t%.0f\t%s\n", t.name,
			(time.Duration(st.UptimeSeconds) * time.Second).String(), st.Counters["clients_connected"],
			st.Counters["records"], up, len(st.Links), rate, sum(st.Labelled["places_errors_total"]), note)
	}
	tw.Flush()
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// unreachable returns an error naming the servers with an admin_addr that could not be read.
func unreachable(targets []statusTarget, cur []reading) error {
	var bad []string
	for i, t := range targets {
		if t.url != "" && cur[i].err != nil {
			bad = append(bad, t.name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("herd: status: unreachable: %s", strings.Join(bad, ", "))
}

// isTerminal reports whether w is a terminal (where -watch redraws in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
