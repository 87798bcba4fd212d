package admin

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure an admin listener. The zero value is ready to use.
type Options struct {
	// Version is the version /status reports ("" leaves it out).
	Version string
	// LagInterval is how often the loop-lag probe runs (default 100ms).
	LagInterval time.Duration
	// ErrorLog receives the HTTP server's errors (nil: the log package's standard logger).
	ErrorLog *log.Logger
}

// Bounds of the listener: at most maxConns connections at once (more wait in the kernel's
// backlog until one closes), so that it never takes more than the descriptors the file
// budget reserves for it (herd.FileBudget: 16); a request's header must arrive within
// readHeaderTimeout, and its body too within readTimeout (a slow client cannot hold a
// connection open for free); a connection idle for idleTimeout between requests is closed,
// so that idle connections hold the limit for half a minute at most (a Prometheus scrape
// every 15 s keeps its own). snapshotTimeout bounds the wait for the loop's answer in
// /status; a loop that has not answered a lag probe for stuckAfter makes /readyz answer 503.
const (
	maxConns          = 12
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 30 * time.Second
	maxHeaderBytes    = 64 << 10
	snapshotTimeout   = 2 * time.Second
	stuckAfter        = 3 * time.Second
)

// Admin is the admin listener of one server: /metrics, /healthz, /readyz, /status, the status
// page at / and /debug/pprof/. It reads the server's atomics, and asks its loop (Snapshot,
// LoopLag) for what only the loop holds, so no request waits on a lock the loop takes.
type Admin struct {
	s    *herd.Server
	opts Options
	reg  *prometheus.Registry
	mux  *http.ServeMux
	hs   *http.Server
	addr atomic.Pointer[net.TCPAddr]

	lag        prometheus.Histogram
	lastLag    atomic.Int64 // the last probe's lag, in nanoseconds
	probeStart atomic.Int64 // when the probe waiting on the loop was posted (UnixNano), 0: none
	stop       context.CancelFunc
	probeDone  chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// New returns the admin listener of s and starts its loop-lag probe (stopped by Close). It
// registers the server's metrics with a registry of its own, every series labelled with the
// server's name, so that several servers in one process each export their own, and it makes s
// report its Places calls' durations. It does not listen: see Listen, or serve Handler
// yourself. Any goroutine, before or after s starts.
func New(s *herd.Server, o Options) *Admin {
	if o.LagInterval <= 0 {
		o.LagInterval = 100 * time.Millisecond
	}
	a := &Admin{s: s, opts: o, reg: prometheus.NewRegistry(), probeDone: make(chan struct{})}
	r := prometheus.WrapRegistererWith(prometheus.Labels{"server": s.Name()}, a.reg)
	r.MustRegister(newCollector(s))
	places := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herd_places_duration_seconds",
		Help:    "Duration of Places requests, from the first WHATSAT that asked to the answer on the loop.",
		Buckets: placesBuckets,
	})
	a.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herd_loop_lag_seconds",
		Help:    "Time a probe posted to the event loop waited for its turn (sampled every " + o.LagInterval.String() + ").",
		Buckets: lagBuckets,
	})
	r.MustRegister(places, a.lag,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.SetPlacesObserver(places)

	a.mux = http.NewServeMux()
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorLog: o.ErrorLog}))
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.HandleFunc("GET /status", a.status)
	a.mux.HandleFunc("GET /{$}", a.page)
	// net/http/pprof's handlers, on this mux. Importing the package also registers them on
	// http.DefaultServeMux, which herd never serves.
	a.mux.HandleFunc("/debug/pprof/", pprof.Index)
	a.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	a.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	a.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	a.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.hs = &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          o.ErrorLog,
	}

	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	go a.probe(ctx)
	return a
}

// Handler returns the listener's handler, for a caller that serves it itself. Any goroutine.
func (a *Admin) Handler() http.Handler { return a.mux }

// Listen binds addr and serves the admin endpoints on it in a goroutine of its own, until
// Close. It returns once the listener is bound. Any goroutine; once.
func (a *Admin) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: %s: listen %s: %w", a.s.Name(), addr, err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		a.addr.Store(ta)
	}
	go func() {
		if err := a.hs.Serve(limitListener(ln, maxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logf("admin: %s: %v", a.s.Name(), err)
		}
	}()
	return nil
}

// limitListener returns a listener that holds at most n of ln's connections open at once:
// Accept waits for one to close before it accepts the next, so the connections past n wait
// in the kernel's backlog rather than take descriptors. (golang.org/x/net/netutil has the
// same, but would bring a module for these lines.)
func limitListener(ln net.Listener, n int) net.Listener {
	return &limited{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limited struct {
	net.Listener
	sem      chan struct{}
	done     chan struct{} // closed by Close: an Accept waiting for room returns
	closeOne sync.Once
}

// Accept takes a slot, then a connection, which gives the slot back when it is closed.
func (l *limited) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
}

// Close closes the listener and wakes an Accept waiting for room.
func (l *limited) Close() error {
	l.closeOne.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and gives its slot back, once.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// logf logs to ErrorLog, or to the standard logger.
func (a *Admin) logf(format string, args ...any) {
	if a.opts.ErrorLog != nil {
		a.opts.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// Addr returns the address Listen bound, or nil before. Any goroutine.
func (a *Admin) Addr() net.Addr {
	if ta := a.addr.Load(); ta != nil {
		return ta
	}
	return nil
}

// Close stops the probe and the listener: it stops accepting, waits for the requests under
// way until ctx is done, then closes the connections left. Any goroutine; idempotent.
func (a *Admin) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		a.stop()
		<-a.probeDone
		a.s.SetPlacesObserver(nil)
		if err := a.hs.Shutdown(ctx); err != nil {
			a.hs.Close()
			a.closeErr = fmt.Errorf("admin: %s: %w", a.s.Name(), err)
		}
	})
	return a.closeErr
}

// probe posts a probe to the loop every LagInterval and records how long it waited there. A
// loop that is stuck holds the probe, so no probes pile up behind it; its lag is recorded
// when it answers, and readyz sees how long it has been waiting (probeStart).
func (a *Admin) probe(ctx context.Context) {
	defer close(a.probeDone)
	t := time.NewTicker(a.opts.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.probeStart.Store(time.Now().UnixNano())
		lag, err := a.s.LoopLag(ctx)
		a.probeStart.Store(0)
		if err == nil {
			a.lag.Observe(lag.Seconds())
			a.lastLag.Store(int64(lag))
		}
	}
}

// healthz answers 200 while the server's loop runs, 503 once it has ended.
func (a *Admin) healthz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-a.s.Done():
		http.Error(w, "stopped", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// readyz answers 200 once the server listens, is not stopping, answers its loop-lag probes
// and has every link up; else 503 and why.
func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if why := a.notReady(); why != "" {
		http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// notReady says why the server is not ready, or "" if it is. It reads atomics only.
func (a *Admin) notReady() string {
	s := a.s
	select {
	case <-s.Done():
		return "stopped"
	default:
	}
	switch {
	case s.Addr() == nil:
		return "not listening yet"
	case s.Stopping():
		return "shutting down"
	}
	if t := a.probeStart.Load(); t != 0 {
		if d := time.Since(time.Unix(0, t)); d > stuckAfter {
			return fmt.Sprintf("event loop has not answered a probe for %s", d.Round(time.Millisecond))
		}
	}
	var down []string
	m := s.Metrics()
	for i := range m.Links {
		if !m.Links[i].Up.Load() {
			down = append(down, m.Links[i].Peer)
		}
	}
	if len(down) > 0 {
		return "links down: " + strings.Join(down, ", ")
	}
	return ""
}

//go:embed page.html
var pageHTML []byte

// page serves the status page: one file with its CSS and JavaScript inline and its graph
// drawn in SVG, so it works with no network beyond this listener. The policy header makes
// the browser refuse anything else.
func (a *Admin) page(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	h.Set("Cache-Control", "no-store")
	w.Write(pageHTML)
}

// Name returns the name of the server the listener is for. Any goroutine.
func (a *Admin) Name() string { return a.s.Name() }
