package places

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/valyala/fasthttp"
)

// LegacyPath and V1Path are the endpoints' paths under the base URL.
const (
	LegacyPath = "/maps/api/place/nearbysearch/json"
	V1Path     = "/v1/places:searchNearby"
)

// userAgent names the client to Google (fasthttp's default would be "fasthttp").
const userAgent = "herd-places/1"

// upstream holds what both Google providers share: the client, the base URL and the key.
type upstream struct {
	base    string
	apiKey  string
	timeout time.Duration
	client  *fasthttp.Client
}

func newUpstream(cfg Config, defURL string) (upstream, error) {
	if cfg.Key == "" {
		return upstream{}, &ConfigError{Key: "key", Msg: fmt.Sprintf("provider %s needs an API key (config key or GOOGLE_PLACES_API_KEY)", cfg.Provider)}
	}
	base := cfg.URL
	if base == "" {
		base = defURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return upstream{}, &ConfigError{Key: "url", Msg: fmt.Sprintf("%q: want http(s)://host[:port]", base)}
	}
	return upstream{
		base:    strings.TrimRight(base, "/"),
		apiKey:  cfg.Key,
		timeout: cfg.Timeout,
		client: &fasthttp.Client{
			Name:                userAgent,
			MaxConnsPerHost:     cfg.MaxConns,
			MaxConnWaitTimeout:  cfg.Timeout,
			MaxResponseBodySize: MaxBodySize,
			// The one retry: a request that failed on a reused keep-alive connection the
			// API had closed while it sat idle, before any byte of an answer (what any HTTP
			// client retries). Every other failure is answered as it is.
			MaxIdemponentCallAttempts: 2,
			RetryIfErr:                retryStale,
			Transport:                 staleTransport{},
			DialTimeout:               dialTracked,
			ReadTimeout:               cfg.Timeout,
			WriteTimeout:              cfg.Timeout,
			// fasthttp's default (10 s), below common servers' keep-alive timeouts (nginx:
			// 75 s); against an API that closes idle connections sooner, the retry keeps
			// the call working.
			MaxIdleConnDuration: fasthttp.DefaultMaxIdleConnDuration,
		},
	}, nil
}

// errStale marks a request that failed on a reused keep-alive connection that the API closed
// before answering: the request is sent again, once, on another connection.
// (Its text follows "places: transport error: " in the error do returns.)
var errStale = errors.New("reused connection closed by the API before it answered")

// closedText is the error_message of the UNKNOWN_ERROR body when the API closed the
// connection before answering (fasthttp's own text is advice for server authors).
const closedText = "places: connection closed by the API before it answered"

// trackedConn is a connection dialed by the client; its LocalAddr carries whether a request
// on it has been answered, so staleTransport can tell a reused connection from a new one.
type trackedConn struct {
	net.Conn
	addr *trackedAddr
}

// trackedAddr is a connection's local address and whether the connection has been used.
type trackedAddr struct {
	net.Addr
	used atomic.Bool
}

func (c *trackedConn) LocalAddr() net.Addr { return c.addr }

// dialTracked dials as fasthttp does by default and wraps the connection in a trackedConn.
func dialTracked(addr string, timeout time.Duration) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	if timeout > 0 {
		c, err = fasthttp.DialTimeout(addr, timeout)
	} else {
		c, err = fasthttp.Dial(addr)
	}
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, addr: &trackedAddr{Addr: c.LocalAddr()}}, nil
}

// staleTransport is fasthttp's transport, except that it marks a connection used once a
// request on it has been answered, and asks for a retry (errStale) only when a request
// fails on a used connection before a byte of the answer: fasthttp reports a read that
// ends before the first byte as io.EOF, and a write to a closed connection fails with
// EPIPE or ECONNRESET. RoundTrip is called by fasthttp, from the caller's goroutine.
type staleTransport struct{}

func (staleTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	_, err := fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	a, _ := resp.LocalAddr().(*trackedAddr)
	if err == nil {
		if a != nil {
			a.used.Store(true)
		}
		return false, nil
	}
	if a != nil && a.used.Load() && closedEarly(err) {
		// The other idle connections are likely as dead (they waited as long, or the API
		// restarted): close them, so that the retry does not meet one.
		hc.CloseIdleConnections()
		return true, fmt.Errorf("%w (%w)", errStale, err)
	}
	return false, err
}

func closedEarly(err error) bool {
	if err == io.EOF {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "write" &&
		(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET))
}

// retryStale allows the one retry of a request that failed with errStale.
func retryStale(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	return false, attempts == 1 && errors.Is(err, errStale)
}

// minScrubLen is the shortest key scrub removes: a real key is 39 characters, and replacing
// a short one (a test's "x") would mangle any text that happens to contain it.
const minScrubLen = 8

// scrub removes the key (raw and URL-escaped) from a text we write: an error for the log or
// an error_message we build. Google's own legacy body is never scrubbed (SPEC §4: its bytes
// pass through).
func (u *upstream) scrub(s string) string {
	if len(u.apiKey) < minScrubLen {
		return s
	}
	s = strings.ReplaceAll(s, u.apiKey, "REDACTED")
	if q := url.QueryEscape(u.apiKey); q != u.apiKey {
		s = strings.ReplaceAll(s, q, "REDACTED")
	}
	return s
}

// call sends the request that build fills in and returns what read makes of the response;
// a transport failure is the UNKNOWN_ERROR body (failure). The request and the response are
// pooled and released when call returns: read must copy what it keeps, or take the body out
// of resp (SwapBody).
//
// The answer is read into a body given back with Recycle, and the buffer left in resp is
// given back in turn, so that a page of results (some 35 KiB) is read without allocating.
// fasthttp's own pool cannot do it: a response's body buffer goes back to that pool empty, so
// the pool sizes itself for empty buffers and drops every large one, and each answer was read
// into a 64-byte buffer grown (allocated, zeroed and copied) to the body's size.
// KeepBodyBuffer keeps the buffer in resp through the client's reset of it.
func (u *upstream) call(ctx context.Context, build func(*fasthttp.Request), read func(*fasthttp.Response) ([]byte, error)) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	resp.KeepBodyBuffer = true
	resp.SwapBody(recycled())
	defer func() { Recycle(resp.SwapBody(nil)) }()
	build(req)
	if err := u.do(ctx, req, resp); err != nil {
		return failure(err)
	}
	return read(resp)
}

// do sends req and fills resp within the provider's timeout (or ctx's deadline, if sooner).
// The error is already scrubbed and wraps ErrTimeout or ErrTransport.
func (u *upstream) do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	timeout := u.timeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	if err := ctx.Err(); errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the deadline passed before the call", ErrTimeout)
	} else if err != nil {
		return fmt.Errorf("%w: %s", ErrTransport, err)
	}
	err := u.client.DoTimeout(req, resp, timeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return fmt.Errorf("%w after %s", ErrTimeout, timeout.Round(time.Millisecond))
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return &publicError{
			err:    fmt.Errorf("%w: no free connection to %s within %s", ErrTransport, hostOf(u.base), timeout),
			public: fmt.Sprintf("%s: every connection to the Places API busy for %s", ErrTransport, timeout),
		}
	case errors.Is(err, errStale), errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF):
		return &publicError{
			err:    fmt.Errorf("%w: %s", ErrTransport, u.scrub(err.Error())),
			public: closedText,
		}
	default:
		return &publicError{
			err:    fmt.Errorf("%w: %s", ErrTransport, u.scrub(err.Error())),
			public: ErrTransport.Error() + ": " + transportReason(err),
		}
	}
}

// transportReason says why a connection to the API failed, for a client: the system's
// reason ("connection refused"), a name that does not resolve, a TLS failure; never the
// host, address or port, which fasthttp's and net's errors name.
func transportReason(err error) string {
	var dns *net.DNSError
	var errno syscall.Errno
	var tlsErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.ErrBodyTooLarge.Error()
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "the Places API's name does not resolve"
		}
		return "the Places API's name could not be resolved"
	case errors.As(err, &tlsErr), errors.As(err, &recErr):
		return "TLS handshake with the Places API failed"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return "the connection to the Places API failed"
}

// publicError is an error whose text for the client, in the UNKNOWN_ERROR body, is shorter
// than its text for the log, and names no host or address.
type publicError struct {
	err    error
	public string
}

func (e *publicError) Error() string { return e.err.Error() }
func (e *publicError) Unwrap() error { return e.err }

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Host
	}
	return "upstream"
}

// failure returns the UNKNOWN_ERROR body for err (already scrubbed) and err. The body's
// error_message is err's text, or a publicError's short text.
func failure(err error) ([]byte, error) {
	msg := err.Error()
	if pe := (*publicError)(nil); errors.As(err, &pe) {
		msg = pe.public
	}
	return codec.AppendErrorBody(nil, "UNKNOWN_ERROR", msg), err
}

var _ Indexer = (*google)(nil)

// scanning bounds the bodies scanned at once, by every provider of the process, to one less
// than the processors Go runs goroutines on (one at least): a body of 20 results takes tens of
// microseconds to scan, and a thousand answers arriving together would otherwise keep every
// processor busy, an event loop waiting for one behind them (its IAMATs answered
// milliseconds late). Calls waiting their turn hold their answer, not a processor.
var scanning = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))

// google is the legacy Nearby Search provider: Google's bytes pass through.
type google struct {
	upstream
	uri string // base + LegacyPath
}

func newGoogle(cfg Config) (*google, error) {
	u, err := newUpstream(cfg, DefaultGoogleURL)
	if err != nil {
		return nil, err
	}
	return &google{upstream: u, uri: u.base + LegacyPath}, nil
}

func (g *google) Name() string { return Google }

// Nearby asks GET {base}/maps/api/place/nearbysearch/json?location=LAT,LNG&radius=M&key=K.
// A JSON body with a "status" passes through byte for byte (the key is scrubbed from the
// StatusError's Message, never from the body); anything else is UNKNOWN_ERROR.
func (g *google) Nearby(ctx context.Context, r Request) ([]byte, error) {
	body, _, err := g.NearbyIndexed(ctx, r)
	return body, err
}

// NearbyIndexed implements Indexer: Nearby, with the index of the body made by the one scan
// that checks it.
func (g *google) NearbyIndexed(ctx context.Context, r Request) ([]byte, codec.PlacesIndex, error) {
	r = normalize(r)
	var ix codec.PlacesIndex
	indexed := false
	body, err := g.call(ctx, func(req *fasthttp.Request) {
		req.SetRequestURI(g.uri)
		req.Header.SetMethod(fasthttp.MethodGet)
		q := req.URI().QueryArgs()
		q.Add("location", r.Lat+","+r.Lng)
		q.Add("radius", r.RadiusM)
		q.Add("key", g.apiKey)
	}, func(resp *fasthttp.Response) ([]byte, error) {
		body, err := g.answer(resp, &ix)
		indexed = err == nil || errors.As(err, new(*StatusError))
		return body, err
	})
	if !indexed { // a body of ours (UNKNOWN_ERROR), small
		ix, _ = codec.IndexPlaces(body)
	}
	return body, ix, err
}

// answer reads Google's answer to a legacy request, indexing the body (ix) when it passes
// through.
func (g *google) answer(resp *fasthttp.Response, ix *codec.PlacesIndex) ([]byte, error) {
	if sc := resp.StatusCode(); sc != fasthttp.StatusOK {
		return failure(fmt.Errorf("%w %d", ErrHTTP, sc))
	}
	body := resp.Body()
	var err error
	scanning <- struct{}{}
	*ix, err = codec.IndexPlaces(body)
	<-scanning
	h, ok := headOf(body, ix)
	if err != nil || !ok {
		return failure(fmt.Errorf("%w: not JSON (%d bytes)", ErrBadBody, len(body)))
	}
	if h.status == nil {
		return failure(fmt.Errorf("%w: no status (%d bytes)", ErrBadBody, len(body)))
	}
	// Google's bytes, untouched. Google does not echo the key; replacing it in the body
	// would corrupt any answer that happens to contain it. The body is taken from resp
	// (released on return) rather than copied.
	out := resp.SwapBody(nil)
	if !rawIs(h.status, "OK") && !rawIs(h.status, "ZERO_RESULTS") {
		return out, &StatusError{Status: text(h.status), Message: g.scrub(text(h.errorMessage))}
	}
	return out, nil
}
