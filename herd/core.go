package herd

import (
	"encoding/binary"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places"
)

// Origin says where a line came from. It decides which commands the line may carry and what
// is done with it, so front ends only say where their lines come from, and a new kind of
// origin changes Core alone.
type Origin uint8

const (
	// FromClient is a connection on the client port from a host that is not a neighbour's:
	// IAMAT and WHATSAT are answered; anything else, an AT line included, is invalid.
	FromClient Origin = iota
	// FromNeighbourHost is a connection on the client port from a neighbour's host, when
	// the herd has no links.secret (SPEC §5): a client's commands as from FromClient, and AT
	// lines, applied without a reply. A plain neighbour's floods arrive so.
	FromNeighbourHost
	// FromLink is a link with a neighbour, whichever side dialled it, once its hello is
	// done (the hello and the resync's lines are the link's own, and never reach Core): AT
	// lines are applied; other lines are ignored, and a line over the limit aborts the link.
	FromLink
	// FromPlainHost is FromNeighbourHost from the host of a plain peer (a server of the
	// seed's design, ServerConfig.Plain): its AT lines are read in codec's Python dialect
	// (a float time difference, names after the six fields). A host shared by a plain
	// peer and another neighbour is the plain peer's.
	FromPlainHost
	// FromPlainLink is a connection this server dialled to a plain peer: AT lines, in the
	// Python dialect, are applied; anything else, a line over the limit included, is
	// ignored, to be discarded and counted: never a reason to drop the link.
	FromPlainLink
)

// answers reports whether a connection of origin o gets replies (a "?" for a line it may
// not send, among them).
func (o Origin) answers() bool { return o != FromLink && o != FromPlainLink }

// takesAT reports whether AT lines from o are applied.
func (o Origin) takesAT() bool { return o != FromClient }

// neighbour reports whether o is a connection on the client port from a neighbour's host.
func (o Origin) neighbour() bool { return o == FromNeighbourHost || o == FromPlainHost }

// dialect returns the dialect AT lines from o are parsed in.
func (o Origin) dialect() codec.Dialect {
	if o == FromPlainHost || o == FromPlainLink {
		return codec.Python
	}
	return codec.Strict
}

// Action is what a front end does after Core has decided about a line.
type Action uint8

const (
	// Ignore: nothing is written and nothing changes. Result.Err says why, for the log.
	Ignore Action = iota
	// Store: write Result.Reply if there is one, then apply the record (Table.Apply of
	// Result.Msg and Result.Line) and, if it was newer, flood Result.Line.
	Store
	// AskPlaces: a WHATSAT (Result.Msg). Look up Msg.Client: for no record, do what
	// Core.UnknownClient says; else reply, in this line's turn, with the record's AT line
	// and the Places answer (NewPlacesRequest, AppendPlacesAnswer).
	AskPlaces
	// Close: write Result.Reply (a "?" line), handle no later line of the connection, and
	// close it once every reply owed is written. Result.Err says why.
	Close
	// Abort: close the connection now, writing nothing more. Result.Err says why.
	Abort
)

// Result is what Core decided about one line.
type Result struct {
	Action Action
	// Reply is the reply to write (with its "\n"), or nil. It is valid until the Core's
	// next call.
	Reply []byte
	// Line is, for Store, the AT line to store and flood (without "\n"): the reply to an
	// IAMAT, or a neighbour's AT line in canonical form (codec.AppendATLine: six fields,
	// a plain peer's names after them left out). It is valid until the Core's next call.
	Line []byte
	// Msg is, for Store and AskPlaces, the line parsed. It aliases the line and the Core,
	// and is valid while both are.
	Msg *codec.Message
	// Err says why a line is ignored, refused or aborts its connection.
	Err error
}

// Errors that Result.Err carries besides codec's (*codec.ParseError, codec.ErrLineTooLong).
var (
	// ErrUnknownClient refuses a WHATSAT whose client the table does not hold.
	ErrUnknownClient = errors.New("herd: WHATSAT for a client no server has heard of")
	// ErrNotNeighbour refuses an AT line from a host that is not a neighbour's.
	ErrNotNeighbour = errors.New("herd: AT line from a host that is not a neighbour's")
	// ErrNotAT ignores a client's command on a link.
	ErrNotAT = errors.New("herd: a link carries AT lines only")
	// ErrLineTimeout refuses a line not finished within line_timeout of its first byte.
	ErrLineTimeout = errors.New("herd: line not finished within line_timeout")
	// ErrBadClientID refuses a line whose client ID ValidClientID rejects.
	ErrBadClientID = errors.New("herd: client ID is not text of at most 256 bytes without control characters")
	// ErrClockSkew refuses an IAMAT, and drops a neighbour's AT line, whose time is more
	// than max_clock_skew ahead of the server's clock.
	ErrClockSkew = errors.New("herd: time more than max_clock_skew ahead of this server's clock")
)

// Core is the protocol of one server without its I/O: it decides what a line means, makes
// the reply and says what to do next, and knows nothing of sockets, tables or links. The
// reactor server's client connections and links and the goroutine baseline's all call it,
// so every front end answers every line alike (as redis's processCommand serves clients,
// replicas and AOF replay alike). The front end owns what Core leaves to it: writing,
// the record table, flooding, Places and closing.
//
// A Core holds the buffers its results alias: one goroutine uses it at a time (the reactor
// server's loop, or one connection's goroutine in the baseline). Use NewCore.
type Core struct {
	name    string
	maxSkew time.Duration // max_clock_skew; 0: any future time is taken
	msg     codec.Message
	buf     []byte      // the reply, or a neighbour's AT line in canonical form
	counts  *LineCounts // a server's Metrics.Lines; nil: not counted
}

// NewCore returns the Core of the server called name (a valid field of at most
// codec.MaxNameLen bytes, as the config checks), refusing times more than
// DefaultMaxClockSkew ahead of the receive time (see SetMaxClockSkew). Any goroutine.
func NewCore(name string) *Core { return &Core{name: name, maxSkew: DefaultMaxClockSkew} }

// SetMaxClockSkew makes the Core refuse times more than d ahead of a line's receive time
// (limits.max_clock_skew; 0: none). The goroutine that uses the Core.
func (c *Core) SetMaxClockSkew(d time.Duration) { c.maxSkew = d }

// ahead reports whether t is more than maxSkew after recv. Times are below 1e18 s
// (codec.MaxTimeDigits) and a Duration below 1e10 s, so the sum cannot overflow.
func (c *Core) ahead(t, recv codec.Time) bool {
	if c.maxSkew <= 0 {
		return false
	}
	limit := codec.Time{Sec: recv.Sec + int64(c.maxSkew/time.Second), Nsec: recv.Nsec + int32(c.maxSkew%time.Second)}
	if limit.Nsec >= 1e9 {
		limit.Sec, limit.Nsec = limit.Sec+1, limit.Nsec-1e9
	}
	return t.Compare(limit) > 0
}

// Handle decides about line (without its "\n"), received at recv from a connection of
// origin from:
//
//   - a valid IAMAT from a client port: Store, with the AT reply (the skew is recv minus
//     the client's time), which is also the line to store;
//   - a valid WHATSAT from a client port: AskPlaces;
//   - a valid AT line from a neighbour's host or a link: Store, in canonical form, no reply
//     (from a plain peer's, in codec's Python dialect, without the names it may append);
//   - anything else from a client port: Close, with "? " and the line;
//   - anything else on a link: Ignore.
//
// A line is valid only if its client ID is (ValidClientID), and an IAMAT or AT line only if
// its time is at most max_clock_skew ahead of recv: past it an IAMAT is answered with "?"
// (ErrClockSkew) and a neighbour's AT line is ignored and counted (LineCounts.SkewDropped),
// so that one far-future time cannot hold a client's record for good.
//
// The results alias line and the Core (see Result). Handle does not allocate once its
// buffer has grown to the longest reply. The goroutine that uses the Core.
func (c *Core) Handle(line []byte, recv codec.Time, from Origin) Result {
	var err error
	c.msg, err = codec.ParseLineIn(line, from.dialect())
	c.counts.line(c.msg.Kind, line)
	if err != nil {
		return c.refuse(line, from, err)
	}
	m := &c.msg
	if !ValidClientID(m.Client) {
		return c.refuse(line, from, ErrBadClientID)
	}
	switch {
	case m.Kind == codec.AT:
		if !from.takesAT() {
			return c.refuse(line, from, ErrNotNeighbour)
		}
		if c.ahead(m.Time, recv) {
			c.counts.skewDropped()
			return Result{Action: Ignore, Err: ErrClockSkew}
		}
		if m.Extra {
			c.counts.extra()
		}
		c.buf = codec.AppendATLine(c.buf[:0], m)
		return Result{Action: Store, Line: c.buf, Msg: m}
	case !from.answers():
		return Result{Action: Ignore, Err: ErrNotAT}
	case m.Kind == codec.WHATSAT:
		return Result{Action: AskPlaces, Msg: m}
	case c.ahead(m.Time, recv):
		return c.refuse(line, from, ErrClockSkew)
	}
	c.buf = codec.AppendAT(c.buf[:0], c.name, recv, m)
	return Result{Action: Store, Reply: c.buf, Line: c.buf[:len(c.buf)-1], Msg: m}
}

// TooLong decides about a line over the limit, of which echo is the start that
// codec.Decoder returned with codec.ErrLineTooLong: from a client port, Close with "? " and
// echo; on a link, Abort; on a plain peer's, Ignore (the front end skips the line,
// codec.Decoder.SkipLine). The goroutine that uses the Core.
func (c *Core) TooLong(echo []byte, from Origin) Result {
	c.counts.line(codec.Invalid, echo)
	switch {
	case from == FromPlainLink:
		return Result{Action: Ignore, Err: codec.ErrLineTooLong}
	case !from.answers():
		return Result{Action: Abort, Err: codec.ErrLineTooLong}
	}
	c.counts.invalid(echo, codec.ErrLineTooLong)
	c.buf = codec.AppendInvalid(c.buf[:0], echo)
	return Result{Action: Close, Reply: c.buf, Err: codec.ErrLineTooLong}
}

// MaxClientIDLen is the longest client ID a server accepts, in bytes.
const MaxClientIDLen = 256

// ValidClientID reports whether id may be a client ID: 1 to MaxClientIDLen bytes of UTF-8
// without control characters (Unicode's category Cc: C0, DEL and C1). So printable ASCII
// and any text of other scripts are IDs, while NUL, escape sequences and bytes that are not
// UTF-8, which a server would store, flood to its neighbours and echo to every WHATSAT
// reader (and its log), are not. White space never reaches it: it separates fields. It does
// not allocate. Any goroutine.
func ValidClientID(id []byte) bool {
	if len(id) == 0 || len(id) > MaxClientIDLen {
		return false
	}
	i := 0
	for ; i+8 <= len(id); i += 8 {
		// Eight bytes of printable ASCII at once (the usual ID): no byte below 0x20 (w-0x20
		// borrows), at 0x7f or above (w+1 carries, or w has the high bit).
		w := binary.LittleEndian.Uint64(id[i:])
		if ((w-0x2020202020202020)|(w+0x0101010101010101)|w)&0x8080808080808080 != 0 {
			break
		}
	}
	for i < len(id) {
		if b := id[i]; b < utf8.RuneSelf {
			if b < 0x20 || b == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(id[i:])
		if (r == utf8.RuneError && n == 1) || r < 0xa0 { // not UTF-8, or a C1 control
			return false
		}
		i += n
	}
	return true
}

// LineTimeout decides about a line whose sender did not finish it within line_timeout of
// its first byte, of which echo is the start (codec.Decoder.Pending): from a client port,
// Close with "? " and echo, as for a line too long; on a link, Abort. The goroutine that
// uses the Core.
func (c *Core) LineTimeout(echo []byte, from Origin) Result {
	c.counts.line(codec.Invalid, echo)
	if !from.answers() {
		return Result{Action: Abort, Err: ErrLineTimeout}
	}
	c.counts.invalid(echo, ErrLineTimeout)
	c.buf = codec.AppendInvalid(c.buf[:0], echo)
	return Result{Action: Close, Reply: c.buf, Err: ErrLineTimeout}
}

// UnknownClient decides about a WHATSAT line (Handle said AskPlaces) whose client the
// table does not hold: it is invalid (SPEC §6). The goroutine that uses the Core.
func (c *Core) UnknownClient(line []byte, from Origin) Result {
	return c.refuse(line, from, ErrUnknownClient)
}

// refuse is the answer to a line from that may not come from there, for err.
func (c *Core) refuse(line []byte, from Origin, err error) Result {
	if !from.answers() {
		return Result{Action: Ignore, Err: err}
	}
	c.counts.invalid(line, err)
	c.buf = codec.AppendInvalid(c.buf[:0], line)
	return Result{Action: Close, Reply: c.buf, Err: err}
}

// NewPlacesRequest returns the Places request of a WHATSAT m for the record r: the stored
// location text (with its sign) and the radius in metres (codec.AppendRadiusMetres). It
// copies what it keeps of r and m. Any goroutine.
func NewPlacesRequest(r *Record, m *codec.Message) places.Request {
	return places.Request{
		Lat: string(r.Lat), Lng: string(r.Lng), RadiusM: string(codec.AppendRadiusMetres(nil, m.Radius)),
		LatF: r.LatF, LngF: r.LngF, RadiusMF: m.RadiusKm * 1000, Bound: m.Bound,
	}
}

// AppendPlacesAnswer appends to dst the body of a WHATSAT reply, without the blank line
// that ends it, for what a Places provider answered (body and err): body with "results"
// cut to bound; a body without "results" that carries a "status" as sent (an error body
// Google may send, SPEC §4); an UNKNOWN_ERROR body in Google's shape for no body at all
// (saying err) or for a body that is neither (rejected then says why). Any goroutine.
func AppendPlacesAnswer(dst, body []byte, err error, bound int) (out []byte, rejected error) {
	if len(body) == 0 {
		msg := "no answer"
		if err != nil {
			msg = err.Error()
		}
		body = codec.AppendErrorBody(nil, "UNKNOWN_ERROR", msg)
	}
	return cutBody(dst, body, bound)
}
