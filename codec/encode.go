package codec

import (
	"bytes"
	"strconv"
)

// AppendAT appends "AT <server> <skew> <client> <location> <time>\n" for the IAMAT (or AT)
// m received at recv: the skew is recv - m.Time (AppendSkew), and the client, location
// and time are m's fields byte for byte as sent. server must be a valid field (no white
// space, not empty). It does not allocate when dst has room and keeps nothing of m.
// Safe to call from any goroutine.
func AppendAT(dst []byte, server string, recv Time, m *Message) []byte {
	dst = append(dst, "AT "...)
	dst = append(dst, server...)
	dst = append(dst, ' ')
	dst = AppendSkew(dst, recv, m.Time)
	dst = append(dst, ' ')
	dst = append(dst, m.Client...)
	dst = append(dst, ' ')
	dst = append(dst, m.Location...)
	dst = append(dst, ' ')
	dst = append(dst, m.TimeText...)
	return append(dst, '\n')
}

// AppendATLine appends the AT line m (a Message of Kind AT) in canonical form, without a
// "\n": "AT <server> <skew> <client> <location> <time>", its six fields byte for byte and
// joined by single spaces, whatever white space the sender used; fields after the sixth
// (Message.Extra, in the Python dialect) are left out. For a line of six fields this is
// AppendFields of the line. dst must not overlap the line m was parsed from. It does not
// allocate when dst has room and is safe to call from any goroutine.
func AppendATLine(dst []byte, m *Message) []byte {
	dst = append(dst, "AT "...)
	for i, f := range [...][]byte{m.Server, m.Skew, m.Client, m.Location, m.TimeText} {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, f...)
	}
	return dst
}

// AppendSkew appends recv - sent exactly to the nanosecond, always signed and always with
// 9 fraction digits: "+0.263873386", "-12.000000001", "+0.000000000". Both times must have
// |Sec| < 4e18 (every time ParseTime returns, and every time.Time within years of now).
func AppendSkew(dst []byte, recv, sent Time) []byte {
	sec := recv.Sec - sent.Sec
	nsec := int64(recv.Nsec) - int64(sent.Nsec)
	if nsec < 0 {
		nsec += 1e9
		sec--
	}
	// The value is sec + nsec/1e9 with 0 <= nsec < 1e9.
	if sec < 0 {
		dst = append(dst, '-')
		if nsec > 0 {
			sec++
			nsec = 1e9 - nsec
		}
		sec = -sec
	} else {
		dst = append(dst, '+')
	}
	dst = strconv.AppendInt(dst, sec, 10)
	dst = append(dst, '.')
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	return append(dst, frac[:]...)
}

// AppendInvalid appends the reply to an invalid line: "? " + line + "\n". A "\n" inside
// line (a framed line never holds one) is written as a space, so the reply stays one line.
func AppendInvalid(dst, line []byte) []byte {
	dst = append(dst, "? "...)
	for {
		i := bytes.IndexByte(line, '\n')
		if i < 0 {
			break
		}
		dst = append(dst, line[:i]...)
		dst = append(dst, ' ')
		line = line[i+1:]
	}
	dst = append(dst, line...)
	return append(dst, '\n')
}

// AppendRadiusMetres appends km x 1000 as an exact decimal, normalised (no leading zeros
// but one before a ".", no trailing fraction zeros, no trailing "."): "10" -> "10000",
// "0.0015" -> "1.5", "50" -> "50000", "0.5" -> "500". km must be a radius as ParseLine
// accepts it (D+(.D+)?); anything else is appended unchanged.
func AppendRadiusMetres(dst, km []byte) []byte {
	if !isDecimal(km, false) {
		return append(dst, km...)
	}
	j := digits(km, 0)
	ip, frac := km[:j], km[j:]
	if len(frac) > 0 {
		frac = frac[1:]
	}
	// Integer part of the result: ip followed by the first 3 fraction digits, padded.
	start := len(dst)
	for _, c := range ip {
		if c == '0' && len(dst) == start {
			continue
		}
		dst = append(dst, c)
	}
	for k := range 3 {
		c := byte('0')
		if k < len(frac) {
			c = frac[k]
		}
		if c == '0' && len(dst) == start {
			continue
		}
		dst = append(dst, c)
	}
	if len(dst) == start {
		dst = append(dst, '0')
	}
	if len(frac) > 3 {
		rest := bytes.TrimRight(frac[3:], "0")
		if len(rest) > 0 {
			dst = append(dst, '.')
			dst = append(dst, rest...)
		}
	}
	return dst
}

// Newer reports whether the record (t, line) beats (oldT, oldLine): a larger time wins,
// and at equal times the byte-wise larger whole AT line (both given without "\n"), so
// every server converges on the same record whatever order updates arrive in.
func Newer(t Time, line []byte, oldT Time, oldLine []byte) bool {
	if c := t.Compare(oldT); c != 0 {
		return c > 0
	}
	return bytes.Compare(line, oldLine) > 0
}
