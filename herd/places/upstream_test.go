package places

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

// TestGoogleBodyNotScrubbedOfKey: the legacy provider replaced the API key in Google's body
// with "REDACTED", so with the key "x" an answer came back with "neREDACTEDt_page_token",
// and with the key "results" it was no longer a Places body. Google's bytes pass through
// (SPEC §4); only texts we write (errors, v1 error messages) are scrubbed, and only of a key
// long enough to be one (minScrubLen).
func TestGoogleBodyNotScrubbedOfKey(t *testing.T) {
	for _, key := range []string{"x", "results", "status", testKey} {
		t.Run(key, func(t *testing.T) {
			f, base := fake.StartTest(t, fake.Options{Key: key})
			p := newProvider(t, Config{Provider: Google, URL: base, Key: key})
			body, err := p.Nearby(context.Background(), ucla)
			if want := fake.LegacyBody(34.068930, -118.445127, 10000, 20); err != nil || !bytes.Equal(body, want) {
				t.Fatalf("err %v; body is not Google's bytes:\n%.300s", err, body)
			}
			// A status Google sends passes through as sent, even if its message holds the key.
			msg := "next_page_token results status key=" + key
			f.Set(fake.Options{Key: key, Status: "REQUEST_DENIED", StatusMessage: msg})
			body, err = p.Nearby(context.Background(), ucla)
			if want := codec.AppendErrorBody(nil, "REQUEST_DENIED", msg); !bytes.Equal(body, want) {
				t.Errorf("status body\n%s\nwant\n%s", body, want)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Status != "REQUEST_DENIED" {
				t.Fatalf("err %v, want a StatusError", err)
			}
			// The error is ours, for the log: a real key is scrubbed from it, a short one not.
			wantMsg := msg
			if len(key) >= minScrubLen {
				wantMsg = strings.ReplaceAll(msg, key, "REDACTED")
			}
			if se.Message != wantMsg {
				t.Errorf("StatusError.Message %q, want %q", se.Message, wantMsg)
			}
		})
	}
}

// TestGoogleV1ShortKeyKeepsText: the v1 body is ours, built from Google's answer; place data
// is never scrubbed, and an error message loses only a key of real length.
func TestGoogleV1ShortKeyKeepsText(t *testing.T) {
	f, base := fake.StartTest(t, fake.Options{})
	long := newProvider(t, Config{Provider: GoogleV1, URL: base})
	short := newProvider(t, Config{Provider: GoogleV1, URL: base, Key: "x"})
	want, err := long.Nearby(context.Background(), ucla)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := short.Nearby(context.Background(), ucla); err != nil || !bytes.Equal(got, want) {
		t.Errorf("key \"x\": err %v, body differs:\n%.300s", err, got)
	}
	msg := "Invalid max result count: 'x' exceeds " + testKey
	f.Set(fake.Options{V1Error: "INVALID_ARGUMENT", StatusMessage: msg})
	body, _ := short.Nearby(context.Background(), ucla)
	if _, got := errorBody(t, body); got != msg {
		t.Errorf("key \"x\": error_message %q, want %q", got, msg)
	}
	body, _ = long.Nearby(context.Background(), ucla)
	if _, got := errorBody(t, body); got != strings.ReplaceAll(msg, testKey, "REDACTED") {
		t.Errorf("real key: error_message %q, want it scrubbed", got)
	}
}

// TestRetryAfterIdleConnClosed: after the API closed an idle keep-alive connection (its idle
// timeout, or a restart), the next call failed with "the server closed connection before
// returning the first response byte". A request that fails on a reused connection before any
// byte of an answer is sent again, once, on another connection.
func TestRetryAfterIdleConnClosed(t *testing.T) {
	for _, provider := range []string{Google, GoogleV1} {
		for _, how := range []string{"idle closed", "restarted"} {
			t.Run(provider+" "+how, func(t *testing.T) {
				f, base := fake.StartTest(t, fake.Options{})
				// Two connections in the pool, both to be closed by the API.
				f.Hold()
				p := newProvider(t, Config{Provider: provider, URL: base})
				other := ucla
				other.LatF, other.Lat = 1, ""
				done := make(chan error, 2)
				for _, r := range []Request{ucla, other} {
					go func() {
						_, err := p.Nearby(context.Background(), r)
						done <- err
					}()
				}
				testutil.WaitFor(t, "both requests at the fake", func() bool { return f.Count() == 2 })
				f.Release()
				for range 2 {
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				switch how {
				case "idle closed":
					closed := 0
					testutil.WaitFor(t, "both idle connections closed", func() bool { closed += f.CloseIdle(); return closed == 2 })
				case "restarted":
					f.Close()
					f = fake.New(fake.Options{})
					if _, err := f.StartOn(strings.TrimPrefix(base, "http://")); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { f.Close() })
				}
				f.Reset()
				for i := range 3 {
					body, err := p.Nearby(context.Background(), ucla)
					if err != nil {
						t.Fatalf("call %d after the API closed the connections: %v\n%s", i, err, body)
					}
				}
				if n := f.Count(); n != 3 {
					t.Errorf("the API got %d requests, want 3", n)
				}
			})
		}
	}
}

// TestConnectionClosedBeforeAnswer: the UNKNOWN_ERROR body says in our words that the API
// closed the connection (fasthttp's text is advice for server authors; it stays in the error,
// for the log). A new connection is not retried, a reused one at most once.
func TestConnectionClosedBeforeAnswer(t *testing.T) {
	for _, provider := range []string{Google, GoogleV1} {
		t.Run(provider, func(t *testing.T) {
			f, base := fake.StartTest(t, fake.Options{Drop: true})
			p := newProvider(t, Config{Provider: provider, URL: base})
			check := func(what string, wantCount int64) {
				t.Helper()
				body, err := p.Nearby(context.Background(), ucla)
				if want := codec.AppendErrorBody(nil, "UNKNOWN_ERROR", closedText); !bytes.Equal(body, want) {
					t.Errorf("%s: body\n%s\nwant\n%s", what, body, want)
				}
				if !errors.Is(err, ErrTransport) || !strings.Contains(err.Error(), "closed connection before returning the first response byte") {
					t.Errorf("%s: err %v, want ErrTransport with fasthttp's text", what, err)
				}
				if n := f.Count(); n != wantCount {
					t.Errorf("%s: the API got %d requests, want %d", what, n, wantCount)
				}
			}
			check("new connection", 1)

			f.Set(fake.Options{})
			if _, err := p.Nearby(context.Background(), ucla); err != nil {
				t.Fatal(err)
			}
			f.Set(fake.Options{Drop: true})
			f.Reset()
			check("reused connection", 2)
		})
	}
}

// TestErrorBodiesNameNoAddress is the regression test for UNKNOWN_ERROR bodies that showed a
// client the Places API's host and port (fasthttp's errors name them: "error when dialing
// 127.0.0.1:1: dial tcp4 127.0.0.1:1: connect: connection refused"). For every failure that
// makes one, the error_message names no host, address or port; the error for the log still
// does where it helps.
func TestErrorBodiesNameNoAddress(t *testing.T) {
	resetter := testutil.Listen(t) // accepts and resets every connection
	testutil.Serve(t, resetter, func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	_, hang := fake.StartTest(t, fake.Options{Hang: true})
	slowFake, slow := fake.StartTest(t, fake.Options{Delay: 2 * time.Second})
	_, http500 := fake.StartTest(t, fake.Options{HTTPStatus: 500})
	_, malformed := fake.StartTest(t, fake.Options{Malformed: true})
	_, drop := fake.StartTest(t, fake.Options{Drop: true})
	refused := testutil.FreeAddr(t) // nothing listens there
	_, refusedPort, _ := net.SplitHostPort(refused)
	tests := []struct {
		name     string
		url      string
		maxConns int
		busy     bool // a call holds the only connection
	}{
		{"refused", "http://" + refused, 0, false},
		{"refused by name", "http://localhost:" + refusedPort, 0, false},
		{"reset", "http://" + resetter.Addr().String(), 0, false},
		{"timeout", hang, 0, false},
		{"no free connection", slow, 1, true},
		{"HTTP 500", http500, 0, false},
		{"malformed", malformed, 0, false},
		{"dropped", drop, 0, false},
	}
	for _, provider := range []string{Google, GoogleV1} {
		for _, tt := range tests {
			t.Run(provider+" "+tt.name, func(t *testing.T) {
				p := newProvider(t, Config{Provider: provider, URL: tt.url, Timeout: 300 * time.Millisecond, MaxConns: tt.maxConns})
				if tt.busy {
					n := slowFake.Count()
					go p.Nearby(context.Background(), ucla)
					testutil.WaitFor(t, "the first call at the API", func() bool { return slowFake.Count() > n })
				}
				body, err := p.Nearby(context.Background(), ucla)
				if err == nil {
					t.Fatalf("no error; body %s", body)
				}
				status, msg := errorBody(t, body)
				if status != "UNKNOWN_ERROR" || msg == "" {
					t.Fatalf("status %q, error_message %q", status, msg)
				}
				u, _ := url.Parse(tt.url)
				host, port, _ := net.SplitHostPort(u.Host)
				for _, leak := range []string{u.Host, host, ":" + port, "127.0.0.1", "localhost", "dial", "tcp"} {
					if strings.Contains(msg, leak) {
						t.Errorf("error_message %q shows %q (the log's error: %v)", msg, leak, err)
					}
				}
				t.Logf("error_message %q; for the log: %v", msg, err)
			})
		}
	}
}
