package codec

import (
	"bytes"
	"errors"
	"math"
)

// DefaultMaxLine is the default line limit in bytes (SPEC §2).
const DefaultMaxLine = 4096

// TooLongEcho is how many bytes of a too-long line the reply echoes: the reply is
// "? " followed by the first TooLongEcho bytes of the line (AppendInvalid of the echo
// that Decoder.Next returns with ErrLineTooLong; with a limit below TooLongEcho, the
// first limit+1 bytes, so that the echo does not depend on how the stream was cut).
const TooLongEcho = 64

// MaxNameLen is the longest server name a herd may use: it bounds what a server adds to a
// client's IAMAT to make its AT line (see ATOverhead).
const MaxNameLen = 64

// ATOverhead is how much longer than the line limit an AT line may be. An IAMAT of max
// bytes becomes an AT line of up to max+ATOverhead bytes ("AT ", a server name of at most
// MaxNameLen bytes, " ", a skew of at most 30 bytes, " ", less the "IAMAT " it replaces),
// and a server's neighbours must take it, or a long client ID would close links for ever.
const ATOverhead = 128

// ErrLineTooLong reports a line longer than the limit. Bytes held for a line that has not
// ended yet count against the limit.
var ErrLineTooLong = errors.New("codec: line too long")

// window returns the part of b that can hold the "\n" of a line of at most max bytes: the
// first max+2 bytes (the line, then "\r\n").
func window(b []byte, max int) []byte {
	if len(b)-2 > max {
		return b[:max+2]
	}
	return b
}

// mayHold reports whether b, the start of a line with no "\n" yet, is within the limit:
// at most max bytes, or max+1 with a "\r" last, which the "\n" that may come next would
// drop.
func mayHold(b []byte, max int) bool {
	return len(b) <= max || len(b)-1 == max && b[max] == '\r'
}

// echo returns the first TooLongEcho (at most max+1) bytes of the line at the start of b.
func echo(b []byte, max int) []byte {
	n := TooLongEcho
	if max < n {
		n = max + 1
	}
	if len(b) > n {
		b = b[:n]
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return b
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// LineLimit returns the limit that applies to the line starting at b (with its "\n", if b
// holds it): max+ATOverhead for an AT line, one whose first field is "AT", else max. Until
// the first field has arrived (b holds only white space, maybe then "A" or "AT", and no
// "\n"), the line may still be an AT line and the larger limit applies: so the limit, and
// what a Decoder with AT set makes of a stream, does not depend on how the stream was cut.
// It looks at the first field only, does not allocate and is safe to call from any
// goroutine.
func LineLimit(b []byte, max int) int {
	if at, open := firstFieldAT(b); at || open {
		return atLimit(max)
	}
	return max
}

// atLimit is max+ATOverhead, or the largest int for a max too close to it.
func atLimit(max int) int { return min(max, math.MaxInt-ATOverhead) + ATOverhead }

// firstFieldAT reports whether the first field of b, the start of a line, is "AT" (at), or
// has not fully arrived and may still be (open: b holds only white space, maybe then "A" or
// "AT", and no "\n").
func firstFieldAT(b []byte) (at, open bool) {
	i := 0
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	switch rest := b[i:]; {
	case len(rest) >= 3:
		return rest[0] == 'A' && rest[1] == 'T' && (IsSpace(rest[2]) || rest[2] == '\n'), false
	case len(rest) == 0:
		return false, true
	default:
		return false, string(rest) == "AT"[:len(rest)]
	}
}

// Decoder frames the lines of a stream that arrives in chunks: a net.Conn read into a buffer
// of the caller's, or a reactor protocol's DataReceived. Feed it each chunk, then call Next
// until it reports no line; at the end of the stream, Final returns the last line if it had
// no "\n". Lines framed within one chunk are returned in place, without a copy; only the
// start of a line split across chunks is copied, and kept until the rest arrives.
//
// The limit is Max. It applies to the line as returned, without its "\r\n" or "\n" (a line
// of Max bytes is accepted whichever ending it has), and to the bytes held for a line not
// ended yet: Max of them, or Max+1 with a "\r" last, since a "\n" may still follow it.
// With AT set, an AT line may be ATOverhead bytes longer (see LineLimit): the limits of a
// herd server, whose neighbours' AT lines arrive on the same connections as clients'
// lines. Past the limit, Next returns ErrLineTooLong with the echo for the reply, the
// first TooLongEcho bytes of the line; the error is sticky, as the connection is to be
// closed, unless SkipLine drops that line and goes on. The lines and errors are the same
// however the stream was cut.
//
// A Decoder is not safe for concurrent use: one goroutine owns it. Its zero value is ready
// to use, with the DefaultMaxLine limit and AT off.
type Decoder struct {
	// Max is the line limit in bytes; <= 0 means DefaultMaxLine.
	Max int
	// AT lets AT lines be ATOverhead bytes longer than Max.
	AT bool

	held    []byte // owned: the start of a line split across chunks, then what followed it
	buf     []byte // being framed: the last chunk fed (the caller's), or held
	owned   bool   // buf is held
	off     int    // first byte of buf not yet returned
	scanned int    // bytes from off known to hold no "\n"
	err     error  // sticky ErrLineTooLong, until SkipLine
	echo    []byte // the too-long line's echo, owned
	after   []byte // with err: what followed the too-long line's "\n" in buf, for SkipLine
	ended   bool   // with err: buf held that "\n" (after is valid)
	skip    bool   // SkipLine: input is dropped up to the next "\n"
}

// maxHeld is the capacity of held kept once it is empty: a connection that once sent a
// long line split across reads does not keep a buffer for it for ever.
const maxHeld = 64 << 10

// NewDecoder returns a Decoder with the line limit max (<= 0: DefaultMaxLine) and AT off.
func NewDecoder(max int) *Decoder {
	return &Decoder{Max: max}
}

func (d *Decoder) max() int {
	if d.Max <= 0 {
		return DefaultMaxLine
	}
	return d.Max
}

// Feed adds p, the next chunk of the stream. It keeps p without copying it until Next
// reports no line (ok false, err nil), when it copies what p holds of a line not ended yet:
// the caller must not change p before then, and may reuse it after. Lines returned by
// Next before this call become invalid. After ErrLineTooLong, Feed drops its input, and
// after SkipLine what comes before the skipped line's "\n".
func (d *Decoder) Feed(p []byte) {
	if d.skip {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return
		}
		d.skip = false
		p = p[i+1:]
	}
	if d.err != nil || len(p) == 0 {
		return
	}
	if d.off == len(d.buf) {
		d.release()
		d.buf, d.off = p, 0
		return
	}
	d.keep()
	d.held = append(d.held, p...)
	d.buf = d.held
}

// keep moves the bytes of buf not yet returned to the start of held, and frames held.
func (d *Decoder) keep() {
	rest := d.buf[d.off:]
	if d.owned {
		d.held = d.held[:copy(d.held, rest)]
	} else {
		d.held = append(d.held[:0], rest...)
	}
	d.buf, d.owned, d.off = d.held, true, 0
}

// release forgets buf, which holds nothing more to return, and the chunk it may alias.
func (d *Decoder) release() {
	d.buf, d.owned, d.off, d.scanned = nil, false, 0, 0
	d.held = d.held[:0]
	if cap(d.held) > maxHeld {
		d.held = nil
	}
}

// Next returns the next complete line, without its "\n" and without one "\r" before it.
// ok is false when no complete line is buffered (the start of the next one, if any, is
// then copied). The line aliases the chunk fed or the Decoder's buffer, and is valid until
// the next call to Feed, Next, Final or Reset.
func (d *Decoder) Next() (line []byte, ok bool, err error) {
	if d.err != nil {
		return d.echo, false, d.err
	}
	max := d.max()
	rest := d.buf[d.off:]
	wide := max
	if d.AT {
		wide = atLimit(max)
	}
	i := bytes.IndexByte(window(rest, wide)[d.scanned:], '\n')
	if i < 0 {
		if !mayHold(rest, d.limit(rest, max)) {
			return d.tooLong(rest, max)
		}
		if len(rest) == 0 {
			d.release()
		} else {
			d.scanned = len(rest)
			d.keep()
		}
		return nil, false, nil
	}
	i += d.scanned
	line = trimCR(rest[:i])
	if len(line) > max && len(line) > d.lineLimit(line, max) {
		return d.tooLong(rest, max)
	}
	d.off += i + 1
	d.scanned = 0
	return line, true, nil
}

// limit is the limit for the bytes held of a line not ended yet, starting at b.
func (d *Decoder) limit(b []byte, max int) int {
	if !d.AT {
		return max
	}
	return LineLimit(b, max)
}

// lineLimit is the limit for a whole line (without its "\n"): max+ATOverhead for an AT line
// with AT set, else max.
func (d *Decoder) lineLimit(line []byte, max int) int {
	if d.AT && string(Field(line, 0)) == "AT" {
		return atLimit(max)
	}
	return max
}

// tooLong makes ErrLineTooLong sticky for the line at the start of rest. The echo takes
// the first bytes of the line whatever limit applied, so it does not depend on the cut.
func (d *Decoder) tooLong(rest []byte, max int) ([]byte, bool, error) {
	d.err = ErrLineTooLong
	d.echo = append([]byte(nil), echo(rest, max)...)
	d.after, d.ended = nil, false
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		d.after, d.ended = rest[i+1:], true
	}
	d.release()
	d.held = nil // after may alias it
	return d.echo, false, d.err
}

// SkipLine drops the line that Next or Final reported with ErrLineTooLong, through its
// "\n", and framing goes on after it: for a peer whose lines are discarded rather than
// answered, to which a line over the limit costs that line alone. Until the "\n" arrives,
// Feed drops what it is given, holding nothing. The lines after it are the same however
// the stream was cut. Call it right after the error, before the next Feed; it does nothing
// when there is no error.
func (d *Decoder) SkipLine() {
	if d.err == nil {
		return
	}
	after, ended := d.after, d.ended
	d.err, d.echo, d.after, d.ended = nil, nil, nil, false
	if !ended {
		d.skip = true
		return
	}
	// after aliases the chunk fed, or the held buffer tooLong let go of: framed in place,
	// it is copied by keep as any chunk is.
	d.buf, d.owned, d.off, d.scanned = after, false, 0, 0
}

// Final is for the end of the stream (the peer half-closed): it returns the unterminated
// tail as a line (one trailing "\r" dropped; possibly empty but non-nil), or nil when
// nothing is held or after ErrLineTooLong. The tail is judged as a complete line: one over
// its limit (an AT line's, with AT set, only if it is one) gives ErrLineTooLong and the
// echo, as Next would have had a "\n" followed it. Call Final once Next reports no line.
// It empties the Decoder; the line is valid until the next call to Feed, Next, Final or
// Reset.
func (d *Decoder) Final() ([]byte, error) {
	if d.err != nil {
		return nil, nil
	}
	rest := d.buf[d.off:]
	d.buf, d.owned, d.off, d.scanned = nil, false, 0, 0
	d.held = d.held[:0]
	d.skip = false
	if len(rest) == 0 {
		return nil, nil
	}
	// Held bytes were within LineLimit; a tail whose first field never arrived may pass
	// max without being an AT line.
	line := trimCR(rest)
	if max := d.max(); len(line) > d.lineLimit(line, max) {
		line, _, err := d.tooLong(rest, max)
		return line, err
	}
	return line, nil
}

// Pending returns the echo of the line not ended yet, for a "?" reply to it (a line its
// sender took too long to finish, say): its first TooLongEcho bytes, as Next's echo of a line
// too long; nil when no byte of a line is held, or after ErrLineTooLong. Call it once Next
// reports no line; the echo is valid until the next call to Feed, Next, Final or Reset.
func (d *Decoder) Pending() []byte {
	if d.err != nil || d.off >= len(d.buf) {
		return nil
	}
	return echo(d.buf[d.off:], d.max())
}

// Reset discards what the Decoder holds and its error, keeping Max and AT: a connection
// that stops reading calls it to let go of its buffers.
func (d *Decoder) Reset() {
	d.release()
	d.held = nil
	d.err, d.echo, d.after, d.ended, d.skip = nil, nil, nil, false, false
}
