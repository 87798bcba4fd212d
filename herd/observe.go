package herd

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
	"github.com/herd-project/herd/reactor"
)

// What a server shows an operator besides its Metrics: counts by reason, per-link counters, a
// snapshot of its loop's state and the most recent updates. Counters are atomics written on
// the loop; what only the loop holds (links, the recent updates) is copied out by the loop
// when asked (Snapshot), so a reader never takes a lock the loop waits on.

// LineCommands names the commands that LineCounts.In counts lines of, in index order: a line
// whose first field is not one of the three is "other".
var LineCommands = [...]string{"IAMAT", "WHATSAT", "AT", "other"}

const lineOther = len(LineCommands) - 1

// InvalidReasons names why a "?" reply was sent (LineCounts.Invalid), in index order.
var InvalidReasons = [...]string{
	"unknown_command", // the first field is not IAMAT or WHATSAT (nor AT from a neighbour)
	"bad_iamat",       // an IAMAT with a bad field or the wrong number of fields
	"bad_whatsat",     // a WHATSAT with a bad field or the wrong number of fields
	"bad_at",          // an AT line that does not parse
	"empty",           // an empty line
	"too_long",        // a line over max_line
	"unknown_client",  // a WHATSAT for a client no server has heard of
	"not_neighbour",   // an AT line from a host that is not a neighbour's
	"line_timeout",    // a line not finished within line_timeout of its first byte
	"bad_client_id",   // a client ID that is not text of at most 256 bytes (ValidClientID)
	"clock_skew",      // an IAMAT whose time is more than max_clock_skew ahead of the server's clock
}

const (
	invalidUnknownCommand = iota
	invalidBadIAMAT
	invalidBadWHATSAT
	invalidBadAT
	invalidEmpty
	invalidTooLong
	invalidUnknownClient
	invalidNotNeighbour
	invalidLineTimeout
	invalidBadClientID
	invalidClockSkew
)

// LineCounts counts the lines a server's Core decided about, from clients and links alike:
// In by command (LineCommands), the "?" replies by reason (InvalidReasons), the AT lines of
// plain peers that carried names after their six fields (Extra), and the AT lines from
// neighbours dropped because their time is more than max_clock_skew ahead of the server's
// clock (SkewDropped). The loop writes them; any goroutine may read them.
type LineCounts struct {
	In          [len(LineCommands)]atomic.Uint64
	Invalid     [len(InvalidReasons)]atomic.Uint64
	Extra       atomic.Uint64
	SkewDropped atomic.Uint64
}

// extra counts an AT line with fields after its sixth.
func (lc *LineCounts) extra() {
	if lc != nil {
		lc.Extra.Add(1)
	}
}

// skewDropped counts an AT line dropped for max_clock_skew.
func (lc *LineCounts) skewDropped() {
	if lc != nil {
		lc.SkewDropped.Add(1)
	}
}

// line counts a line of kind k (codec.Invalid: by its first field).
func (lc *LineCounts) line(k codec.Kind, line []byte) {
	if lc == nil {
		return
	}
	i := lineOther
	switch k {
	case codec.IAMAT:
		i = 0
	case codec.WHATSAT:
		i = 1
	case codec.AT:
		i = 2
	case codec.Invalid:
		i = commandIndex(line)
	}
	lc.In[i].Add(1)
}

// commandIndex returns the LineCommands index of line's first field.
func commandIndex(line []byte) int {
	switch string(codec.Field(line, 0)) {
	case "IAMAT":
		return 0
	case "WHATSAT":
		return 1
	case "AT":
		return 2
	}
	return lineOther
}

// invalid counts a "?" reply to line, refused for err.
func (lc *LineCounts) invalid(line []byte, err error) {
	if lc == nil {
		return
	}
	lc.Invalid[invalidReason(line, err)].Add(1)
}

// invalidReason returns the InvalidReasons index for a "?" reply to line, refused for err.
func invalidReason(line []byte, err error) int {
	switch {
	case errors.Is(err, codec.ErrLineTooLong):
		return invalidTooLong
	case errors.Is(err, ErrUnknownClient):
		return invalidUnknownClient
	case errors.Is(err, ErrNotNeighbour):
		return invalidNotNeighbour
	case errors.Is(err, ErrLineTimeout):
		return invalidLineTimeout
	case errors.Is(err, ErrBadClientID):
		return invalidBadClientID
	case errors.Is(err, ErrClockSkew):
		return invalidClockSkew
	}
	switch commandIndex(line) {
	case 0:
		return invalidBadIAMAT
	case 1:
		return invalidBadWHATSAT
	case 2:
		return invalidBadAT
	}
	if len(codec.Field(line, 0)) == 0 {
		return invalidEmpty
	}
	return invalidUnknownCommand
}

// RefuseReasons names why a connection was closed as soon as it was accepted
// (Metrics.Refused), in index order.
var RefuseReasons = [...]string{"max_clients", "shutting_down"}

const (
	refuseMaxClients = iota
	refuseStopping
)

// CutReasons names why a client was cut off or closed by the server (Metrics.Cut), in index
// order.
var CutReasons = [...]string{"max_unsent", "max_pending", "idle_timeout", "line_timeout", "max_unsent_total"}

const (
	cutMaxUnsent = iota
	cutMaxPending
	cutIdle
	cutLineTimeout
	cutMaxUnsentTotal
)

// PlacesErrorKinds names the kinds of failed Places calls (Metrics.PlacesErrorsBy), in index
// order: timeout, transport (connection refused, reset, ...), http (a status other than
// 200), status (Google's own error status, such as OVER_QUERY_LIMIT), bad_body (a body that
// is not JSON or that cannot be cut), cancelled (the server was stopping), other, busy (a
// WHATSAT answered at once because max_waiting were waiting: no call was made).
var PlacesErrorKinds = [...]string{"timeout", "transport", "http", "status", "bad_body", "cancelled", "other", "busy"}

const placesErrBusy = 7

// placesErrorKind returns the PlacesErrorKinds index of a failed Places call: err from the
// provider, rejected when its body could not be cut.
func placesErrorKind(err, rejected error) int {
	var se *places.StatusError
	switch {
	case err == nil && rejected != nil, errors.Is(err, places.ErrBadBody):
		return 4
	case errors.Is(err, places.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return 0
	case errors.Is(err, places.ErrTransport):
		return 1
	case errors.Is(err, places.ErrHTTP):
		return 2
	case errors.As(err, &se):
		return 3
	case errors.Is(err, context.Canceled):
		return 5
	case errors.Is(err, reactor.ErrBusy):
		return placesErrBusy
	}
	return 6
}

// LinkMetrics counts what one of a server's links did. The loop writes them; any goroutine
// may read them.
type LinkMetrics struct {
	Peer         string        // the neighbour's name; set before the server starts
	Up           atomic.Bool   // the link is up now
	Ups          atomic.Uint64 // times it came up (more than once: it reconnected)
	DialFailures atomic.Uint64 // dials that failed
	ResyncSent   atomic.Uint64 // records sent in resyncs
	// Discarded counts a plain peer's lines that were not AT lines (acknowledgements, text
	// without "\n", lines over the limit), dropped.
	Discarded atomic.Uint64
	// SendFailures counts, for a plain-per-message peer, the connections that failed to
	// carry their line (refused, reset): each takes the link down until a redial succeeds
	// and its resync makes up for what was lost.
	SendFailures atomic.Uint64
}

// Observer takes one measurement. Observe is called on the server's loop, so it must not
// block: a prometheus.Histogram's does not.
type Observer interface{ Observe(float64) }

// SetPlacesObserver makes the server report the duration of every Places call it makes, in
// seconds, to o (nil: to nobody), from its loop. Any goroutine, at any time.
func (s *Server) SetPlacesObserver(o Observer) {
	if o == nil {
		s.placesObs.Store(nil)
		return
	}
	s.placesObs.Store(&o)
}

// observePlaces reports a Places call's duration to the observer, if any. Loop only.
func (s *Server) observePlaces(d time.Duration) {
	if o := s.placesObs.Load(); o != nil {
		(*o).Observe(d.Seconds())
	}
}

// RecentUpdates is how many of the most recent updates Snapshot returns.
const RecentUpdates = 20

// Update is a record a server stored (Table.Apply found it newer).
type Update struct {
	Time time.Time // when the server stored it
	From string    // "client" (an IAMAT to this server) or "peer" (an AT line from a neighbour)
	Line string    // the AT line
}

// recentRing keeps the last RecentUpdates updates on the loop. Its slots' buffers are reused,
// so storing an update allocates nothing once they have grown.
type recentRing struct {
	slots [RecentUpdates]struct {
		at   time.Time
		peer bool
		line []byte
	}
	next, n int
}

// add keeps line (copied) as the newest update. Loop only.
func (r *recentRing) add(at time.Time, peer bool, line []byte) {
	sl := &r.slots[r.next]
	sl.at, sl.peer = at, peer
	sl.line = append(sl.line[:0], line...)
	r.next = (r.next + 1) % len(r.slots)
	r.n = min(r.n+1, len(r.slots))
}

// list returns the updates kept, newest first. Loop only.
func (r *recentRing) list() []Update {
	out := make([]Update, 0, r.n)
	for i := 1; i <= r.n; i++ {
		sl := &r.slots[(r.next-i+len(r.slots))%len(r.slots)]
		from := "client"
		if sl.peer {
			from = "peer"
		}
		out = append(out, Update{Time: sl.at, From: from, Line: string(sl.line)})
	}
	return out
}

// LinkState is one of a server's links as its loop sees it.
type LinkState struct {
	Peer  string    // the neighbour's name
	Addr  string    // the address it is dialled at ("" until the server starts)
	Up    bool      // the link is up
	Since time.Time // when it came up (zero while down)
	Fault string    // an injected fault (SetLinkFault): "none", "drops" or "cut"
}

// Snapshot is the state of a server's loop at one moment.
type Snapshot struct {
	Time    time.Time   // the loop's time when it was taken
	Clients int         // client connections open
	Records int         // records held
	Links   []LinkState // in the config's order of neighbours
	Recent  []Update    // the last RecentUpdates updates stored, newest first
}

// ErrNotRunning is returned by Snapshot and LoopLag when the server's loop is not running.
var ErrNotRunning = errors.New("herd: server not running")

// Snapshot asks the loop for a copy of its state and waits for it until ctx is done. It costs
// the loop a copy of its links and recent updates, not of its records or clients. Any
// goroutine but the loop.
func (s *Server) Snapshot(ctx context.Context) (*Snapshot, error) {
	var snap *Snapshot
	err := s.onLoop(ctx, func() {
		snap = &Snapshot{
			Time:    s.loop.Time(),
			Clients: len(s.clients),
			Records: s.table.Len(),
			Recent:  s.recent.list(),
		}
		for _, l := range s.links {
			ls := LinkState{Peer: l.name, Addr: l.addr, Up: l.c != nil, Fault: l.fault.String()}
			if l.c != nil {
				ls.Since = l.upAt
			}
			snap.Links = append(snap.Links, ls)
		}
	})
	return snap, err
}

// LoopLag posts a probe to the server's loop and returns how long it waited there, from the
// post to its run (real time, whatever clock the loop has): how late the loop answers
// anything posted to it, a Places completion or a timer. It waits for the probe until ctx is
// done. Any goroutine but the loop.
func (s *Server) LoopLag(ctx context.Context) (time.Duration, error) {
	var lag time.Duration
	t0 := time.Now()
	err := s.onLoop(ctx, func() { lag = time.Since(t0) })
	return lag, err
}

// onLoop runs fn on the loop and waits for it until ctx is done or the loop stops. What fn
// writes is the caller's to read once onLoop returns nil.
func (s *Server) onLoop(ctx context.Context, fn func()) error {
	if !s.running.Load() {
		return ErrNotRunning
	}
	done := make(chan struct{})
	if err := s.loop.CallSoonThreadsafe(func() {
		fn()
		close(done)
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRunning, err)
	}
	select {
	case <-done:
		return nil
	case <-s.loop.Done():
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("herd: %s: the event loop did not answer: %w", s.name, ctx.Err())
	}
}

// Config returns a copy of the server's config: the whole herd's, as given to NewServer. It
// holds the Places key: an operator's view must leave it out. Any goroutine.
func (s *Server) Config() *Config { return s.cfg.Clone() }

// LogDropped returns how many log records the server dropped because its log's disk could not
// keep up (LogWriter.Dropped); 0 with logging off. Any goroutine.
func (s *Server) LogDropped() uint64 {
	if s.logw == nil {
		return 0
	}
	return s.logw.Dropped()
}

// Stopping reports whether Shutdown has been called: the server is finishing what it owes and
// takes no new clients. Any goroutine.
func (s *Server) Stopping() bool { return s.shutCalled.Load() }
