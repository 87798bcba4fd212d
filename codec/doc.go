// Package codec is the herd's wire protocol as bytes, with no I/O: line framing,
// parsing IAMAT, WHATSAT and AT lines, exact POSIX times, the AT and "?" replies, the
// HELLO that opens a link between two servers, and
// Google Places' JSON (its layout, and cutting "results" while keeping Google's bytes).
//
// # Lines
//
// A message is one line ending in "\n"; a "\r" just before it is dropped (SPEC §2).
// Decoder frames a stream fed to it in chunks (a net.Conn's reads, a reactor protocol's
// DataReceived), returning lines in place and copying only the start of a line split
// across chunks. It enforces a line limit (DefaultMaxLine, 4096 bytes) on the line without
// its "\r\n" or "\n", counts bytes held for an unfinished line against it (allowing one
// more byte when that byte is a "\r", as the "\n" after it would make it part of the
// ending), and gives the same lines and errors however the stream was cut. A too-long line is answered with
// "? " and its first TooLongEcho (64) bytes. A herd server's Decoder lets AT lines be
// ATOverhead (128) bytes longer (Decoder.AT, LineLimit), since a neighbour's AT line
// carries a client's IAMAT of up to the limit. A too-long line ends the stream's framing,
// as its connection is to be closed, unless the user drops that line alone
// (Decoder.SkipLine), as a herd server does with what a plain peer sends.
//
// White space is IsSpace's: space, \t, \r, \v and \f (SPEC §2). Field picks one field of
// a line, and AppendFields writes a line's canonical form, its fields joined by single
// spaces, in which servers store and flood AT lines.
//
// ParseLine splits a line at runs of space, \t, \r, \v and \f and checks each field
// strictly; its doc lists the accepted forms. Decisions this package makes where SPEC is
// silent:
//   - a time has at most MaxTimeDigits (18) significant integer digits and at most 9
//     fraction digits, an optional sign, and no exponent; it is kept as its text (to echo)
//     and as an exact Time (to compare), never as a float64;
//   - a radius is digits with an optional fraction of at least one digit ("10", "0.5",
//     "007"); "1e1", ".5", "5.", "+5" are invalid; 0 < radius <= 50 is checked on the text;
//   - a bound is digits only (no sign; leading zeros allowed), 1 <= bound <= 20;
//   - an AT line's skew may be any decimal with an optional sign, so peers of other
//     implementations interoperate, while this package always writes "+S.FFFFFFFFF";
//   - servers of the seed's design print the skew as a Python float ("+1.1e-05") and some
//     append names to their AT lines: ParseLineIn's Python dialect takes both, and
//     AppendATLine writes the record without the names. ParseLine (the Strict dialect)
//     takes neither, so a server chooses whom it allows them from;
//   - ranges (latitude, longitude, radius) are checked exactly on the text, so
//     "+90.0000000000000000001" is out of range even though it rounds to 90.
//   - with Decoder.AT, a line's first field decides its limit; bytes held before the first
//     field has arrived count against the larger limit, so that leading white space cannot
//     make the answer depend on the cut, and the line is judged once its first field is in.
//
// # Links
//
// Two servers of this project link on a peer port, and each side's first line is a HELLO
// (ParseHello, AppendHello): the link protocol's version (LinkVersion), both names, the
// sender's instance and a fresh nonce, and with a shared secret a proof (an HMAC the herd
// package computes); a dialler that must prove itself too sends AUTH next (ParseAuth,
// AppendAuth), and a refusal is one ERR line (AppendLinkError) before the close. What
// follows on a link (AT lines and the resync's lines) is described in package herd.
//
// Messages alias the line they were parsed from. Parsing and the append-style encoders
// (AppendAT, AppendSkew, AppendInvalid, AppendRadiusMetres) do not allocate, and errors
// are shared values, so an invalid line costs no allocation either.
//
// # Google's JSON
//
// AppendPlacesBody cuts a Places body's top-level "results" array to the WHATSAT bound
// in one scan, keeping Google's bytes, and squeezes newlines as SPEC §4 asks.
// AppendStyled writes a tree of Object, Array, Number and Go scalars in Google's own
// layout (jsoncpp's StyledWriter, described in fixtures/places/README.md), for providers
// that build bodies; ParseJSON reads a body into that tree, keeping number tokens
// verbatim, so AppendStyled(ParseJSON(body)) reproduces every real capture byte for
// byte. AppendErrorBody writes the UNKNOWN_ERROR (or any status) body.
//
// Everything in this package is safe to call from any goroutine, except that one
// Decoder belongs to one goroutine.
package codec
