package codec

import (
	"bytes"
	"errors"
)

// DefaultMaxLine is the default line limit in bytes (SPEC §2).
const DefaultMaxLine = 4096

// TooLongEcho is how many bytes of a too-long line the reply echoes: the reply is
// "? " followed by the first TooLongEcho bytes of the line (AppendInvalid of the echo
// that ScanLine and Decoder.Next return with ErrLineTooLong; with a limit below
// TooLongEcho, the first limit+1 bytes).
const TooLongEcho = 64

// ErrLineTooLong reports a line longer than the limit. Bytes held for a line that has not
// ended yet count against the limit.
var ErrLineTooLong = errors.New("codec: line too long")

// ScanLine finds one complete line at the start of buf. It returns the line without its
// "\n" and without one "\r" just before it, and n, the bytes it used (through the "\n").
// The line aliases buf.
//
// The limit max applies to the line as returned, without its "\r\n" or "\n": a line of
// max bytes is accepted whichever ending it has. A line longer than max gives
// ErrLineTooLong. With no "\n" in buf, the bytes held count against the limit: ScanLine
// returns (nil, 0, nil) while len(buf) <= max, or len(buf) == max+1 with a "\r" last (a
// "\n" may still follow it), else ErrLineTooLong. With ErrLineTooLong, n is 0 and line is
// the echo for the reply: the first TooLongEcho bytes of the line (first max+1 bytes if
// max < TooLongEcho, so that the echo does not depend on how the stream was cut).
// max <= 0 means DefaultMaxLine.
//
// The result does not depend on how the stream was cut: a caller that keeps the bytes it
// has not consumed and calls ScanLine again when more arrive sees the same lines and the
// same errors. ScanLine is stateless and safe to call from any goroutine.
func ScanLine(buf []byte, max int) (line []byte, n int, err error) {
	if max <= 0 {
		max = DefaultMaxLine
	}
	i := bytes.IndexByte(window(buf, max), '\n')
	if i < 0 {
		if mayHold(buf, max) {
			return nil, 0, nil
		}
		return echo(buf, max), 0, ErrLineTooLong
	}
	if line = trimCR(buf[:i]); len(line) > max {
		return echo(buf, max), 0, ErrLineTooLong
	}
	return line, i + 1, nil
}

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

// Decoder frames lines for code that reads into its own buffers (net.Conn servers, the
// load generator). Feed it what was read, then call Next until it reports no line.
// A Decoder is not safe for concurrent use: one goroutine owns it. Its zero value is
// ready to use with the DefaultMaxLine limit.
type Decoder struct {
	// Max is the line limit in bytes; <= 0 means DefaultMaxLine.
	Max int

	buf     []byte
	start   int    // first byte not yet returned
	scanned int    // bytes from start known to hold no "\n"
	err     error  // sticky ErrLineTooLong
	echo    []byte // the too-long line's echo, owned
}

// NewDecoder returns a Decoder with the line limit max (<= 0: DefaultMaxLine).
func NewDecoder(max int) *Decoder {
	return &Decoder{Max: max}
}

func (d *Decoder) max() int {
	if d.Max <= 0 {
		return DefaultMaxLine
	}
	return d.Max
}

// Feed adds p to the stream. It copies p, so the caller may reuse p when Feed returns.
// Lines returned by Next before this call become invalid. After ErrLineTooLong, Feed
// drops its input.
func (d *Decoder) Feed(p []byte) {
	if d.err != nil || len(p) == 0 {
		return
	}
	if d.start > 0 {
		n := copy(d.buf, d.buf[d.start:])
		d.buf = d.buf[:n]
		d.start = 0
	}
	d.buf = append(d.buf, p...)
}

// Next returns the next complete line, without its "\n" and without one "\r" before it.
// ok is false when no complete line is buffered. The line is valid until the next call
// to Feed, Next or Final.
//
// The limit applies as in ScanLine: to the line without its "\r\n" or "\n", and to the
// bytes held for a line not ended yet (max of them, or max+1 with a "\r" last). Past it,
// Next returns ErrLineTooLong with line set to the echo for the reply (as ScanLine's, see
// AppendInvalid); the error is sticky, as the connection is to be closed.
func (d *Decoder) Next() (line []byte, ok bool, err error) {
	if d.err != nil {
		return d.echo, false, d.err
	}
	max := d.max()
	rest := d.buf[d.start:]
	i := bytes.IndexByte(window(rest, max)[d.scanned:], '\n')
	if i < 0 {
		if !mayHold(rest, max) {
			return d.tooLong(rest, max)
		}
		d.scanned = len(rest)
		return nil, false, nil
	}
	i += d.scanned
	line = trimCR(rest[:i])
	if len(line) > max {
		return d.tooLong(rest, max)
	}
	d.start += i + 1
	d.scanned = 0
	if d.start == len(d.buf) {
		d.buf = d.buf[:0]
		d.start = 0
	}
	return line, true, nil
}

// tooLong makes ErrLineTooLong sticky for the line at the start of rest.
func (d *Decoder) tooLong(rest []byte, max int) ([]byte, bool, error) {
	d.err = ErrLineTooLong
	d.echo = append([]byte(nil), echo(rest, max)...)
	d.buf, d.start, d.scanned = nil, 0, 0
	return d.echo, false, d.err
}

// Final is for the end of the stream (the peer half-closed): it returns the unterminated
// tail as a line (one trailing "\r" dropped; possibly empty but non-nil), or nil when
// nothing is held or after ErrLineTooLong. Call it once Next reports no line. It empties
// the Decoder; the line is valid until the next call to Feed, Next or Final.
func (d *Decoder) Final() []byte {
	if d.err != nil {
		return nil
	}
	rest := d.buf[d.start:]
	d.buf, d.start, d.scanned = d.buf[:0], 0, 0
	if len(rest) == 0 {
		return nil
	}
	return trimCR(rest)
}

// Buffered returns the number of bytes held that Next has not returned.
func (d *Decoder) Buffered() int {
	return len(d.buf) - d.start
}
