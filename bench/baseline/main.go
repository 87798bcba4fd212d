// Command baseline is the herd server in the goroutine-per-connection model: a net.Listener,
// one goroutine per client connection and one per neighbour link, and the record table under a
// sync.Mutex. It shares codec, the herd record table and config, and the Places providers with
// the reactor server (cmd/herd), so a comparison between the two measures only the I/O model.
//
//	go run ./bench/baseline run [-config herd.toml] [-grace 10s] [-no-log]          every server of the config
//	go run ./bench/baseline serve [-config herd.toml] [-grace 10s] [-no-log] NAME   one server
//
// With no config it runs the default five-server herd with the offline Places provider. It
// prints "NAME listening on ADDR" for each server, and stops gracefully on SIGINT or SIGTERM.
// A server with an admin_addr in the config serves there /metrics: the Go runtime's and the
// process's metrics (Prometheus), not the herd's, so that the benchmark harness reads the
// baseline's allocations as it reads the reactor's.
//
// The server itself is package server (bench/baseline/server).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/herd-project/herd/bench/baseline/server"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/cli"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	cli.Main(run, cli.Options{ExitCode: func(err error) int {
		if errors.Is(err, errUsage) || herd.IsConfigError(err) {
			return 2
		}
		return 1
	}})
}

var errUsage = errors.New("baseline: usage: baseline [run|serve] [-config FILE] [-grace D] [-no-log] [NAME]")

// started is called by run once every server listens (tests use it to find the addresses).
var started func([]*server.Server)

// serveMetrics serves the process's Go runtime metrics on addr until stop is called.
func serveMetrics(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("baseline: admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return func() { _ = hs.Close() }, nil
}

// run parses args, starts the servers and serves until ctx is done, then closes them.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "serve") {
		cmd, args = args[0], args[1:]
	}
	fs := cli.FlagSet("baseline "+cmd, stderr, nil)
	configPath := fs.String("config", "", "herd TOML config (default: the five-server herd, offline Places)")
	noLog := fs.Bool("no-log", false, "write no log files (for benchmarks)")
	grace := fs.Duration("grace", 10*time.Second, "time allowed to finish the replies owed at a stop")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var names []string
	switch {
	case cmd == "serve" && fs.NArg() == 1:
		names = fs.Args()
	case cmd == "run" && fs.NArg() == 0:
	default:
		return errUsage
	}

	cfg := herd.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = herd.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	if *noLog {
		cfg.Log.Dir = "off"
	}
	if names == nil {
		for _, sc := range cfg.Servers {
			names = append(names, sc.Name)
		}
	}
	prov, err := herd.NewProvider(cfg.Places)
	if err != nil {
		return err
	}

	var (
		servers []*server.Server
		closers []io.Closer
	)
	defer func() {
		for _, s := range servers {
			s.Close()
		}
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, name := range names {
		log, w, err := herd.OpenLog(cfg.Log, name)
		if err != nil {
			return err
		}
		if w != nil {
			closers = append(closers, w)
		}
		s, err := server.New(cfg, name, prov, log)
		if err != nil {
			return err
		}
		if err := s.Listen(cfg.Server(name).Addr); err != nil {
			return err
		}
		servers = append(servers, s)
	}
	// Servers of this process are dialed where they really listen (port 0 picks one).
	bound := map[string]string{} // read-only from here on
	for _, s := range servers {
		bound[s.Name()] = s.Addr().String()
	}
	for _, s := range servers {
		s.SetPeerAddr(func(peer string) string {
			if a, ok := bound[peer]; ok {
				return a
			}
			return cfg.Server(peer).Addr
		})
		fmt.Fprintf(stdout, "%s listening on %s\n", s.Name(), s.Addr())
	}
	for _, name := range names {
		if addr := cfg.Server(name).AdminAddr; addr != "" {
			stop, err := serveMetrics(addr)
			if err != nil {
				return err
			}
			defer stop()
		}
	}
	for _, s := range servers {
		s.Start()
	}
	if started != nil {
		started(servers)
	}
	<-ctx.Done()
	// Stop gracefully: every server finishes the replies it owes, within the grace time.
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	return herd.ShutdownAll(sctx, servers)
}
