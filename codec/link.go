package codec

import (
	"errors"
	"strconv"
)

// LinkVersion is the version of the link protocol this package speaks: the HELLO line and
// what follows it on a link between two servers of this project (see package herd). A server
// refuses a HELLO of another version.
const LinkVersion = 1

// Lengths of the hex fields of a HELLO line: an instance is 8 random bytes, a nonce 16, a
// proof an HMAC-SHA256 (32 bytes).
const (
	InstanceLen = 16
	NonceLen    = 32
	ProofLen    = 64
)

// Errors of ParseHello and ParseAuth.
var (
	// ErrHello reports a line that is not a valid HELLO line.
	ErrHello = errors.New("codec: invalid HELLO line")
	// ErrLinkVersion reports a HELLO line of a link protocol version other than LinkVersion.
	ErrLinkVersion = errors.New("codec: unsupported link protocol version")
	// ErrAuth reports a line that is not a valid AUTH line.
	ErrAuth = errors.New("codec: invalid AUTH line")
)

// Hello is a HELLO line, the first line each side of a link sends:
//
//	HELLO <version> <from> <to> <instance> <nonce> [<proof>]
//
// version is LinkVersion in decimal; from is the sender's name and to the name of the server
// it means to reach (names as in AT lines: no white space, at most MaxNameLen bytes);
// instance is InstanceLen lowercase hex digits that name the sender's process (a restarted
// server has a new one); nonce is NonceLen lowercase hex digits, fresh for the connection;
// proof, when the herd has a secret, is ProofLen lowercase hex digits of an HMAC-SHA256.
// The slices alias the line parsed.
type Hello struct {
	Version  int
	From, To []byte
	Instance []byte
	Nonce    []byte
	Proof    []byte // nil when absent
}

// ParseHello parses a HELLO line (without its "\n"; fields separated by white space, as
// ParseLine splits them). A line whose second field is a version other than LinkVersion
// gives ErrLinkVersion with Version (and From, if the line has one) set, so that the
// refusal can say what came; anything else that is not a valid HELLO line gives ErrHello.
// It does not allocate and is safe to call from any goroutine.
func ParseHello(line []byte) (Hello, error) {
	var f [maxFields][]byte
	n, err := fields(line, &f)
	if err != nil || n < 2 || string(f[0]) != "HELLO" {
		return Hello{}, ErrHello
	}
	v, ok := smallUint(f[1])
	if !ok {
		return Hello{}, ErrHello
	}
	h := Hello{Version: v}
	if n > 2 {
		h.From = f[2]
	}
	if v != LinkVersion {
		return h, ErrLinkVersion
	}
	if n != 6 && n != 7 {
		return Hello{}, ErrHello
	}
	h.To, h.Instance, h.Nonce = f[3], f[4], f[5]
	if n == 7 {
		h.Proof = f[6]
		if !isLowerHex(h.Proof, ProofLen) {
			return Hello{}, ErrHello
		}
	}
	if len(h.From) > MaxNameLen || len(h.To) > MaxNameLen ||
		!isLowerHex(h.Instance, InstanceLen) || !isLowerHex(h.Nonce, NonceLen) {
		return Hello{}, ErrHello
	}
	return h, nil
}

// AppendHello appends h as a HELLO line with its "\n" (Version as given, Proof only when
// set). The fields must be valid as ParseHello checks them. It does not allocate when dst
// has room and is safe to call from any goroutine.
func AppendHello(dst []byte, h *Hello) []byte {
	dst = append(dst, "HELLO "...)
	dst = strconv.AppendInt(dst, int64(h.Version), 10)
	for _, f := range [][]byte{h.From, h.To, h.Instance, h.Nonce} {
		dst = append(dst, ' ')
		dst = append(dst, f...)
	}
	if h.Proof != nil {
		dst = append(dst, ' ')
		dst = append(dst, h.Proof...)
	}
	return append(dst, '\n')
}

// ParseAuth parses "AUTH <proof>", the dialling side's proof that ends a handshake with a
// secret, and returns the proof (ProofLen lowercase hex digits, aliasing line). It does not
// allocate and is safe to call from any goroutine.
func ParseAuth(line []byte) ([]byte, error) {
	var f [maxFields][]byte
	n, err := fields(line, &f)
	if err != nil || n != 2 || string(f[0]) != "AUTH" || !isLowerHex(f[1], ProofLen) {
		return nil, ErrAuth
	}
	return f[1], nil
}

// AppendAuth appends "AUTH <proof>\n". Safe to call from any goroutine.
func AppendAuth(dst, proof []byte) []byte {
	dst = append(dst, "AUTH "...)
	dst = append(dst, proof...)
	return append(dst, '\n')
}

// AppendLinkError appends "ERR <msg>\n", the line a server sends on a link it refuses
// before closing it. Control bytes in msg (a "\n" among them) are written as spaces, so
// the reply stays one line. Safe to call from any goroutine.
func AppendLinkError(dst []byte, msg string) []byte {
	dst = append(dst, "ERR "...)
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < ' ' || c == 0x7f {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\n')
}

// smallUint parses 1 to 9 decimal digits.
func smallUint(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 || digits(b, 0) != len(b) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return n, true
}

// isLowerHex reports whether b is exactly n lowercase hex digits.
func isLowerHex(b []byte, n int) bool {
	if len(b) != n {
		return false
	}
	for _, c := range b {
		if !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
