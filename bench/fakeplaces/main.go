// Command fakeplaces serves the fake Google Places (legacy Nearby Search and Places API (New)
// searchNearby) on a local address, for benchmarks and manual runs:
//
//	go run ./bench/fakeplaces -addr 127.0.0.1:8099 -delay 50ms
//
// Point a herd at it with the places provider's url = "http://127.0.0.1:8099" (any key).
//
// By default it answers legacy questions from 256 answers built at start (-pool), picked by
// a hash of the question, so that an answer costs little more than its write and a benchmark
// measures the server, not the fake: the places of an answer are then not around the location
// asked. -pool 0 builds each answer around its location.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/cli"
)

func main() { cli.Main(run, cli.Options{ExitCode: func(error) int { return 2 }}) }

// run serves until ctx ends. It prints the base URL on stdout once listening.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := serve(ctx, args, stdout, stderr); err != nil {
		return fmt.Errorf("fakeplaces: %w", err)
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet("fakeplaces", stderr, nil)
	addr := fs.String("addr", "127.0.0.1:8099", "listen address (loopback; port 0 picks one)")
	// Nothing reads the request record of a process: keep none, so that an answer costs
	// little more than its write.
	o := fake.Options{NoRecord: true}
	fs.DurationVar(&o.Delay, "delay", 0, "latency added to every answer")
	fs.StringVar(&o.Status, "status", "", "force a legacy status (REQUEST_DENIED, OVER_QUERY_LIMIT, INVALID_REQUEST, UNKNOWN_ERROR, ZERO_RESULTS)")
	fs.StringVar(&o.StatusMessage, "message", "", "error_message sent with -status (or the v1 error's message)")
	fs.IntVar(&o.HTTPStatus, "http-status", 0, "answer every request with this HTTP status")
	fs.BoolVar(&o.Malformed, "malformed", false, "send bodies that are not JSON")
	fs.BoolVar(&o.Hang, "hang", false, "never answer (until stopped)")
	fs.StringVar(&o.Key, "key", "", "accept only this API key (default: any)")
	fs.IntVar(&o.Results, "results", 20, "places per answer, 1..20 (negative: none)")
	fs.IntVar(&o.Pool, "pool", 256, "answer legacy questions from this many answers built at start, picked by a hash of the question (0: build one per question, around its location)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s := fake.New(o)
	base, err := s.StartOn(*addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, base)
	<-ctx.Done()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return errors.New("stop timed out")
	}
	return nil
}
