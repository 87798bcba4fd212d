package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-project/herd/bench/baseline/server"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/testutil"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	cfg := testutil.Config{LogDir: logs, Nodes: []testutil.Node{{Name: "A", Peers: []string{"B"}}, {Name: "B"}}}
	path := testutil.WriteFile(t, dir, "herd.toml", cfg.TOML())
	for _, c := range []struct {
		args []string
		want []string // servers started
	}{
		{[]string{"run", "-config", path}, []string{"A", "B"}},
		{[]string{"-config", path}, []string{"A", "B"}},
		{[]string{"serve", "-config", path, "-no-log", "B"}, []string{"B"}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan []*server.Server, 1)
		started = func(s []*server.Server) { got <- s }
		var stdout, stderr bytes.Buffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, c.args, &stdout, &stderr) }()
		var servers []*server.Server
		select {
		case servers = <-got:
		case err := <-done:
			t.Fatalf("run(%q) = %v before starting; stderr %s", c.args, err, stderr.String())
		}
		var names []string
		for _, s := range servers {
			names = append(names, s.Name())
			if reply := testutil.Exchange(t, s.Addr().String(), "IAMAT x +1+1 1\n"); !strings.HasPrefix(reply, "AT "+s.Name()+" ") {
				t.Errorf("%s answered %q", s.Name(), reply)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run(%q) = %v", c.args, err)
		}
		started = nil
		if strings.Join(names, " ") != strings.Join(c.want, " ") {
			t.Errorf("run(%q) started %v, want %v", c.args, names, c.want)
		}
		for _, n := range c.want {
			if !strings.Contains(stdout.String(), n+" listening on 127.0.0.1:") {
				t.Errorf("run(%q) printed %q, want %q", c.args, stdout.String(), n+" listening on ...")
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(logs, "A.log")); err != nil || !bytes.Contains(b, []byte("IAMAT x")) {
		t.Errorf("A.log: %v, %q; want the input line logged", err, b)
	}
	for _, args := range [][]string{{"serve", "-config", path}, {"run", "A"}, {"bogus"}, {"-nope"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	testutil.WriteFile(t, dir, "herd.toml", "[[server]]\nname = \"A\"\naddr = \"127.0.0.1:0\"\nbogus = 1\n")
	if err := run(context.Background(), []string{"-config", path}, io.Discard, io.Discard); !herd.IsConfigError(err) {
		t.Errorf("run with a bad config = %v, want a config error", err)
	}
}

// TestAdminMetrics checks that a server with an admin_addr serves the Go runtime's metrics
// there, as the benchmark harness reads them.
func TestAdminMetrics(t *testing.T) {
	dir := t.TempDir()
	admin := testutil.FreeAddr(t)
	path := testutil.WriteFile(t, dir, "herd.toml", fmt.Sprintf("[log]\ndir = \"off\"\n\n[[server]]\nname = \"A\"\naddr = \"127.0.0.1:0\"\nadmin_addr = %q\n", admin))
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []*server.Server, 1)
	started = func(s []*server.Server) { got <- s }
	defer func() { started = nil }()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-config", path, "A"}, io.Discard, io.Discard) }()
	select {
	case <-got:
	case err := <-done:
		t.Fatalf("run = %v before starting", err)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("\ngo_memstats_mallocs_total ")) {
		t.Errorf("/metrics: %s, no go_memstats_mallocs_total in %.300q", resp.Status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v", err)
	}
	if _, err := http.Get("http://" + admin + "/metrics"); err == nil {
		t.Error("the admin listener still serves after the stop")
	}
}
