package places

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
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
		return upstream{}, fmt.Errorf("%w: provider %s needs an API key (config key or GOOGLE_PLACES_API_KEY)", ErrConfig, cfg.Provider)
	}
	base := cfg.URL
	if base == "" {
		base = defURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return upstream{}, fmt.Errorf("%w: url %q: want http(s)://host[:port]", ErrConfig, base)
	}
	return upstream{
		base:    strings.TrimRight(base, "/"),
		apiKey:  cfg.Key,
		timeout: cfg.Timeout,
		client: &fasthttp.Client{
			Name:                      userAgent,
			MaxConnsPerHost:           cfg.MaxConns,
			MaxConnWaitTimeout:        cfg.Timeout,
			MaxResponseBodySize:       MaxBodySize,
			MaxIdemponentCallAttempts: 1, // a retry is the caller's decision, never a silent one
			ReadTimeout:               cfg.Timeout,
			WriteTimeout:              cfg.Timeout,
			MaxIdleConnDuration:       30 * time.Second,
		},
	}, nil
}

// scrub removes the key (raw and URL-escaped) from a text meant for a log or a body.
func (u *upstream) scrub(s string) string {
	if u.apiKey == "" {
		return s
	}
	s = strings.ReplaceAll(s, u.apiKey, "REDACTED")
	if q := url.QueryEscape(u.apiKey); q != u.apiKey {
		s = strings.ReplaceAll(s, q, "REDACTED")
	}
	return s
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
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %s", ErrTransport, err)
	}
	err := u.client.DoTimeout(req, resp, timeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return fmt.Errorf("%w after %s", ErrTimeout, timeout.Round(time.Millisecond))
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("%w: no free connection to %s within %s", ErrTransport, hostOf(u.base), timeout)
	default:
		return fmt.Errorf("%w: %s", ErrTransport, u.scrub(err.Error()))
	}
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Host
	}
	return "upstream"
}

// failure returns the UNKNOWN_ERROR body for err (already scrubbed) and err.
func failure(err error) ([]byte, error) {
	return codec.AppendErrorBody(nil, "UNKNOWN_ERROR", err.Error()), err
}

// google is the legacy Nearby Search provider: Google's bytes pass through.
type google struct{ upstream }

func newGoogle(cfg Config) (*google, error) {
	u, err := newUpstream(cfg, DefaultGoogleURL)
	if err != nil {
		return nil, err
	}
	return &google{u}, nil
}

func (g *google) Name() string { return Google }

// key: the legacy call depends only on location and radius (always a full page).
func (g *google) key(req Request) string {
	return req.Lat + "," + req.Lng + "," + req.RadiusM
}

// Nearby asks GET {base}/maps/api/place/nearbysearch/json?location=LAT,LNG&radius=M&key=K.
// A JSON body with a "status" passes through byte for byte; anything else is UNKNOWN_ERROR.
func (g *google) Nearby(ctx context.Context, r Request) ([]byte, error) {
	r = normalize(r)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(g.base + LegacyPath)
	req.Header.SetMethod(fasthttp.MethodGet)
	q := req.URI().QueryArgs()
	q.Add("location", r.Lat+","+r.Lng)
	q.Add("radius", r.RadiusM)
	q.Add("key", g.apiKey)
	if err := g.do(ctx, req, resp); err != nil {
		return failure(err)
	}
	if sc := resp.StatusCode(); sc != fasthttp.StatusOK {
		return failure(fmt.Errorf("%w %d", ErrHTTP, sc))
	}
	body := resp.Body()
	var head struct {
		Status       *string `json:"status"`
		ErrorMessage string  `json:"error_message"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return failure(fmt.Errorf("%w: not JSON (%d bytes)", ErrBadBody, len(body)))
	}
	if head.Status == nil {
		return failure(fmt.Errorf("%w: no status (%d bytes)", ErrBadBody, len(body)))
	}
	out := append([]byte(nil), body...) // resp is released on return
	if bytes.Contains(out, []byte(g.apiKey)) {
		// Never hand the key on, even if an upstream echoes it.
		out = bytes.ReplaceAll(out, []byte(g.apiKey), []byte("REDACTED"))
	}
	if s := *head.Status; s != "OK" && s != "ZERO_RESULTS" {
		return out, &StatusError{Status: s, Message: g.scrub(head.ErrorMessage)}
	}
	return out, nil
}
