package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// replyScanner finds where replies end in a byte stream, however it is chunked, without
// copying: a line reply ends at its "\n"; a multi-line reply (WHATSAT) ends at the "\n" of
// the blank line after its JSON. A reply that starts with the bad byte ('?' from the herd,
// '-' from Redis) is an error reply of one line.
type replyScanner struct {
	bad     byte
	started bool // some bytes of the current reply have been consumed
	prevNL  bool // the last byte consumed was '\n'
	invalid bool // the current reply started with bad
}

// scan consumes p up to the end of the current reply, which answers a request of kind k.
// It returns the bytes used, whether the reply is complete, and whether it was an error reply.
func (s *replyScanner) scan(p []byte, k uint8) (n int, done, invalid bool) {
	if len(p) == 0 {
		return 0, false, false
	}
	if !s.started {
		s.started = true
		s.invalid = p[0] == s.bad
	}
	if !multi(k) || s.invalid {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return len(p), false, false
		}
		inv := s.invalid
		s.started, s.prevNL, s.invalid = false, false, false
		return i + 1, true, inv
	}
	pos := 0
	for pos < len(p) {
		i := bytes.IndexByte(p[pos:], '\n')
		if i < 0 {
			s.prevNL = false
			return len(p), false, false
		}
		if i == 0 && s.prevNL {
			s.started, s.prevNL = false, false
			return pos + 1, true, false
		}
		s.prevNL = true
		pos += i + 1
	}
	return pos, false, false
}

// errCheck marks a reply that failed verification.
var errCheck = errors.New("loadgen: wrong reply")

// fields splits on ASCII white space without allocating more than the result slice.
func fields(b []byte) [][]byte { return bytes.Fields(b) }

// checkReply verifies one reply against the request that caused it (both with their
// newlines). server, when not empty, is the server name AT lines must carry; rawOK is the
// prefix a raw reply must start with.
func checkReply(req, reply []byte, k uint8, server, rawOK string, bound int) error {
	if k == kindRaw {
		if !bytes.HasPrefix(reply, []byte(rawOK)) {
			return fmt.Errorf("%w: %q to %q, want prefix %q", errCheck, trim(reply), trim(req), rawOK)
		}
		return nil
	}
	rq := fields(req)
	nl := bytes.IndexByte(reply, '\n')
	if nl < 0 {
		return fmt.Errorf("%w: %q has no newline", errCheck, trim(reply))
	}
	at := reply[:nl]
	if len(rq) < 2 {
		return fmt.Errorf("%w: bad request %q", errCheck, trim(req))
	}
	if err := checkAT(at, rq[1], server); err != nil {
		return fmt.Errorf("%w: %v (reply to %q)", errCheck, err, trim(req))
	}
	f := fields(at)
	if k == kindIAMAT {
		if len(rq) != 4 || !bytes.Equal(f[4], rq[2]) || !bytes.Equal(f[5], rq[3]) {
			return fmt.Errorf("%w: %q does not echo %q", errCheck, at, trim(req))
		}
		if nl != len(reply)-1 {
			return fmt.Errorf("%w: IAMAT reply has more than one line: %q", errCheck, trim(reply))
		}
		return nil
	}
	body := reply[nl+1:]
	if !bytes.HasSuffix(body, []byte("}\n\n")) {
		return fmt.Errorf("%w: WHATSAT reply does not end with \"}\\n\\n\": %q", errCheck, tail(body))
	}
	body = body[:len(body)-1]
	if bytes.Contains(body, []byte("\n\n")) {
		return fmt.Errorf("%w: WHATSAT JSON holds a blank line", errCheck)
	}
	var v struct {
		Status  *string `json:"status"`
		Results *[]any  `json:"results"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%w: WHATSAT JSON: %v", errCheck, err)
	}
	if v.Status == nil || v.Results == nil {
		return fmt.Errorf("%w: WHATSAT JSON lacks status or results", errCheck)
	}
	if bound > 0 && len(*v.Results) > bound {
		return fmt.Errorf("%w: WHATSAT gave %d results, bound %d", errCheck, len(*v.Results), bound)
	}
	return nil
}

// checkAT verifies "AT <server> <skew> <client> <location> <time>".
func checkAT(at, client []byte, server string) error {
	f := fields(at)
	if len(f) != 6 || string(f[0]) != "AT" {
		return fmt.Errorf("not an AT line: %q", at)
	}
	if server != "" && string(f[1]) != server {
		return fmt.Errorf("server %q, want %q", f[1], server)
	}
	if !validSkew(f[2]) {
		return fmt.Errorf("bad skew %q", f[2])
	}
	if !bytes.Equal(f[3], client) {
		return fmt.Errorf("client %q, want %q", f[3], client)
	}
	return nil
}

// validSkew reports whether b is [+-]digits.9digits.
func validSkew(b []byte) bool {
	if len(b) < 12 || (b[0] != '+' && b[0] != '-') {
		return false
	}
	dot := bytes.IndexByte(b, '.')
	if dot < 2 || len(b)-dot-1 != 9 {
		return false
	}
	for i, c := range b[1:] {
		if i+1 != dot && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func trim(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

func tail(b []byte) []byte {
	if len(b) > 40 {
		return b[len(b)-40:]
	}
	return b
}
