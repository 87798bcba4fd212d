package herd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/reactor"
)

// Option changes how NewServer or NewHerd builds a server.
type Option func(*options)

type options struct {
	now      func() time.Time
	clock    reactor.Clock
	provider places.Provider
	logOut   io.Writer
	debug    bool
	cache    *places.Cache // NewHerd's, shared by its servers; nil: the server makes its own
	budget   *FileBudget   // NewHerd's, for the process; nil: the server makes its own
	only     []string      // WithServers: the servers NewHerd builds; nil: all
}

// WithClock makes the server take receive times from now instead of time.Now (tests use it to
// check AT lines byte for byte). now is called on the loop.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLoopClock hands c to the server's event loop (reactor.Options.Clock): the loop's timers
// (limits.idle_timeout, the redial backoff, the lingering close) run on c's timeline, and so do
// the receive times in AT lines unless WithClock gives another clock. Tests give a
// *reactor.FakeClock to move time themselves; Places timeouts, dial timeouts and the log's
// timestamps keep real time.
func WithLoopClock(c reactor.Clock) Option { return func(o *options) { o.clock = c } }

// WithProvider makes the server ask p instead of the provider the config names.
func WithProvider(p places.Provider) Option { return func(o *options) { o.provider = p } }

// WithLogOutput makes the server write its log to w instead of the file the config names, in
// the config's format and at its level, even when log.dir is "off" (log.level "off" still turns
// it off). w is written from one goroutine at a time (the server's log writer); the server
// closes w at Shutdown if it is an io.Closer.
func WithLogOutput(w io.Writer) Option { return func(o *options) { o.logOut = w } }

// WithServers makes NewHerd build only the servers of the config called names, in the
// config's order: a process that runs part of a herd (herd serve NAME is a herd of one). Their
// links to the servers left out go to the addresses the config gives them. NewServer ignores
// it.
func WithServers(names ...string) Option {
	return func(o *options) { o.only = append([]string(nil), names...) }
}

// WithDebug turns on the reactor's debug mode (slow-callback warnings, wrong-goroutine panics).
func WithDebug(on bool) Option { return func(o *options) { o.debug = on } }

// Metrics counts what a server did. Any goroutine may read the fields at any time.
type Metrics struct {
	ClientsOpen     atomic.Int64  // client connections open now
	ClientsTotal    atomic.Uint64 // client connections accepted
	ClientsRejected atomic.Uint64 // connections closed at once: over max_clients, or shutting down
	ClientsCut      atomic.Uint64 // clients cut off at max_unsent or max_pending
	Invalid         atomic.Uint64 // "?" replies
	IAMATs          atomic.Uint64
	WHATSATs        atomic.Uint64
	PeerUpdates     atomic.Uint64 // AT lines received from neighbours
	Stored          atomic.Uint64 // records Apply stored (changed)
	PlacesCalls     atomic.Uint64 // Places requests started (identical ones in flight counted once)
	PlacesShared    atomic.Uint64 // WHATSATs that joined an identical request in flight
	PlacesCacheHits atomic.Uint64 // Places requests answered from the cache (places.cache_ttl)
	PlacesErrors    atomic.Uint64 // Places calls that failed, or answered a body that could not be cut
	Waiting         atomic.Int64  // WHATSATs waiting for Places now (limits.max_waiting)
	LinksUp         atomic.Int64  // links up now (one per neighbour at most)
	LinkUps         atomic.Uint64 // times a link came up
	LinkConns       atomic.Int64  // link connections open now: in use, or in their hello
	LinkRefusals    atomic.Uint64 // link hellos refused, by this server or by a neighbour
	LinkHelloHolds  atomic.Uint64 // neighbours' hellos held while our own dial to them, which both keep, was under way
	LinkOverflows   atomic.Uint64 // links closed for exceeding max_link_unsent
	FloodLines      atomic.Uint64 // updates flooded (queued on every other link that is up), not counting resyncs
	ResyncsDone     atomic.Uint64 // resyncs finished (both sides done)
	ResyncRecords   atomic.Uint64 // records sent by resyncs
	ResyncBytes     atomic.Uint64 // bytes sent by resyncs: digests, summaries and records

	Records      atomic.Int64  // records held now
	RecordBytes  atomic.Int64  // the bytes they are counted for (Table.Bytes, limits.max_record_bytes)
	Stale        atomic.Uint64 // updates dropped: not newer than the record held
	RecordCounts RecordCounts  // records evicted and expired, updates refused for the TTL or a full table

	SnapshotWrites      atomic.Uint64 // snapshots written ([store] path)
	SnapshotWriteErrors atomic.Uint64 // snapshots that could not be written (the previous one stays)
	SnapshotLastWrite   atomic.Int64  // when the last snapshot was written (Unix nanoseconds; 0: none yet)
	SnapshotLoaded      atomic.Int64  // records read from the snapshot at start
	SnapshotBadLines    atomic.Uint64 // lines of that snapshot that were not whole records (damaged), or were refused
	SnapshotTruncated   atomic.Bool   // that snapshot had no end line: it was torn

	Lines          LineCounts // lines by command, "?" replies by reason
	Refused        [len(RefuseReasons)]atomic.Uint64
	Cut            [len(CutReasons)]atomic.Uint64
	PlacesErrorsBy [len(PlacesErrorKinds)]atomic.Uint64
	Links          []LinkMetrics // one per neighbour, in the config's order; set by NewServer
}

// Server is one server of the herd: a listener for its clients, one for its neighbours'
// links (the peer port), its links and its record table, all owned by one reactor loop.
//
// NewServer, Start, Addr, PeerAddr, Shutdown, Metrics and Record may be called from any
// goroutine but the loop (Start and Shutdown once each).
type Server struct {
	name string
	cfg  *Config // a private clone
	sc   ServerConfig
	lim  Limits
	opts options

	loop     *reactor.Loop
	prov     places.Provider
	cache    *places.Cache // nil: off
	log      *slog.Logger  // rare events (through lg's buffer on the loop)
	lg       *serverLog    // frequent records, appended by hand on the loop; nil when off
	logw     *LogWriter
	logInfo  bool // log lines in and out (checked once: the level never changes)
	logDebug bool // log ignored and discarded lines (checked once, as logInfo)
	now      func() time.Time
	// realClock: no clock was given (WithClock, WithLoopClock), so receive times and the
	// loop's time are the time each event began (eventNow): one clock read per event.
	realClock bool

	addr       atomic.Pointer[net.TCPAddr]
	peerAddr   atomic.Pointer[net.TCPAddr]
	started    atomic.Bool // Start was called
	running    atomic.Bool // the loop started
	shutOnce   sync.Once
	shutErr    error
	shutCalled atomic.Bool // Shutdown was called: a loop that ends now was stopped, not failed
	metrics    Metrics
	placesObs  atomic.Pointer[Observer] // SetPlacesObserver
	budget     FileBudget

	// Loop-owned state.
	table         *Table
	clients       map[uint64]*clientConn
	links         []*link
	linkByName    map[string]*link
	linkConns     map[*linkConn]struct{} // every link connection open, in use or in its hello
	pendingHellos int                    // accepted link connections whose hello is not done
	peerIPs       map[netip.Addr]Origin  // the neighbours' hosts: FromPlainHost where a plain peer is, else FromNeighbourHost
	peerLocal     Origin                 // for loopback, if a neighbour listens on an unspecified address (FromClient: none)
	inflight      map[string]*placesCall
	waiting       int           // WHATSATs waiting for Places, all clients (limits.max_waiting)
	busy          bool          // answering busy since waiting reached max_waiting (logged once)
	busyBody      []byte        // the busy answer's body, made once
	dirty         []*clientConn // clients with replies made ready in this pass
	flushDirtyFn  func()        // s.flushDirty, bound once
	unsentTotal   int           // the clients' unsent reply bytes at their last flush (noteUnsent)
	unsentCheck   bool          // checkUnsent is due at the end of this pass
	checkUnsentFn func()        // s.checkUnsent, bound once
	stopping      bool          // Shutdown began: no more lines are read, clients close once answered
	linksStopped  bool
	floodPending  bool  // some link has floods gathered
	core          *Core // what every line means, for clients and links alike
	keyScratch    []byte
	recent        recentRing   // the last updates stored, for Snapshot
	snap          *snapshotter // [store] path set: the snapshots' state; nil: none

	// Fixed at NewServer.
	secret      []byte // links.secret, or nil
	instance    []byte // this process's instance, in HELLO lines
	linkHigh    int    // a link's write-buffer high mark
	linkLineMax int    // the longest line a link takes
}

// NewServer builds the server called name of cfg (validated by LoadConfig, ParseConfig or
// Validate). It opens the server's log and builds its Places provider (unless given one) but
// does not listen yet: see Start. An unknown name or a provider the config cannot build gives
// a *ConfigError.
func NewServer(cfg *Config, name string, opts ...Option) (*Server, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	cfg = cfg.Clone()
	sc := cfg.Server(name)
	if sc == nil {
		return nil, cfg.errNoServer(name)
	}
	if sc.Plain() {
		return nil, &ConfigError{Key: "link", Msg: fmt.Sprintf("server %q is plain (link = %q): a server of another implementation, which this program does not run", name, LinkPlain)}
	}
	budget := o.budget
	if budget == nil {
		b := NewFileBudget(cfg, []ServerConfig{*sc}, fileLimit())
		budget = &b
	}
	cfg.fitBudget(*budget)
	s := &Server{
		name:       name,
		cfg:        cfg,
		sc:         *sc,
		lim:        cfg.Limits,
		opts:       o,
		now:        o.now,
		table:      NewTable(),
		core:       NewCore(name),
		clients:    make(map[uint64]*clientConn),
		inflight:   make(map[string]*placesCall),
		peerIPs:    make(map[netip.Addr]Origin),
		linkByName: make(map[string]*link),
		linkConns:  make(map[*linkConn]struct{}),
		instance:   newInstance(),
	}
	if cfg.Links.Secret != "" {
		s.secret = []byte(cfg.Links.Secret)
	}
	s.linkLineMax = max(cfg.Limits.MaxLine+codec.ATOverhead, 1024)
	// Validation keeps max_link_unsent at MinLinkUnsent or more, so the mark is at least a chunk.
	s.linkHigh = min(linkHighMax, cfg.Limits.MaxLinkUnsent-linkChunk-cfg.Limits.MaxLine-codec.ATOverhead-1)
	s.realClock = s.now == nil && o.clock == nil
	if s.now == nil && o.clock != nil {
		s.now = o.clock.Now
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.flushDirtyFn = s.flushDirty
	s.checkUnsentFn = s.checkUnsent
	s.prov = o.provider
	if s.prov == nil {
		p, err := NewProvider(cfg.Places)
		if err != nil {
			return nil, err
		}
		s.prov = p
	}
	s.log = discardLogger
	if lc := cfg.Log; lc.Level != "off" && (o.logOut != nil || !lc.Off()) {
		var w *LogWriter
		if o.logOut != nil {
			w = NewLogWriter(o.logOut, 0)
		} else {
			var err error
			if w, err = openLogFile(lc, name); err != nil {
				return nil, err
			}
		}
		s.logw = w
		s.lg = newServerLog(w, lc, name, nil)
		s.log = newSlog(logSink{s.lg}, lc).With("server", name)
	}
	s.logInfo = s.log.Enabled(context.Background(), slog.LevelInfo)
	s.logDebug = s.log.Enabled(context.Background(), slog.LevelDebug)
	if d, ok := places.Dataset(s.prov); ok && d.File != "" {
		s.log.Info("places dataset loaded", "file", d.File, "places", d.Places, "skipped", d.Skipped(),
			"unnamed", d.Unnamed, "not_point", d.NotPoint, "invalid", d.Invalid)
	}
	s.cache = o.cache
	if s.cache == nil {
		s.cache = places.NewCache(0, cfg.Places.CacheTTL)
	}
	s.loop = reactor.New(reactor.Options{Logger: s.log, Debug: o.debug, Workers: cfg.Places.Workers,
		MaxQueued: cfg.Limits.MaxWaiting, Clock: o.clock})
	if s.lg != nil {
		s.lg.loop = s.loop
	}
	s.core.counts = &s.metrics.Lines
	s.core.SetMaxClockSkew(s.lim.MaxClockSkew)
	s.table.SetLimits(s.tableLimits())
	s.metrics.Links = make([]LinkMetrics, len(sc.Peers))
	for i, p := range sc.Peers {
		s.metrics.Links[i].Peer = p
		pc := cfg.Server(p)
		l := &link{s: s, name: p, plain: pc.Plain(), perMessage: pc.PerMessage(), m: &s.metrics.Links[i]}
		s.links = append(s.links, l)
		s.linkByName[p] = l
	}
	s.budget = *budget
	if budget.Lowered {
		s.log.Warn("limits lowered to fit the open file limit", "nofile", budget.Limit,
			"servers_in_process", budget.Servers, "max_clients", s.lim.MaxClients, "places_max_conns", budget.PlacesConns)
	}
	return s, nil
}

// eventNow returns the loop's time for what it handles now: with the real clock, the time the
// event began (reactor.Loop.EventTime), read once however many lines, records and deadlines
// the event has; with a clock given (WithLoopClock), that clock's time. Loop only.
func (s *Server) eventNow() time.Time {
	if s.realClock {
		return s.loop.EventTime()
	}
	return s.loop.Time()
}

// recvNow returns the receive time of the lines read now: eventNow's with the real clock, else
// the clock WithClock gave (or WithLoopClock's). Loop only.
func (s *Server) recvNow() time.Time {
	if s.realClock {
		return s.loop.EventTime()
	}
	return s.now()
}

// tableLimits returns the record table's limits from the config, counted in the server's
// metrics.
func (s *Server) tableLimits() TableLimits {
	return TableLimits{MaxRecords: s.lim.MaxRecords, MaxBytes: int64(s.lim.MaxRecordBytes), TTL: s.cfg.Records.TTL,
		Now: s.now, Counts: &s.metrics.RecordCounts}
}

// fitBudget sets max_clients and places.max_conns to what b gives them.
func (c *Config) fitBudget(b FileBudget) {
	c.Limits.MaxClients = min(c.Limits.MaxClients, b.MaxClients)
	if b.PlacesConns > 0 {
		c.Places.MaxConns = b.PlacesConns
	}
}

// errNoServer is NewServer's and NewHerd's error for a name the config does not have.
func (c *Config) errNoServer(name string) error {
	return &ConfigError{Msg: fmt.Sprintf("no server named %q in the config (servers: %v)", name, c.sortedNames())}
}

// MaxClients returns the most client connections the server accepts at once: max_clients, or
// less when the process's open file limit cannot hold that many (see the package doc and
// FileBudget). Any goroutine.
func (s *Server) MaxClients() int { return s.lim.MaxClients }

// MaxRecords returns the most client records the server holds (limits.max_records). Any
// goroutine.
func (s *Server) MaxRecords() int { return s.lim.MaxRecords }

// MaxRecordBytes returns the most bytes the records may be counted for
// (limits.max_record_bytes, see RecordBytes). Any goroutine.
func (s *Server) MaxRecordBytes() int64 { return int64(s.lim.MaxRecordBytes) }

// AcceptErrors returns how many times accepting a connection failed (EMFILE and the like:
// the server paused and accepted again; see reactor.Loop.AcceptErrors). Any goroutine.
func (s *Server) AcceptErrors() uint64 { return s.loop.AcceptErrors() }

// FileBudget returns how the process's open file limit was shared when the server was built.
// Any goroutine.
func (s *Server) FileBudget() FileBudget { return s.budget }

// Done returns a channel closed when the server's loop has ended: after Shutdown, or on its own
// (see Err). Any goroutine.
func (s *Server) Done() <-chan struct{} { return s.loop.Done() }

// Err returns why the server's loop ended, once Done is closed: nil after Shutdown, else the
// engine's error (or one saying the loop ended on its own). Nil while it runs. Any goroutine.
func (s *Server) Err() error {
	select {
	case <-s.loop.Done():
	default:
		return nil
	}
	if s.shutCalled.Load() {
		return nil
	}
	if err := s.loop.Wait(); err != nil {
		return fmt.Errorf("herd: %s: event loop ended: %w", s.name, err)
	}
	return fmt.Errorf("herd: %s: event loop ended on its own (see its log)", s.name)
}

// NewProvider builds the Places provider a config names. A setting the provider rejects gives
// a *ConfigError naming its key (places.url, places.key, ...). Any goroutine.
func NewProvider(c PlacesConfig) (places.Provider, error) {
	if c.MaxConns == 0 {
		c.MaxConns = c.Workers // what one server's calls need
	}
	p, err := places.New(places.Config{
		Provider: c.Provider, URL: c.URL, Key: c.Key, Timeout: c.Timeout,
		MaxConns: c.MaxConns, Dataset: c.Dataset,
	})
	if err != nil {
		ce := &ConfigError{Key: "places", Msg: err.Error(), Err: err}
		if pe := (*places.ConfigError)(nil); errors.As(err, &pe) {
			ce.Key, ce.Msg = "places."+pe.Key, pe.Msg
		}
		return nil, ce
	}
	return p, nil
}

// Name returns the server's name. Any goroutine.
func (s *Server) Name() string { return s.name }

// Metrics returns the server's counters. Any goroutine.
func (s *Server) Metrics() *Metrics { return &s.metrics }

// Provider returns the server's Places provider. Any goroutine.
func (s *Server) Provider() places.Provider { return s.prov }

// Addr returns the address the server listens on for clients, once Start has returned (nil
// before).
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return a
	}
	return nil
}

// PeerAddr returns the address the server listens on for its neighbours' links (peer_addr),
// once Start has returned (nil before).
func (s *Server) PeerAddr() net.Addr {
	if a := s.peerAddr.Load(); a != nil {
		return a
	}
	return nil
}

// Start listens on the server's client and peer addresses and dials its neighbours at once,
// at the addresses the config gives them. It returns once the server accepts connections.
func (s *Server) Start() error {
	if err := s.listen(); err != nil {
		return err
	}
	return s.startLinks(s.cfg)
}

// listen binds the listener and starts the loop.
func (s *Server) listen() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("herd: server already started")
	}
	// Before the first connection: its origin (originOf) is decided when it is accepted.
	s.resolveNeighbourHosts(s.cfg)
	if s.cfg.Store.Path != "" {
		if err := s.loadSnapshot(); err != nil {
			return err
		}
		s.snap = newSnapshotter(s.cfg.Store.Path, s.name, s.table.Changes())
	}
	if err := s.loop.Listen(s.sc.Addr, func() reactor.Protocol { return s.newClient() }); err != nil {
		return fmt.Errorf("herd: %s: listen %s: %w", s.name, s.sc.Addr, err)
	}
	if err := s.loop.Listen(s.sc.PeerAddr, func() reactor.Protocol { return s.newLinkConn(nil, 0) }); err != nil {
		return fmt.Errorf("herd: %s: listen %s (peer_addr): %w", s.name, s.sc.PeerAddr, err)
	}
	if err := s.loop.Start(); err != nil {
		return fmt.Errorf("herd: %s: listen %s and %s (peer_addr): %w", s.name, s.sc.Addr, s.sc.PeerAddr, err)
	}
	s.running.Store(true)
	if s.snap != nil {
		go s.snapshotWriter()
	}
	if s.snap != nil || s.cfg.Records.TTL > 0 {
		s.loop.CallSoonThreadsafe(s.housekeep)
	}
	for i, p := range []*atomic.Pointer[net.TCPAddr]{&s.addr, &s.peerAddr} {
		if addrs := s.loop.Addrs(); len(addrs) > i {
			if ta, ok := addrs[i].(*net.TCPAddr); ok {
				p.Store(ta)
			} else if ap, err := netip.ParseAddrPort(addrs[i].String()); err == nil {
				p.Store(net.TCPAddrFromAddrPort(ap))
			}
		}
	}
	s.log.Info("listening", "addr", addrString(s.Addr()), "peer_addr", addrString(s.PeerAddr()))
	return nil
}

// resolveNeighbourHosts sets the neighbours' hosts (the hosts of their addr and peer_addr,
// of a plain one its addr) from cfg and resolves them now, each name within dial_timeout;
// each dial to a neighbour named by a host name resolves them again (link.dial). Before the
// loop runs only.
func (s *Server) resolveNeighbourHosts(cfg *Config) {
	for _, l := range s.links {
		nc := cfg.Server(l.name)
		l.hosts = l.hosts[:0]
		addrs := []string{nc.Addr, nc.PeerAddr}
		if l.plain {
			addrs = addrs[:1] // it has no peer port
		}
		for _, a := range addrs {
			if host, _, err := net.SplitHostPort(a); err == nil && !contains(l.hosts, host) {
				l.hosts = append(l.hosts, host)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.lim.DialTimeout)
		r, err := resolveHosts(ctx, l.hosts)
		cancel()
		if err != nil {
			s.log.Warn("neighbour host not resolved", "peer", l.name, "err", err)
		}
		l.ips, l.local = r.ips, r.local
	}
	s.rebuildPeerHosts()
}

// rebuildPeerHosts gathers the neighbours' hosts for originOf: a host where a plain peer
// is gives FromPlainHost, whatever other neighbours share it (max: the origins sort
// FromClient < FromNeighbourHost < FromPlainHost). Loop only, once it runs.
func (s *Server) rebuildPeerHosts() {
	clear(s.peerIPs)
	s.peerLocal = FromClient
	for _, l := range s.links {
		o := FromNeighbourHost
		if l.plain {
			o = FromPlainHost
		}
		for _, ip := range l.ips {
			s.peerIPs[ip] = max(s.peerIPs[ip], o)
		}
		if l.local {
			s.peerLocal = max(s.peerLocal, o)
		}
	}
}

// startLinks tells the loop where its neighbours are (in cfg: their peer_addr, or addr for a
// plain one) and starts dialling them. A neighbour on an unspecified address is dialled on
// 127.0.0.1.
func (s *Server) startLinks(cfg *Config) error {
	addrs := make(map[string]string, len(s.links))
	for _, l := range s.links {
		nc := cfg.Server(l.name)
		a := nc.PeerAddr
		if l.plain {
			a = nc.Addr
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("herd: %s: peer %s: %w", s.name, l.name, err)
		}
		if unspecified(host) {
			a = net.JoinHostPort("127.0.0.1", port)
		}
		addrs[l.name] = a
	}
	return s.loop.CallSoonThreadsafe(func() {
		if s.stopping {
			return
		}
		for _, l := range s.links {
			l.addr = addrs[l.name]
			l.dial()
		}
	})
}

// originOf returns the origin of a connection accepted on the client port from addr, when
// the herd has no secret: FromPlainHost from a plain peer's host, FromNeighbourHost from
// another neighbour's, else FromClient; with a secret, FromClient (AT lines come on
// authenticated links only). Loop only.
func (s *Server) originOf(addr net.Addr) Origin {
	if s.secret != nil {
		return FromClient
	}
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr: // what transports have: no parsing, no allocation
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
		return FromClient
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return FromClient
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	o := s.peerIPs[ip] // FromClient (0) if none
	if ip.IsLoopback() {
		o = max(o, s.peerLocal)
	}
	return o
}

// Record returns the AT line the server holds for client, as it stands on the loop now.
// Any goroutine but the loop; false if unknown or the server is not running.
func (s *Server) Record(client string) (string, bool) {
	type res struct {
		line string
		ok   bool
	}
	if !s.running.Load() {
		// No loop running: the table is the caller's.
		if r := s.table.Get([]byte(client)); r != nil {
			return string(r.Line), true
		}
		return "", false
	}
	ch := make(chan res, 1)
	if err := s.loop.CallSoonThreadsafe(func() {
		if r := s.table.Get([]byte(client)); r != nil {
			ch <- res{string(r.Line), true}
		} else {
			ch <- res{}
		}
	}); err != nil {
		return "", false
	}
	select {
	case r := <-ch:
		return r.line, r.ok
	case <-s.loop.Done():
		return "", false
	}
}

// Shutdown stops the server gracefully. It stops taking new clients (the listener is closed)
// and reading new requests, and keeps the loop running until every reply it owes
// (WHATSATs waiting on Places included) has been written and taken by the client, slow readers
// included (reactor.Loop.Shutdown: the send queue is empty and the write side shut), and the
// floods of the last updates have gone out on the links, which close last. Then it stops the
// loop and flushes its log.
//
// If ctx ends first, what is left is dropped: Shutdown logs how many connections were still
// owed bytes and how many ("grace period over" at WARN), and returns an *UnsentError that
// wraps ctx's error. It returns shortly after ctx ends (see afterGrace). Any goroutine but the
// loop; idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { s.shutErr = s.shutdown(ctx) })
	return s.shutErr
}

// afterGrace bounds how long Shutdown waits for the loop to end once ctx has ended and the
// loop has been told to stop at once: the loop's own teardown takes microseconds, but its
// end also waits for the goroutines it started (Places calls, told to give up, and dials).
const afterGrace = time.Second

func (s *Server) shutdown(ctx context.Context) error {
	s.shutCalled.Store(true)
	var err error
	if s.running.Load() {
		if s.loop.CallSoonThreadsafe(s.beginStop) != nil {
			s.loop.Stop() // stopping already (it ended on its own)
		}
		select {
		case <-s.loop.Done():
		case <-ctx.Done():
			if ue := s.graceOver(ctx.Err()); ue != nil {
				err = ue
			}
		}
	}
	select {
	case <-s.loop.Done():
		s.lg.final() // the loop is gone: its last records are ours to hand off
	default:
		if !s.running.Load() {
			s.lg.final()
		}
	}
	var ue *UnsentError
	if errors.As(err, &ue) {
		s.log.Warn("grace period over: replies not delivered", "conns", ue.Conns, "bytes", ue.Bytes, "whatsats", ue.WHATSATs)
	}
	select {
	case <-s.loop.Done():
		if serr := s.finalSnapshot(); serr != nil {
			err = errors.Join(err, serr)
		}
	default:
		if s.snap != nil && s.running.Load() {
			s.log.Warn("the event loop has not ended: no last snapshot written")
		}
	}
	if s.logw != nil {
		s.log.Info("stopped", "log_dropped", s.logw.Dropped())
		if cerr := s.logw.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// ReopenLog reopens the server's log file (see LogWriter.Reopen), for logrotate's SIGHUP: the
// records before it are in the old file or the new one, none lost, and the new file starts
// with a "log reopened" record. A failure is logged, to the old file, and returned. Any
// goroutine but the loop; nil when logging is off or goes to standard error.
func (s *Server) ReopenLog() error {
	if s.logw == nil || s.cfg.Log.Stderr() && s.opts.logOut == nil {
		return nil
	}
	if err := s.logw.Reopen(); err != nil {
		err = fmt.Errorf("herd: %s: reopen log: %w", s.name, err)
		s.log.Warn("log reopen failed: still writing to the old file", "err", err)
		return err
	}
	s.log.Info("log reopened")
	return nil
}

// UnsentError is Shutdown's error when its context ended before every reply and flood the
// server owed had been taken by its peer: the stop was not clean, and that much was dropped.
type UnsentError struct {
	Server   string
	Conns    int   // connections (clients and links) still owed bytes
	Bytes    int64 // the bytes they were owed: written and not yet taken, or not yet written
	WHATSATs int   // WHATSATs still waiting on Places, whose replies were never made
	Err      error // the context's error
}

// Error says how much was dropped, and why. Any goroutine.
func (e *UnsentError) Error() string {
	return fmt.Sprintf("herd: %s: grace period over with %d connections owed %d bytes (%d WHATSATs unanswered): %v",
		e.Server, e.Conns, e.Bytes, e.WHATSATs, e.Err)
}

// Unwrap returns the context's error. Any goroutine.
func (e *UnsentError) Unwrap() error { return e.Err }

// graceOver ends a stop whose context ended: on the loop it counts what is still owed and
// stops the loop at once (reactor.Loop.Stop aborts what is left). It returns the count, or nil
// if nothing was owed after all (the stop finished as ctx ended). Not on the loop.
func (s *Server) graceOver(cause error) *UnsentError {
	counted := make(chan *UnsentError, 1)
	if s.loop.CallSoonThreadsafe(func() {
		counted <- s.owedOnLoop(cause)
		s.loop.Stop()
	}) != nil {
		s.loop.Stop()
	}
	var ue *UnsentError
	select {
	case ue = <-counted:
	case <-s.loop.Done():
		select {
		case ue = <-counted:
		default:
		}
	}
	select {
	case <-s.loop.Done():
	case <-time.After(afterGrace):
	}
	if ue == nil || ue.Conns == 0 {
		return nil
	}
	return ue
}

// owedOnLoop counts what the server owes its peers: bytes in transports' buffers and kernel
// send queues (reactor.Loop.Unsent, which includes clients whose connections linger), replies
// queued behind a WHATSAT and flood output not yet written. Loop only.
func (s *Server) owedOnLoop(cause error) *UnsentError {
	owed := s.loop.Unsent()
	ue := &UnsentError{Server: s.name, Err: cause}
	for id, c := range s.clients {
		if n := c.qBytes + len(c.out); n > 0 {
			owed[id] += n
		}
		ue.WHATSATs += c.waiting
	}
	for _, l := range s.links {
		if l.c == nil {
			continue
		}
		n := len(l.out)
		if mt, ok := l.c.t.(*msgTransport); ok {
			n += mt.WriteBufferSize() // not in the loop's count: lines queued for connections to come
		}
		if n > 0 {
			owed[l.c.t.ID()] += n
		}
	}
	ue.Conns = len(owed)
	for _, n := range owed {
		ue.Bytes += int64(n)
	}
	return ue
}

// beginStop runs on the loop: the loop's graceful stop begins (reactor.Loop.Shutdown), the
// listener is closed (or, where the reactor cannot, new connections are closed at once), no
// more redials, no more lines read, clients owed nothing closed, the others closed after
// their last reply; then (checkDrained) the links flushed, with what those last replies
// stored, and closed once written. The loop ends once every connection is closed and its
// peer has taken every byte.
func (s *Server) beginStop() {
	s.stopping = true
	s.log.Info("shutting down", "clients", len(s.clients))
	s.loop.Shutdown()
	if err := s.loop.CloseListeners(); err != nil {
		s.log.Info("listener left open while stopping: new connections are closed at once", "err", err)
	}
	for _, c := range s.clients {
		c.stopReading()
	}
	s.checkDrained()
}

// linkSettle is how long a stopping server's links stay open, reading and relaying, once its
// clients are gone. Servers stopped together (a whole herd, say) still have floods in flight
// between them; for that long each takes them and passes them on, so that every server's last
// snapshot holds every update acknowledged before the stop. A server that stops alone loses
// nothing by closing earlier (its neighbours have its floods, and the resync makes up the
// rest at its restart): the wait only costs its stop that much time.
const linkSettle = 100 * time.Millisecond

// checkDrained moves the stop on: once no client is left, the links are flushed, kept
// reading and relaying for linkSettle, then shut (closeLinks). Link connections still in
// their hello are aborted at once. Loop only.
func (s *Server) checkDrained() {
	if !s.stopping || s.linksStopped || len(s.clients) > 0 {
		return
	}
	s.linksStopped = true
	s.flushLinks()
	for c := range s.linkConns {
		if c.state != connUp {
			c.state = connDone
			c.t.Abort() // in its hello: nothing to finish
		}
	}
	up := false
	for _, l := range s.links {
		up = up || l.c != nil
	}
	if !up {
		s.closeLinks()
		return
	}
	// Real time, not the loop's clock: a test's fake clock must not hold a stop forever.
	time.AfterFunc(linkSettle, func() {
		_ = s.loop.CallSoonThreadsafe(s.closeLinks) // ErrClosed: the stop has ended, nothing to close
	})
}

// closeLinks ends every link as the stop's last step (link.stop): no more dials, and each
// connection's write side is shut once its output is written, while what the neighbour still
// sends is taken until it closes too, or for linkSettle more at most (a neighbour that does
// not answer the end of a link must not hold the stop). Loop only.
func (s *Server) closeLinks() {
	s.flushLinks()
	for _, l := range s.links {
		l.stop()
	}
	// No connection is in its hello now: checkDrained aborted those, and a stopping server
	// neither dials nor keeps what it accepts (linkConn.made).
	if len(s.linkConns) == 0 {
		return
	}
	time.AfterFunc(linkSettle, func() {
		_ = s.loop.CallSoonThreadsafe(func() {
			for c := range s.linkConns {
				if c.state != connDone {
					c.state = connDone
					c.t.Close()
				}
			}
		})
	})
}

// applied is what came of an update (Server.apply).
type applied uint8

const (
	stale   applied = iota // not newer than the record held: dropped
	stored                 // stored, and no link was up to take it
	flooded                // stored and queued on every link up but the one it came on
)

var appliedText = [...]string{stale: "stale", stored: "stored", flooded: "flooded"}

// apply stores the record of m with its AT line if it is newer than the one held
// (Table.Apply) and floods it to every link but from's (the link it came on; nil for a
// client's), and says which it did. Loop only.
func (s *Server) apply(m *codec.Message, line []byte, from *link) applied {
	changes := s.table.Changes()
	changed := s.table.Apply(m, line)
	if s.table.Changes() != changes { // stored, or something evicted or expired
		s.noteTable()
	}
	if !changed {
		s.metrics.Stale.Add(1)
		return stale
	}
	s.metrics.Stored.Add(1)
	s.recent.add(s.eventNow(), m.Kind == codec.AT, line)
	if !s.flood(line, from) {
		return stored
	}
	return flooded
}

// linkIn logs an AT line a neighbour sent on link l, with what came of it: the one record of
// a line in whose flood is not logged apart (Server.flood). Loop only, at INFO.
func (s *Server) linkIn(l *link, line []byte, r applied) {
	g := s.lg
	g.begin(slog.LevelInfo, "in")
	g.str("peer", l.name)
	g.line("in", line)
	g.str("result", appliedText[r])
	g.end()
}

// noteTable updates the metrics of the record table after it changed. Loop only.
func (s *Server) noteTable() {
	s.metrics.Records.Store(int64(s.table.Len()))
	s.metrics.RecordBytes.Store(s.table.Bytes())
}

// ignored logs a line that Core said to ignore (err says why): at WARN for an AT line whose
// time is beyond max_clock_skew (a neighbour's clock is wrong, or the line is forged: an
// operator must hear of it), at DEBUG for the rest. attrs say where it came from. Loop only.
func (s *Server) ignored(line []byte, err error, attrs ...any) {
	if errors.Is(err, ErrClockSkew) {
		s.log.Warn("AT line dropped: time ahead of this server's clock by more than max_clock_skew",
			append(attrs, "line", string(line), "max_clock_skew", s.lim.MaxClockSkew)...)
		return
	}
	if s.logDebug { // not otherwise: the line's copy and the attributes would be made for nothing
		s.log.Debug("ignored line", append(attrs, "line", string(line), "why", err)...)
	}
}

// SetLinkFault injects fault f into this server's side of its link with its neighbour peer,
// or heals it with NoFault (see LinkFault). With LinkDrops the neighbour's floods still
// arrive: Herd.SetLinkFault sets both sides, a partition of the two servers. Tests use it
// to partition a herd without stopping servers; an operator may use it for a drill. It
// returns once the loop has applied it. Any goroutine but the loop, before Start or while
// the server runs (not while Start runs).
func (s *Server) SetLinkFault(peer string, f LinkFault) error {
	l := s.linkByName[peer] // built by NewServer, never changed: any goroutine may read it
	if l == nil {
		return fmt.Errorf("herd: %s: no link to %q", s.name, peer)
	}
	if !s.running.Load() {
		l.fault = f // no loop yet: its first dial sees it
		return nil
	}
	done := make(chan struct{})
	if err := s.loop.CallSoonThreadsafe(func() {
		l.setFault(f)
		close(done)
	}); err != nil {
		return fmt.Errorf("herd: %s: link fault: %w", s.name, err)
	}
	select {
	case <-done:
		return nil
	case <-s.loop.Done():
		return fmt.Errorf("herd: %s: link fault: the server has stopped", s.name)
	}
}

// flood queues an AT line (without "\n") on every link that is up but from (nil: none), to
// be written by flushLinks at the end of the read that caused it: before the reply to the
// client, so that a client that has its reply finds its update at the neighbours whenever
// the links are up. It reports whether a link took it. A client's update flooded is logged
// here; a neighbour's is logged with the line that brought it (linkIn). Loop only.
func (s *Server) flood(line []byte, from *link) bool {
	queued := false
	for _, l := range s.links {
		if l.c != nil && l != from && !l.stopped {
			l.out = append(l.out, line...)
			l.out = append(l.out, '\n')
			queued = true
		}
	}
	if !queued {
		return false
	}
	s.floodPending = true
	s.metrics.FloodLines.Add(1)
	if s.logInfo && from == nil {
		g := s.lg
		g.begin(slog.LevelInfo, "flood")
		g.line("line", line)
		g.end()
	}
	return true
}

// flushLinks writes each link's gathered floods in one write. Every front end calls it at
// the end of a read that may have applied records, and before it writes the replies of that
// read (clientConn.flushOut). O(1) when nothing was flooded. Loop only.
func (s *Server) flushLinks() {
	if !s.floodPending {
		return
	}
	s.floodPending = false
	for _, l := range s.links {
		l.flush()
	}
}

// backoff returns the delay before redial number attempt (0-based): full jitter over an
// exponentially growing bound, base * 2^attempt capped at the configured cap.
func backoff(base, cap time.Duration, attempt int) time.Duration {
	bound := cap
	if attempt < 30 {
		if b := base << attempt; b > 0 && b < cap {
			bound = b
		}
	}
	return rand.N(bound) + 1
}

// placesCall is one Places request in flight and the WHATSATs waiting for it. Its request
// and start do not change once it is made: the worker that runs it reads them.
type placesCall struct {
	s       *Server
	key     string
	req     places.Request
	waiters []waiter
	start   time.Time
}

type waiter struct {
	c     *clientConn
	slot  *slot
	bound int
}

// askPlaces starts (or joins) the Places request for record r and radius; the reply goes into
// sl when it comes back. This is the one place where identical requests are coalesced, and the
// cache (places.cache_ttl) is read here, on the loop, so that a cached answer never waits for a
// worker. The call runs on the loop's executor, in the turn of the connection that made it
// (the executor serves connections in turn), with a deadline of places.timeout from now: the
// WHATSAT is answered by then however many calls are queued before it, and whatever Places
// does. Loop only.
func (s *Server) askPlaces(c *clientConn, sl *slot, r *Record, m *codec.Message) {
	k := s.keyScratch[:0]
	k = append(k, r.Lat...)
	k = append(k, ',')
	k = append(k, r.Lng...)
	k = append(k, ',')
	k = codec.AppendRadiusMetres(k, m.Radius)
	s.keyScratch = k
	w := waiter{c: c, slot: sl, bound: m.Bound}
	if call, ok := s.inflight[string(k)]; ok {
		call.waiters = append(call.waiters, w)
		s.metrics.PlacesShared.Add(1)
		return
	}
	radius := string(k[len(r.Lat)+len(r.Lng)+2:])
	call := &placesCall{
		s: s, key: string(k), waiters: []waiter{w}, start: s.loop.Time(),
		req: places.Request{
			Lat: string(r.Lat), Lng: string(r.Lng), RadiusM: radius,
			LatF: r.LatF, LngF: r.LngF, RadiusMF: m.RadiusKm * 1000, Bound: m.Bound,
		},
	}
	s.inflight[call.key] = call
	if body, ok := s.cache.Get(call.key); ok {
		// Answered in the next pass: WHATSATs for it read meanwhile join it.
		s.metrics.PlacesCacheHits.Add(1)
		a := newAnswer(body)
		a.cached = true
		s.loop.CallSoonFunc(func() { s.placesDone(call, a, nil) })
		return
	}
	s.metrics.PlacesCalls.Add(1)
	if s.logInfo {
		g := s.lg
		g.begin(slog.LevelInfo, "places call")
		g.str("provider", s.prov.Name())
		g.str("request", call.key)
		g.end()
	}
	job := reactor.JobOptions{Deadline: call.start.Add(s.cfg.Places.Timeout), Key: c.id}
	reactor.GoWith(s.loop, job, call.nearby).AddDoneCallback(call.done)
}

// nearby makes the call, off the loop, indexes its body (in the provider's own scan of it when
// the provider is a places.Indexer) and cuts it for the first WHATSAT's bound, so that the
// loop only copies. The index cuts it for other bounds later without a second scan: a body of
// 20 results is tens of KiB.
func (call *placesCall) nearby(ctx context.Context) (*placesAnswer, error) {
	bound := call.req.Bound
	a := &placesAnswer{bound: bound}
	var ixErr error
	if p, ok := call.s.prov.(places.Indexer); ok {
		a.body, a.ix, a.err = p.NearbyIndexed(ctx, call.req)
	} else {
		a.body, a.err = call.s.prov.Nearby(ctx, call.req)
		a.ix, ixErr = codec.IndexPlaces(a.body)
	}
	if len(a.body) == 0 { // a provider breaking its contract: its error may say too much
		a.body = codec.AppendErrorBody(nil, "UNKNOWN_ERROR", "places: no answer")
		a.ix, ixErr = codec.IndexPlaces(a.body)
	}
	a.ixErr = ixErr
	a.cut, a.rejected = a.appendCut(make([]byte, 0, a.ix.CutSize(a.body, bound)+2), bound)
	return a, a.err
}

// done takes the call's result on the loop: an answer, or, for a call that did not return in
// time (or never ran), an UNKNOWN_ERROR body saying why. Loop only.
func (call *placesCall) done(f *reactor.Future[*placesAnswer]) {
	s := call.s
	a, err := f.Result()
	if a == nil {
		var msg string
		switch {
		case errors.Is(err, reactor.ErrDeadline):
			msg = fmt.Sprintf("places: timeout after %s", s.cfg.Places.Timeout)
		case errors.Is(err, reactor.ErrBusy):
			msg = busyText
		default: // the server is stopping
			msg = "places: server stopping"
		}
		a = newAnswer(codec.AppendErrorBody(nil, "UNKNOWN_ERROR", msg))
	}
	s.placesDone(call, a, err)
}

// flushAtPassEnd has c's ready replies written at the end of the loop's pass, in one write
// with those other completions of the pass make ready (as redis writes its clients' output
// in beforeSleep). Loop only.
func (s *Server) flushAtPassEnd(c *clientConn) {
	if len(s.dirty) == 0 {
		s.loop.CallAtPassEnd(s.flushDirtyFn)
	}
	s.dirty = append(s.dirty, c)
}

// flushDirty writes the replies made ready in this pass, one write per client. Loop only.
func (s *Server) flushDirty() {
	for i := 0; i < len(s.dirty); i++ {
		c := s.dirty[i]
		s.dirty[i] = nil
		c.dirty = false
		c.flushOut()
	}
	s.dirty = s.dirty[:0]
}

// busyText is the error_message of the answer to a WHATSAT past limits.max_waiting.
const busyText = "places: server busy, too many requests waiting; try again later"

// placesBusy answers the WHATSAT of slot sl at once, with an UNKNOWN_ERROR body saying the
// server is busy: max_waiting WHATSATs are waiting for Places. Loop only.
func (s *Server) placesBusy(c *clientConn, sl *slot) {
	s.metrics.PlacesErrors.Add(1)
	s.metrics.PlacesErrorsBy[placesErrBusy].Add(1)
	if !s.busy {
		s.busy = true
		s.log.Warn("places: max_waiting WHATSATs waiting; answering busy", "max_waiting", s.lim.MaxWaiting)
	}
	if s.busyBody == nil {
		s.busyBody, _ = newAnswer(codec.AppendErrorBody(nil, "UNKNOWN_ERROR", busyText)).appendCut(nil, places.MaxResults)
	}
	sl.body = s.busyBody
	c.slotReady(sl)
}

// placesAnswer is a Places body, its index and its cut for one bound, made off the loop.
type placesAnswer struct {
	body     []byte
	ix       codec.PlacesIndex
	ixErr    error  // why body could not be indexed (it is not JSON), or nil
	err      error  // the provider's
	bound    int    // the bound cut is for (-1: none)
	cut      []byte // the reply body for bound, with the final blank line
	rejected error  // why body was replaced by an UNKNOWN_ERROR body, or nil
	cached   bool   // body came from the cache
}

// newAnswer indexes body (from the cache, or made on the loop), with no cut yet. Any
// goroutine.
func newAnswer(body []byte) *placesAnswer {
	a := &placesAnswer{body: body, bound: -1}
	a.ix, a.ixErr = codec.IndexPlaces(body)
	return a
}

// appendCut appends to dst the reply body for bound and its final blank line, from the index
// (cutIndexed). Any goroutine; a is not changed.
func (a *placesAnswer) appendCut(dst []byte, bound int) (out []byte, rejected error) {
	out, rejected = cutIndexed(dst, a.body, &a.ix, a.ixErr, bound)
	return append(out, '\n', '\n'), rejected
}

// cutBody appends to dst the reply body for bound: body with "results" cut to bound
// (codec.AppendPlacesBody); a body without "results" that carries a "status" (an error body
// Google may send) as sent (SPEC §4); anything else replaced by an UNKNOWN_ERROR body, with
// rejected saying why. Any goroutine.
func cutBody(dst, body []byte, bound int) (out []byte, rejected error) {
	ix, err := codec.IndexPlaces(body)
	return cutIndexed(dst, body, &ix, err, bound)
}

// cutIndexed is cutBody for a body already indexed (ixErr: IndexPlaces's error).
func cutIndexed(dst, body []byte, ix *codec.PlacesIndex, ixErr error, bound int) (out []byte, rejected error) {
	out, err := ix.AppendCut(dst, body, bound)
	if ixErr != nil {
		err = ixErr
	}
	if errors.Is(err, codec.ErrNoResults) {
		if st := ix.Status(body); len(st) > 0 && st[0] == '"' {
			return codec.AppendSqueezed(dst, body), nil
		}
	}
	if err != nil {
		eb := codec.AppendErrorBody(nil, "UNKNOWN_ERROR", "bad response from Places: "+err.Error())
		out, _ = codec.AppendPlacesBody(dst, eb, bound)
	}
	return out, err
}

// placesDone fills the reply slots waiting on call. Loop only.
func (s *Server) placesDone(call *placesCall, a *placesAnswer, err error) {
	delete(s.inflight, call.key)
	s.waiting -= len(call.waiters)
	s.metrics.Waiting.Store(int64(s.waiting))
	if s.busy && s.waiting <= s.lim.MaxWaiting*3/4 {
		s.busy = false
		s.log.Info("places: WHATSATs waiting below max_waiting again", "waiting", s.waiting)
	}
	took := s.loop.Time().Sub(call.start)
	s.observePlaces(took)
	if err != nil || a.rejected != nil {
		s.metrics.PlacesErrors.Add(1)
		s.metrics.PlacesErrorsBy[placesErrorKind(err, a.rejected)].Add(1)
	}
	if err != nil {
		s.log.Warn("places failed", "request", call.key, "took", took, "err", err)
	} else if s.logInfo {
		g := s.lg
		g.begin(slog.LevelInfo, "places answer")
		g.str("request", call.key)
		if a.cached {
			g.str("from", "cache")
		}
		g.dur("took", took)
		g.int("bytes", len(a.body))
		g.end()
	}
	keep := a.cached // the cache's: never recycled
	if a.rejected != nil {
		s.log.Warn("places body rejected", "request", call.key, "err", a.rejected)
	} else if err == nil && !a.cached && s.cache != nil {
		s.cache.Add(call.key, a.body)
		keep = true
	}
	for _, w := range call.waiters {
		if w.c.lost {
			continue
		}
		sl := w.slot
		if w.bound != a.bound {
			// Another bound: cut from the index, and keep it for the next waiter of this one.
			a.cut, _ = a.appendCut(nil, w.bound)
			a.bound = w.bound
		}
		sl.body = a.cut // shared by the waiters of one bound: never changed
		w.c.whatsatDone(sl)
	}
	if !keep {
		places.Recycle(a.body) // cut for every waiter: no reference is left
	}
}

// Herd runs every server of a config in one process, one loop each.
type Herd struct {
	cfg     *Config
	servers []*Server
	byName  map[string]*Server
	budget  FileBudget
}

// NewHerd builds every server of cfg (see NewServer). The servers share one Places provider
// (built once, unless an option gives one) and one cache (places.cache_ttl); each has its own
// loop and so its own executor (places.workers each). Any goroutine.
func NewHerd(cfg *Config, opts ...Option) (*Herd, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	scs := cfg.Servers
	if o.only != nil {
		scs = nil
		for _, sc := range cfg.Servers {
			if slices.Contains(o.only, sc.Name) {
				scs = append(scs, sc)
			}
		}
		for _, name := range o.only {
			if cfg.Server(name) == nil {
				return nil, cfg.errNoServer(name)
			}
		}
	}
	budget := NewFileBudget(cfg, scs, fileLimit())
	if o.provider == nil {
		pc := cfg.Clone()
		pc.fitBudget(budget)
		p, err := NewProvider(pc.Places)
		if err != nil {
			return nil, err
		}
		opts = append(opts[:len(opts):len(opts)], WithProvider(p))
	}
	cache := places.NewCache(0, cfg.Places.CacheTTL)
	opts = append(opts[:len(opts):len(opts)], func(o *options) { o.budget, o.cache = &budget, cache })
	h := &Herd{cfg: cfg.Clone(), byName: make(map[string]*Server), budget: budget}
	for _, sc := range scs {
		s, err := NewServer(cfg, sc.Name, opts...)
		if err != nil {
			h.closeLogs()
			return nil, err
		}
		h.servers = append(h.servers, s)
		h.byName[sc.Name] = s
	}
	return h, nil
}

func (h *Herd) closeLogs() {
	for _, s := range h.servers {
		if s.logw != nil {
			s.logw.Close()
		}
	}
}

// Start binds every server's listeners first (so addresses with port 0 get their port), then
// starts the links with the bound addresses. On error the servers already started are stopped.
func (h *Herd) Start() error {
	for i, s := range h.servers {
		if err := s.listen(); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, t := range h.servers[:i] {
				t.Shutdown(ctx)
			}
			for _, t := range h.servers[i:] {
				if t.logw != nil {
					t.logw.Close()
				}
			}
			return err
		}
		sc := h.cfg.Server(s.name)
		sc.Addr, sc.PeerAddr = s.Addr().String(), s.PeerAddr().String()
	}
	for _, s := range h.servers {
		if err := s.startLinks(h.cfg); err != nil {
			return err
		}
	}
	return nil
}

// SetLinkFault sets fault f on the links between the servers a and b, both ways
// (Server.SetLinkFault on each): LinkCut or LinkDrops partitions the two, NoFault heals
// them, and the servers resync. Any goroutine but the servers' loops.
func (h *Herd) SetLinkFault(a, b string, f LinkFault) error {
	sa, sb := h.byName[a], h.byName[b]
	if sa == nil || sb == nil {
		return fmt.Errorf("herd: link fault: no servers %q and %q in the herd", a, b)
	}
	return errors.Join(sa.SetLinkFault(b, f), sb.SetLinkFault(a, f))
}

// FileBudget returns how the open file limit of the process was shared among the herd's
// servers when NewHerd built them (see FileBudget). Any goroutine.
func (h *Herd) FileBudget() FileBudget { return h.budget }

// Servers returns the herd's servers in config order.
func (h *Herd) Servers() []*Server { return h.servers }

// Server returns the server called name, or nil.
func (h *Herd) Server(name string) *Server { return h.byName[name] }

// Config returns the herd's config with the addresses the servers are bound to (after Start).
// The caller may change the copy it gets.
func (h *Herd) Config() *Config { return h.cfg.Clone() }

// ReopenLogs reopens the log file of every server (Server.ReopenLog) and returns their errors
// joined. Any goroutine but the servers' loops.
func (h *Herd) ReopenLogs() error {
	var errs []error
	for _, s := range h.servers {
		errs = append(errs, s.ReopenLog())
	}
	return errors.Join(errs...)
}

// Shutdown shuts every server down at once (see Server.Shutdown) and returns their errors joined.
func (h *Herd) Shutdown(ctx context.Context) error { return ShutdownAll(ctx, h.servers) }

// ShutdownAll shuts every one of servers down at once, each on a goroutine of its own, and
// returns their errors joined. Any goroutine may call it; it suits every server of the module
// (*Server, and the goroutine baseline's), which all stop within ctx.
func ShutdownAll[S interface{ Shutdown(context.Context) error }](ctx context.Context, servers []S) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
