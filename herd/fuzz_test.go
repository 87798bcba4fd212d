package herd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/internal/testutil"
)

// FuzzServerConn sends random byte streams, in two writes cut anywhere, into a connection to a
// live server (A of a herd of two, A linked to B, in this process, small limits) and
// half-closes. Whatever the bytes: the server answers with well-formed replies only (AT
// lines, each WHATSAT's with its body, and at most one "?" line, last), then closes; it keeps
// running; and once the connection is gone it holds nothing for it (no client, no WHATSAT
// waiting) and stays within its limits.
func FuzzServerConn(f *testing.F) {
	for _, seed := range []string{
		kiwiIAMAT + "\n",
		kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n",
		"IAMAT a +1+1 1\r\nWHATSAT a 50 20\nWHATSAT a 0.001 1\nIAMAT a +1+1 2",
		"AT B +0.000000001 b +1+1 5\nWHATSAT b 1 1\n",
		"WHATSAT nobody 10 5\n",
		"IAMAT a +1+1 1\nWHATSAT a 1 1\nWHATSAT a 2 1\nWHATSAT a 3 1\nWHATSAT a 4 1\nWHATSAT a 5 1\nWHATSAT a 6 1\n",
		"IAMAT ki\x00wi +1+1 1\n",
		"\x00\x01\xff\xfeIA\x80\nx\n",
		"IAMAT " + strings.Repeat("x", 300) + "\n",
		"\n",
		"   \t\r\n",
	} {
		f.Add([]byte(seed), uint16(len(seed)/2))
	}
	cfg := testConfig(f, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	cfg.Limits.MaxLine = 256
	cfg.Limits.MaxPending = 4
	cfg.Limits.MaxWaiting = 8
	cfg.Limits.MaxUnsent = 16 << 10
	h := startHerd(f, cfg)
	a := h.Server("A")
	testutil.WaitFor(f, "the links", func() bool { return a.Metrics().LinksUp.Load() == 1 && h.Server("B").Metrics().LinksUp.Load() == 1 })
	clients := a.Metrics().ClientsOpen.Load() // B's link

	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		k := int(cut) % (len(data) + 1)
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// The server may close before it has read everything (after a "?" line): later
		// writes may fail then, which is the server's right.
		if _, err := c.Write(data[:k]); err == nil {
			if _, err := c.Write(data[k:]); err == nil {
				c.(*net.TCPConn).CloseWrite()
			}
		}
		out, err := io.ReadAll(c)
		reset := errors.Is(err, syscall.ECONNRESET)
		if err != nil && !reset {
			t.Fatalf("reading the replies: %v (read %q)", err, out)
		}
		if msg := checkReplies(out, cfg.Limits.MaxLine, reset); msg != "" {
			t.Fatalf("input %q: %s; replies:\n%s", data, msg, out)
		}
		select {
		case <-a.Done():
			t.Fatalf("the server stopped: %v", a.Err())
		default:
		}
		m := a.Metrics()
		// A client cut off at max_pending leaves its calls in flight: they end within
		// places.timeout, and nothing is left of them.
		testutil.WaitFor(t, "the connection and its calls gone from the server", func() bool {
			return m.ClientsOpen.Load() == clients && m.Waiting.Load() == 0
		})
	})
}

// checkReplies returns what is wrong with a server's replies on one connection, or "": a
// sequence of valid AT lines of at most maxLine+ATOverhead bytes with valid client IDs (an
// IAMAT's reply, or the record a WHATSAT's reply starts with, which may come from any server
// of the herd), a WHATSAT's followed by its JSON body and the blank line, then possibly one
// "? " line, and nothing after it. With truncated (the connection was reset) the last reply
// may be cut short.
func checkReplies(out []byte, maxLine int, truncated bool) string {
	rest := out
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			if truncated {
				return ""
			}
			return "a reply without its newline"
		}
		line := rest[:nl]
		rest = rest[nl+1:]
		if bytes.HasPrefix(line, []byte("? ")) {
			if len(rest) > 0 {
				return "replies after a \"?\" line"
			}
			return ""
		}
		m, err := codec.ParseLine(line)
		if err != nil || m.Kind != codec.AT || len(line) > maxLine+codec.ATOverhead {
			return "a reply that is not an AT line: " + strings.ToValidUTF8(string(line), "?")
		}
		if !ValidClientID(m.Client) {
			return "a client ID that ValidClientID refuses, echoed"
		}
		if !bytes.HasPrefix(rest, []byte("{\n")) {
			continue // an IAMAT's reply
		}
		end := bytes.Index(rest, []byte("\n}\n\n"))
		if end < 0 {
			if truncated {
				return ""
			}
			return "a WHATSAT body without its end"
		}
		body := rest[:end+3]
		if _, err := codec.ParseJSON(body); err != nil {
			return "a WHATSAT body that is not JSON: " + err.Error()
		}
		rest = rest[end+4:]
	}
	return ""
}
