// Command inproc runs some servers of a herd config in one process, one loop (reactor) or one
// listener with its goroutines (baseline) each, as `herd run` and `baseline run` do for every
// server of a config. The benchmark harness uses it when the config also names a server that
// is not part of the process: the load generator's probe, a neighbour the herd dials, which
// `herd run` would otherwise try to start itself.
//
//	inproc -impl herd|baseline -config herd.toml NAME...
//
// It prints "NAME listening on ADDR" for each server and stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/herd-project/herd/bench/baseline/server"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/internal/cli"
)

func main() { cli.Main(run, cli.Options{}) }

// stopper is a started server.
type stopper interface {
	Shutdown(ctx context.Context) error
}

// run starts the named servers, serves until ctx is done and stops them within the grace time.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet("inproc", stderr, nil)
	impl := fs.String("impl", "herd", "server implementation: herd (the reactor) or baseline (goroutine per connection)")
	configPath := fs.String("config", "", "herd TOML config")
	grace := fs.Duration("grace", 10*time.Second, "time allowed to finish the replies owed at a stop")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() == 0 {
		return errors.New("inproc: usage: inproc -impl herd|baseline -config FILE NAME...")
	}
	cfg, err := herd.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	// One Places provider for all, as herd run and baseline run do.
	prov, err := herd.NewProvider(cfg.Places)
	if err != nil {
		return err
	}
	var started []stopper
	var logs []io.Closer
	stopAll := func() error {
		defer func() {
			for _, c := range logs {
				c.Close()
			}
		}()
		sctx, cancel := context.WithTimeout(context.Background(), *grace)
		defer cancel()
		return herd.ShutdownAll(sctx, started)
	}
	for _, name := range fs.Args() {
		if cfg.Server(name) == nil {
			_ = stopAll()
			return fmt.Errorf("inproc: no server %q in %s", name, *configPath)
		}
		switch *impl {
		case "herd":
			s, err := herd.NewServer(cfg, name, herd.WithProvider(prov))
			if err == nil {
				err = s.Start()
				if err != nil {
					sctx, cancel := context.WithTimeout(context.Background(), *grace)
					_ = s.Shutdown(sctx)
					cancel()
				}
			}
			if err != nil {
				_ = stopAll()
				return err
			}
			started = append(started, s)
			fmt.Fprintf(stdout, "%s listening on %s\n", name, s.Addr())
		case "baseline":
			log, w, err := herd.OpenLog(cfg.Log, name)
			if err != nil {
				_ = stopAll()
				return err
			}
			if w != nil {
				logs = append(logs, w)
			}
			s, err := server.New(cfg, name, prov, log)
			if err == nil {
				err = s.Listen(cfg.Server(name).Addr)
			}
			if err != nil {
				_ = stopAll()
				return err
			}
			s.Start()
			started = append(started, s)
			fmt.Fprintf(stdout, "%s listening on %s\n", name, s.Addr())
		default:
			return fmt.Errorf("inproc: unknown -impl %q (want herd or baseline)", *impl)
		}
	}
	<-ctx.Done()
	return stopAll()
}
