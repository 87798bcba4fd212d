// Package cli is the main that every command of the module shares. A command's main is thin:
// its work is a Run, which a test calls with its own arguments, writers and context, and Main
// gives it the process's arguments, standard streams and signals.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Run is a command's body: it parses args, writes to stdout and stderr, and returns when its
// work is done or ctx ends. Main calls it on the main goroutine; tests, on any.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Options say how Main ends the process.
type Options struct {
	// ExitCode maps the error Run returned (never nil, never flag.ErrHelp) to the exit
	// status; nil makes every error exit 1.
	ExitCode func(error) int
	// HardStop makes a second SIGINT or SIGTERM, while Run is still stopping after the first,
	// end the process at once. Without it the process waits for Run however many come.
	HardStop bool
}

// Main runs run with the process's arguments and standard streams, under a context that ends
// at the first SIGINT or SIGTERM, and exits: 0 when run returns nil or flag.ErrHelp (the flag
// package has printed the usage), otherwise after printing the error on stderr with the status
// o.ExitCode gives. Call it from main only.
func Main(run Run, o Options) {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx := sigCtx
	if o.HardStop {
		// run sees the stop only once the signals' default action is back, so that a second
		// signal sent as soon as run shows it is stopping ends the process.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(context.Background())
		go func() {
			<-sigCtx.Done()
			stop()
			cancel()
		}()
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, err)
	code := 1
	if o.ExitCode != nil {
		code = o.ExitCode(err)
	}
	os.Exit(code)
}

// StartCPUProfile writes a CPU profile of the process to the file at path from now until
// the returned stop is called. Call stop once, from any goroutine.
func StartCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// FlagSet returns the flag set of a command's Run: parse errors come back as errors (not an
// exit), and messages go to output. With usage, -h and a bad flag print what usage writes,
// then the flags and their defaults. Any goroutine may call it.
func FlagSet(name string, output io.Writer, usage func(w io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	if usage != nil {
		fs.Usage = func() {
			usage(output)
			fs.PrintDefaults()
		}
	}
	return fs
}
