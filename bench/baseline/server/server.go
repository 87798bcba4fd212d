// Package server is the herd server in the goroutine-per-connection model, the baseline the
// reactor server (package herd) is measured against: a net.Listener, one goroutine per client
// connection and one per neighbour link, and the record table under a sync.Mutex. It shares
// codec (framing included), herd.Core (what every line means and what to answer), herd.Table,
// the herd config and the Places providers with the reactor server, so only the I/O and
// concurrency model differs. Command baseline (the parent directory) runs it.
//
// Differences from the reactor server, all from the model: a client's lines are handled one
// after the other by its goroutine, so at most one request per client is pending (the rest
// wait in the kernel's socket buffer, which is TCP's own flow control); replies are gathered
// per read and written once the read's lines are answered (or before a WHATSAT waits on
// Places, or past max_unsent bytes); a client that leaves its replies unread for 10 s once the
// kernel's buffer is full is cut off.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/places"
)

const (
	// readSize is each connection's read buffer; the Decoder keeps what a line needs beyond it.
	readSize = 8 << 10
	// defaultWriteTimeout cuts off a client or link that leaves its output unread this long
	// (the kernel's socket buffer full and our own buffer at its limit): the goroutine model's
	// per-connection limit on unsent bytes.
	defaultWriteTimeout = 10 * time.Second
	// lingerTimeout bounds how long a connection closed after "?" reads what the client still
	// sends, so the close does not reset the connection before the client reads the reply.
	lingerTimeout = time.Second
)

// Server is one server of the herd in the goroutine-per-connection model: a net.Listener, one
// goroutine per client connection and one per neighbour link, and the record table under a
// mutex. It shares codec, herd.Core, herd.Table and the Places providers with the reactor
// server, so only the I/O model differs.
//
// Create it with New, then Listen and Start; Close or Shutdown stops it. Its methods may be
// called from any goroutine (SetPeerAddr before Start).
type Server struct {
	name   string
	limits herd.Limits
	places places.Provider
	log    *slog.Logger
	logIO  bool // input and output lines are logged (checked first: no cost when off)

	mu    sync.Mutex // guards table and the links' up state and queues
	table *herd.Table

	ln        net.Listener
	peers     []string                   // neighbour names
	peerAddr  func(name string) string   // the address to dial for a neighbour
	peerHosts map[netip.Addr]herd.Origin // AT lines are accepted from these hosts (a plain peer's: in its dialect)
	links     []*link
	clients   atomic.Int64
	writeWait time.Duration // see defaultWriteTimeout; tests shorten it
	now       func() time.Time
	connMu    sync.Mutex
	conns     map[net.Conn]struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns the server called name of cfg, asking prov for WHATSAT and logging to log
// (nil: no log). It does not listen yet.
func New(cfg *herd.Config, name string, prov places.Provider, log *slog.Logger) (*Server, error) {
	me := cfg.Server(name)
	if me == nil {
		return nil, fmt.Errorf("server: no server %q in the config", name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs := map[string]string{}
	for _, sc := range cfg.Servers {
		addrs[sc.Name] = sc.Addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		name:      name,
		limits:    cfg.Limits,
		places:    prov,
		log:       log,
		logIO:     log.Enabled(context.Background(), slog.LevelInfo),
		table:     herd.NewTable(),
		peers:     append([]string(nil), me.Peers...),
		peerAddr:  func(n string) string { return addrs[n] },
		peerHosts: map[netip.Addr]herd.Origin{},
		conns:     map[net.Conn]struct{}{},
		writeWait: defaultWriteTimeout,
		now:       time.Now,
		ctx:       ctx,
		cancel:    cancel,
	}
	// The same bounds as the reactor server's table; the TTL on the clock SetClock gives.
	s.table.SetLimits(herd.TableLimits{MaxRecords: cfg.Limits.MaxRecords, MaxBytes: int64(cfg.Limits.MaxRecordBytes), TTL: cfg.Records.TTL, Now: func() time.Time { return s.now() }})
	for _, p := range s.peers {
		o := herd.FromNeighbourHost
		if cfg.Server(p).Plain() {
			o = herd.FromPlainHost
		}
		if err := s.addPeerHost(addrs[p], o); err != nil {
			cancel()
			return nil, err
		}
	}
	return s, nil
}

// newCore returns a request core for one connection, with the config's max_clock_skew.
func (s *Server) newCore() *herd.Core {
	c := herd.NewCore(s.name)
	c.SetMaxClockSkew(s.limits.MaxClockSkew)
	return c
}

// addPeerHost lets AT lines in from the host of a neighbour's address, as origin o:
// herd.FromPlainHost for a plain peer's, which wins over another neighbour's on one host, as
// in package herd.
func (s *Server) addPeerHost(addr string, o herd.Origin) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server: neighbour address %q: %w", addr, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = net.DefaultResolver.LookupNetIP(context.Background(), "ip", host); err != nil {
		return fmt.Errorf("server: neighbour host %q: %w", host, err)
	}
	for _, ip := range ips {
		if s.peerHosts[ip.Unmap()] != herd.FromPlainHost {
			s.peerHosts[ip.Unmap()] = o
		}
	}
	return nil
}

// Record returns the AT line the server holds for client, and whether it knows the client.
func (s *Server) Record(client string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.table.Get([]byte(client)); r != nil {
		return string(r.Line), true
	}
	return "", false
}

// Name returns the server's name.
func (s *Server) Name() string { return s.name }

// Listen binds the server's address (port 0 picks a free port; see Addr).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: %s: %w", s.name, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound listen address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetPeerAddr overrides where the neighbours are dialed (for a herd whose servers listen on
// port 0). Call before Start. lookup is called from the link goroutines.
func (s *Server) SetPeerAddr(lookup func(name string) string) { s.peerAddr = lookup }

// SetClock makes the server take receive times from now instead of time.Now, as
// herd.WithClock does for the reactor server (tests compare the two byte for byte). Call
// before Start. now is called from the connection goroutines, concurrently.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// Start starts accepting clients and dialing the neighbours, in the background.
func (s *Server) Start() {
	for _, p := range s.peers {
		l := &link{s: s, peer: p, origin: herd.FromLink, wake: make(chan struct{}, 1)}
		s.links = append(s.links, l)
		s.wg.Add(1)
		go l.run()
	}
	s.wg.Add(1)
	go s.accept()
}

// Close stops accepting, lets each client connection answer what it has read (a WHATSAT
// waiting on Places included), closes the links and waits for every goroutine. It may be
// called more than once.
func (s *Server) Close() error { return s.Shutdown(context.Background()) }

// Shutdown is Close with a bound: when ctx is done before the replies owed are written, it
// closes the remaining client connections, waits for their goroutines (a Places call still
// runs to its own timeout) and returns an error. Any goroutine; idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.cancel()
		if s.ln != nil {
			s.ln.Close()
		}
		s.connMu.Lock()
		for c := range s.conns {
			// Wake the reader: it answers what it holds, then closes.
			c.SetReadDeadline(time.Now())
		}
		s.connMu.Unlock()
		for _, l := range s.links {
			l.closeConn()
		}
	})
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.connMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.connMu.Unlock()
	<-done
	return fmt.Errorf("server: %s: shutdown: replies still owed: %w", s.name, ctx.Err())
}

func (s *Server) accept() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			s.log.Error("accept", "err", err)
			return
		}
		delay = 0
		if s.limits.MaxClients > 0 && s.clients.Load() >= int64(s.limits.MaxClients) {
			s.log.Warn("too many clients, connection refused", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		s.connMu.Lock()
		if s.ctx.Err() != nil { // Shutdown has already woken the connections it knows
			s.connMu.Unlock()
			c.Close()
			return
		}
		s.clients.Add(1)
		s.conns[c] = struct{}{}
		s.connMu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// conn is one client connection, owned by its goroutine.
type conn struct {
	s       *Server
	c       net.Conn
	core    *herd.Core  // what each line means, as for the reactor server; made at the first read
	origin  herd.Origin // herd.FromNeighbourHost from a neighbour's host: AT lines accepted
	out     []byte      // replies not yet written
	remote  string
	invalid bool
	werr    error // the first write error
}

func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.connMu.Lock()
		delete(s.conns, nc)
		s.connMu.Unlock()
		s.clients.Add(-1)
	}()
	c := &conn{s: s, c: nc, origin: herd.FromClient, remote: nc.RemoteAddr().String()}
	if ap, err := netip.ParseAddrPort(c.remote); err == nil {
		if o, ok := s.peerHosts[ap.Addr().Unmap()]; ok {
			c.origin = o
		}
	}
	s.log.Info("connection", "remote", c.remote)
	err := c.loop()
	if c.invalid {
		lingerClose(nc)
	} else {
		nc.Close()
	}
	s.log.Info("connection closed", "remote", c.remote, "err", err)
}

// loop reads and answers lines until the client half-closes, sends an invalid line, or fails.
// Lines are handled one after the other, so replies go out in request order; a WHATSAT
// blocks this goroutine (and only this connection) while Places answers.
func (c *conn) loop() error {
	dec := codec.Decoder{Max: c.s.limits.MaxLine, AT: true}
	buf := make([]byte, readSize)
	for {
		n, rerr := c.c.Read(buf)
		recv := codec.FromTime(c.s.now()) // the moment these lines were read
		if c.core == nil {
			c.core = c.s.newCore() // not before: an idle connection holds none
		}
		dec.Feed(buf[:n])
		for {
			line, ok, err := dec.Next()
			if err != nil {
				c.s.log.Info("line too long", "remote", c.remote)
				c.act(c.core.TooLong(line, c.origin), line)
				return c.flush()
			}
			if !ok {
				break
			}
			if !c.handle(line, recv) || c.werr != nil {
				return c.flush()
			}
			if len(c.out) >= c.s.limits.MaxUnsent {
				if err := c.flush(); err != nil {
					return err
				}
			}
		}
		if rerr != nil {
			// EOF (a half-close) or a read deadline (Close): answer a last line
			// without "\n", then everything owed, and close.
			if rerr == io.EOF {
				if line, err := dec.Final(); err != nil {
					c.act(c.core.TooLong(line, c.origin), line)
				} else if line != nil {
					c.handle(line, recv)
				}
			}
			if err := c.flush(); err != nil {
				return err
			}
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
		// The read buffer is drained: one write for all its replies.
		if err := c.flush(); err != nil {
			return err
		}
	}
}

// flush writes the replies gathered so far in one write.
// A write error is sticky: the connection is done.
func (c *conn) flush() error {
	if c.werr != nil || len(c.out) == 0 {
		return c.werr
	}
	c.c.SetWriteDeadline(time.Now().Add(c.s.writeWait))
	_, c.werr = c.c.Write(c.out)
	c.out = c.out[:0]
	return c.werr
}

// handle answers one line, received at recv, into c.out and reports whether the connection
// goes on.
func (c *conn) handle(line []byte, recv codec.Time) bool {
	if c.s.logIO {
		c.s.log.Info("in", "remote", c.remote, "line", line)
	}
	return c.act(c.core.Handle(line, recv, c.origin), line)
}

// act does what the core decided about line and reports whether the connection goes on.
func (c *conn) act(r herd.Result, line []byte) bool {
	s := c.s
	switch r.Action {
	case herd.Store:
		c.out = append(c.out, r.Reply...)
		s.apply(r.Msg, r.Line)
		if s.logIO && r.Reply != nil {
			s.log.Info("out", "remote", c.remote, "line", r.Line)
		}
	case herd.AskPlaces:
		return c.whatsat(line, r.Msg)
	case herd.Close:
		s.log.Info("invalid", "remote", c.remote, "err", r.Err)
		c.out = append(c.out, r.Reply...)
		c.invalid = true
		return false
	case herd.Abort:
		c.out = c.out[:0]
		return false
	}
	return true
}

// whatsat appends the reply to a WHATSAT line (m) and reports whether the connection goes
// on: for an unknown client, as the core says.
func (c *conn) whatsat(line []byte, m *codec.Message) bool {
	s := c.s
	s.mu.Lock()
	r := s.table.Get(m.Client)
	if r == nil {
		s.mu.Unlock()
		return c.act(c.core.UnknownClient(line, c.origin), line)
	}
	// The record's storage is reused by a newer Apply: copy what is needed.
	at := append([]byte(nil), r.Line...)
	req := herd.NewPlacesRequest(r, m)
	s.mu.Unlock()
	// Send what is owed before waiting on Places.
	if c.flush() != nil {
		return false
	}
	// Not s.ctx: a server that is closing still finishes the replies it owes.
	body, err := s.places.Nearby(context.Background(), req)
	if err != nil {
		s.log.Warn("places", "err", err)
	}
	start := len(c.out)
	c.out = append(c.out, at...)
	c.out = append(c.out, '\n')
	c.out, err = herd.AppendPlacesAnswer(c.out, body, err, m.Bound)
	if err != nil {
		s.log.Warn("places body rejected", "err", err)
	}
	c.out = append(c.out, "\n\n"...)
	if s.logIO {
		s.log.Info("out", "remote", c.remote, "bytes", len(c.out)-start)
	}
	return true
}

// apply stores a record if it is newer and floods it to every link that is up. line is the
// AT line the core made: the reply to an IAMAT, or a neighbour's in canonical form.
func (s *Server) apply(m *codec.Message, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.table.Apply(m, line) {
		return
	}
	for _, l := range s.links {
		l.enqueueLocked(line)
	}
}

// lingerClose closes a connection after an invalid line: it half-closes, then reads what the
// client still sends for a moment, so the client gets the "?" reply rather than a reset.
func lingerClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		c.SetReadDeadline(time.Now().Add(lingerTimeout))
		io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	}
	c.Close()
}
