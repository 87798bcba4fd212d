// Command herd runs a proxy herd: every server of a config in one process (herd run), or one
// server of it (herd serve NAME). See herd -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/internal/cli"
)

func main() {
	// A second signal during the graceful stop ends the process at once.
	cli.Main(run, cli.Options{ExitCode: exitCode, HardStop: true})
}

// usageError is a bad command line: exit code 2, like a bad config.
type usageError struct{ msg string }

func (e *usageError) Error() string { return "herd: " + e.msg + " (see herd -h)" }

// exitCode maps run's error to the process's exit code: 0 on success (a clean stop by signal
// included), 2 for a bad command line or config, 3 for a stop whose grace period ran out with
// replies or floods undelivered, 1 for anything else (a server that could not start or
// stopped on its own). A second signal during the stop never gets here: the signal's default
// action ends the process (see main). The usage text lists them, under "Exit status".
func exitCode(err error) int {
	var ue *usageError
	var unsent *herd.UnsentError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), herd.IsConfigError(err):
		return 2
	case errors.As(err, &unsent):
		return 3
	}
	return 1
}

const usage = `herd runs a proxy herd of servers that share client locations (IAMAT), flood them to
each other (AT) and answer what is near a client (WHATSAT) from Google Places or an offline dataset.

Usage:
  herd run   [-config FILE] [-grace D] [-cpuprofile F]        every server of the config in this process
  herd serve [-config FILE] [-grace D] [-cpuprofile F] NAME   the server called NAME only
                                              (flags may also follow NAME)
  herd status [-config FILE] [-watch] [NAME...]  each server's state, read from its admin listener
  herd health -addr HOST:PORT [-ready]        exit 0 if the admin listener answers /healthz
                                              (/readyz with -ready) with 200, else 1: a
                                              container's HEALTHCHECK, no shell or curl needed
  herd version                                the version, commit, build date and Go version
  herd help                                   this text

Flags:
  -config FILE   the herd's TOML config. Without it: the default herd of five servers
                 (Hill, Jaquez, Smith, Singleton, Campbell) on 127.0.0.1:12000-12004 (links
                 on 22000-22004), the offline Places provider (no key, no network) and logs
                 in ./logs. Relative paths in the file (log.dir, places.dataset,
                 links.secret_file) are taken from the file's folder.
  -grace D       how long a stop (SIGINT or SIGTERM) may take (default 10s). The servers stop
                 accepting and reading requests, and run on until every reply owed has been
                 taken by its client, slow readers included, and the links have sent the last
                 floods. Past D what is left is dropped, the log says how much ("grace period
                 over") and the exit status is 3. A second signal stops at once. A supervisor's
                 stop timeout (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds)
                 must be longer than D.
  -cpuprofile F  write a CPU profile of the whole run to F (go tool pprof F), written at the stop.
  -watch         (status) print the table again every -interval (default 1s), until Ctrl-C.
  -timeout D     (status, health) how long to wait for each server's answer (default 2s).

Config (all keys optional but [[server]]; defaults shown). Durations and sizes need a unit:
"5s", "500ms", "100MiB"; a bare number is an error (0 excepted).
  [places]
  provider = "offline"     # google | google-v1 | offline; default google when a key is set
  url = ""                 # base URL of the API; "" means Google's
  key = ""                 # or the GOOGLE_PLACES_API_KEY environment variable
  timeout = "5s"           # one Places call, from its WHATSAT's arrival
  cache_ttl = "0s"         # keep answers this long; 0: no cache
  workers = 0              # Places calls at once per server; 0: 1024 for google and
                           # google-v1 (remote calls only wait), the cores for offline; calls
                           # beyond it wait their turn, at most timeout after their WHATSAT
  max_conns = 0            # HTTP connections to the API, per process; 0: workers for each
                           # server; lowered to fit the open file limit
  dataset = ""             # offline: a GeoJSON file of your own places; features that are
                           # not named Points are skipped and counted in each server's log
  [log]
  dir = "logs"             # one <Name>.log per server; "-": standard error; "off": no logs
  level = "info"           # debug | info | warn | error | off; info logs every line in and
                           # out (an IAMAT: about 550 bytes, and 310 on each server its flood
                           # reaches; a WHATSAT: 540); warn only faults and cut-offs
  format = "text"          # text | json
  max_size = "100MiB"      # rotate a server's log at this size; 0: never (use logrotate:
                           # SIGHUP reopens the logs)
  max_files = 10           # rotated files kept per server, besides the current one
                           # (records waiting for the disk: at most 1024 batches or 64 MiB
                           # per server; past that they are dropped and counted)
  [limits]
  max_line = 4096          # bytes in an IAMAT/WHATSAT line, without its newline (AT: +128)
  max_unsent = 1048576     # reply bytes a client may leave unread before it is cut off
  max_unsent_total = "256MiB" # reply bytes all the clients of a server may leave unread;
                           # past it the client with the most is cut off
  max_pending = 256        # WHATSATs of one client waiting on Places
  max_waiting = 16384      # WHATSATs waiting on Places in a server; past it: UNKNOWN_ERROR busy
  max_clients = 16384      # connections per server; a neighbour's host may go one past it per
                           # neighbour (on loopback every local connection is); lowered to fit
                           # the open file limit
  idle_timeout = "5m"      # close clients quiet this long and owed nothing; 0: off
  line_timeout = "30s"     # a line must end this long after its first byte, else "? " and
                           # close; 0: off (a connection that sent AT lines is exempt from both)
  max_link_unsent = 8388608 # unsent bytes on a link before it is closed and redialled
                           # (at least 131072 + max_line + 129: room for a resync chunk)
  dial_timeout = "1s"      # a dial to a neighbour, its hello included
  backoff_base = "100ms"   # redial delays: full jitter up to base*2^n, capped at backoff_cap
  backoff_cap = "5s"
  max_clock_skew = "1h"    # a client time further ahead of the server's clock: "?" for an
                           # IAMAT, a neighbour's AT line dropped and counted; 0: no check
  max_records = 1000000    # client records per server; past it a new client's record evicts
                           # the one with the oldest client time (the same on every server)
  max_record_bytes = "512MiB" # the records' memory (each counted for its AT line and a quarter
                           # more, its client ID and 256 bytes: at least the heap it holds);
                           # past it the oldest are evicted too
  [links]
  secret = ""              # authenticate links (HMAC over fresh nonces; at least 16 bytes);
                           # with one, AT lines are taken on authenticated links only
  secret_file = ""         # or read it from a file; or the HERD_LINK_SECRET environment variable
  [records]
  ttl = "0s"               # drop a record whose client time is older than this; 0: keep it
                           # until a newer one or max_records replaces it. Expired records are
                           # not taken from neighbours nor resynced, so they do not come back
  [store]
  path = ""                # a folder for snapshots of the records, one <Name>.snap per server:
                           # loaded at start, written at most once a second while records
                           # change and at a stop; "" (the default): none
  [[server]]               # one per server
  name = "Hill"
  addr = "127.0.0.1:12000" # clients; port 0: a free port, printed at start (herd run)
  peer_addr = ""           # links from neighbours; default: addr's port + 10000 (22000)
  peers = ["Jaquez", "Smith"] # links are symmetric: naming one side is enough
  link = "herd"            # "plain": a server of another implementation (the Python
                           # prototype), sent bare AT lines on its addr; "plain-per-message":
                           # one that reads one line per connection, sent one per connection
  admin_addr = ""          # e.g. "127.0.0.1:13000": /metrics, /healthz, /readyz, /status,
                           # a live status page at /, /debug/pprof/; "" turns it off

Signals (run, serve): SIGINT and SIGTERM stop gracefully (see -grace); a second one ends the
process at once, by that signal's default action. SIGHUP reopens the log files (logrotate's
postrotate) and never stops a server.

Exit status:
  0    stopped by SIGINT or SIGTERM with every reply delivered (status, health: all well)
  1    a server could not start (an address in use) or stopped on its own; status and health:
       a server could not be read or is not healthy
  2    a bad command line or config (the message names the file, line and key)
  3    stopped by SIGINT or SIGTERM, but the grace period ran out with replies undelivered
  130  (SIGINT) or 143 (SIGTERM), as a shell reports it: a second signal during the stop;
       the process was ended by the signal, so its last log records may be lost
`

// run is the whole program: args without the program name; it returns when ctx is done (the
// servers then stop gracefully) or on an error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{"missing command: run, serve, status, health or version"}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "-version", "--version":
		readBuildInfo().print(stdout)
		return nil
	case "status":
		return statusCmd(ctx, args, stdout)
	case "health":
		return healthCmd(ctx, args, stdout)
	case "run", "serve":
	default:
		return &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	// From here on SIGHUP reopens the logs: logrotate may signal a server that is starting.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fs := cli.FlagSet("herd "+cmd, io.Discard, nil) // parseFlags prints the usage
	configPath := fs.String("config", "", "the herd's TOML config")
	grace := fs.Duration("grace", 10*time.Second, "time allowed to finish the replies owed at a stop")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return ignoreHelp(err)
	}
	if *grace <= 0 {
		return &usageError{"-grace must be positive"}
	}
	if cmd == "run" && len(rest) != 0 {
		return &usageError{fmt.Sprintf("run takes no arguments, got %q", strings.Join(rest, " "))}
	}
	if cmd == "serve" && len(rest) > 1 {
		return &usageError{fmt.Sprintf("serve takes the name of one server, got %q", strings.Join(rest, " "))}
	}

	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	var opts []herd.Option
	if cmd == "serve" {
		if len(rest) == 0 {
			names := make([]string, len(cfg.Servers))
			for i, s := range cfg.Servers {
				names[i] = s.Name
			}
			return &usageError{"serve needs the name of one server of the config: " + strings.Join(names, ", ")}
		}
		opts = append(opts, herd.WithServers(rest[0])) // a herd of one
	}
	if *cpuProfile != "" {
		stop, err := cli.StartCPUProfile(*cpuProfile)
		if err != nil {
			return fmt.Errorf("herd: cpuprofile: %w", err)
		}
		defer stop()
	}
	raiseFileLimit(stdout)
	return runHerd(ctx, cfg, *grace, hup, stdout, stderr, opts...)
}

// parseFlags parses args with fs and returns the arguments that are not flags. Flags may come
// before or after them: "herd serve Hill -config herd.toml" works too. For -h it prints the
// usage to stdout and returns flag.ErrHelp; for a bad flag, a *usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, usage)
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ignoreHelp returns err, or nil for flag.ErrHelp: -h is a success.
func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// loadConfig loads the config at path, or returns the default herd's for "".
func loadConfig(path string) (*herd.Config, error) {
	if path == "" {
		return herd.DefaultConfig(), nil
	}
	return herd.LoadConfig(path)
}

// runHerd runs the servers of cfg that opts select (all, or the one of herd serve) until ctx is
// done or one of them stops on its own; each signal on hup reopens their logs.
func runHerd(ctx context.Context, cfg *herd.Config, grace time.Duration, hup <-chan os.Signal, stdout, stderr io.Writer, opts ...herd.Option) error {
	h, err := herd.NewHerd(cfg, opts...)
	if err != nil {
		return err
	}
	reopening := make(chan struct{})
	defer func() { <-reopening }()
	done := make(chan struct{})
	defer close(done)
	go reopenLogs(h, hup, done, reopening, stderr)
	admins, err := startAdmins(cfg, h.Servers())
	defer admins.close()
	if err != nil {
		h.Shutdown(context.Background()) // nothing started: closes the logs
		return err
	}
	if err := h.Start(); err != nil {
		return err
	}
	bound := h.Config()
	for _, s := range h.Servers() {
		announce(stdout, s, bound.Server(s.Name()).Peers)
	}
	admins.print(stdout)
	lowered(stdout, cfg, h.FileBudget())
	hello(stdout, bound, h.Servers()[0].Provider(), h.Servers()[0].Addr().String())
	started(h.Servers())
	failed := waitStop(ctx, h.Servers(), stdout)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = h.Shutdown(sctx)
	if failed != nil {
		return failed
	}
	return err
}

// announce says where a server listens, for its clients and for its neighbours' links.
func announce(w io.Writer, s *herd.Server, peers []string) {
	fmt.Fprintf(w, "herd: %s listening on %s (links on %s; neighbours: %s)\n", s.Name(), s.Addr(), s.PeerAddr(), strings.Join(peers, ", "))
}

// reopenLogs reopens the servers' logs at each signal on hup, until done is closed; then it
// closes finished. A failure is told on stderr (and in the server's log, the old file).
func reopenLogs(h *herd.Herd, hup <-chan os.Signal, done <-chan struct{}, finished chan<- struct{}, stderr io.Writer) {
	defer close(finished)
	for {
		select {
		case <-hup:
			if err := h.ReopenLogs(); err != nil {
				fmt.Fprintln(stderr, err)
			}
		case <-done:
			return
		}
	}
}

// lowered says, in one line for the process, when the open file limit cannot hold what the
// config allows: max_clients for each server, or places.max_conns (see herd.FileBudget).
func lowered(stdout io.Writer, cfg *herd.Config, b herd.FileBudget) {
	if !b.Lowered {
		return
	}
	var what []string
	if b.MaxClients < cfg.Limits.MaxClients {
		what = append(what, fmt.Sprintf("max_clients lowered from %d to %d per server", cfg.Limits.MaxClients, b.MaxClients))
	}
	want := cfg.Places.MaxConns
	if want == 0 {
		want = cfg.Places.Workers * b.Servers
	}
	if b.PlacesConns < want && b.PlacesConns > 0 {
		what = append(what, fmt.Sprintf("places.max_conns lowered from %d to %d", want, b.PlacesConns))
	}
	fmt.Fprintf(stdout, "herd: %s to fit the open file limit (%d for %d servers; raise it with ulimit -n)\n",
		strings.Join(what, ", "), b.Limit, b.Servers)
}

// started is called once the servers accept connections (tests use it).
var started = func([]*herd.Server) {}

// waitStop waits for ctx (a signal), or for a server's loop to end on its own: then the process
// must not go on without it, and waitStop returns why.
func waitStop(ctx context.Context, servers []*herd.Server, stdout io.Writer) error {
	ended := make(chan *herd.Server, len(servers))
	for _, s := range servers {
		go func() {
			select {
			case <-s.Done():
				ended <- s
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "herd: stopping")
		return nil
	case s := <-ended:
		why := "its event loop ended"
		if err := s.Err(); err != nil {
			why = strings.TrimPrefix(err.Error(), "herd: "+s.Name()+": ")
		}
		return fmt.Errorf("herd: %s stopped: %s", s.Name(), why)
	}
}

// raiseFileLimit raises the soft limit on open files to the hard limit: each client is a file
// descriptor, and a server past the limit cannot accept. The servers lower max_clients to fit
// what is left (see herd.Server.MaxClients).
func raiseFileLimit(stdout io.Writer) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= rl.Max {
		return
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintf(stdout, "herd: cannot raise the open file limit to %d: %v\n", rl.Max, err)
	}
}

// hello says how to talk to the herd, and what it answers WHATSATs from (prov).
func hello(w io.Writer, cfg *herd.Config, prov places.Provider, addr string) {
	host, port := addr, ""
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host, port = addr[:i], addr[i+1:]
	}
	logs := "logs in " + cfg.Log.Dir + "/ (one file per server)"
	switch {
	case cfg.Log.Off():
		logs = "logging off"
	case cfg.Log.Stderr():
		logs = "logs on standard error"
	}
	fmt.Fprintf(w, "herd: Places provider %s; %s\n", cfg.Places.Provider, logs)
	if d, ok := places.Dataset(prov); ok && d.File != "" {
		fmt.Fprintf(w, "herd: places dataset %s: %d places; skipped %d features (%d unnamed, %d not Points, %d invalid)\n",
			d.File, d.Places, d.Skipped(), d.Unnamed, d.NotPoint, d.Invalid)
	}
	fmt.Fprintf(w, `herd: try it:
  nc %s %s
  IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 %d.000000000
  WHATSAT kiwi.cs.ucla.edu 10 5
herd: stop with Ctrl-C
`, host, port, time.Now().Unix())
}
