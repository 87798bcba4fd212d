// Package places answers a WHATSAT's question, "what is near this location?", with a body in the
// shape and byte layout of Google's legacy Places Nearby Search.
//
// Three providers are built by New:
//   - "google": the legacy Nearby Search (GET .../maps/api/place/nearbysearch/json). Google's
//     bytes pass through unchanged, whatever their status.
//   - "google-v1": Places API (New), POST .../v1/places:searchNearby, whose answer is mapped to the
//     legacy shape and written in Google's legacy layout.
//   - "offline": a radius search over a city dataset embedded in the binary (GeoNames, CC-BY 4.0),
//     or over the user's own GeoJSON file, whose features that are not named Points are
//     skipped and counted (Dataset). It needs no network and no key.
//
// Providers are called off the event loop, from any goroutine, concurrently. They never fail
// without a body: on failure they return the UNKNOWN_ERROR body of the spec and an error for logs.
// The body's error_message is for a client: it says what failed (a timeout, "connection
// refused", an HTTP status) but never names the API's host, address or port, which the error
// for the log may hold.
// The Google providers make one call per request, except that a request that failed on a reused
// keep-alive connection the API had closed, before any byte of an answer, is sent again once on
// another connection (as any HTTP client does). They never alter Google's legacy body; the API
// key is scrubbed only from texts they write themselves (errors, v1 error messages). Each call
// is bounded by Config.Timeout, or by its ctx's deadline if sooner.
//
// Providers do not coalesce identical requests: their caller does (the herd's server loop keeps
// one call per question in flight). Cache keeps answers for a TTL, for a caller that wants it.
//
// The google provider checks each body in one scan (codec.IndexPlaces, some 40 us for a page
// of 20 results) and gives the index with the body (Indexer), so that its caller cuts without
// scanning again; at most GOMAXPROCS-1 scans (one at least) run at once in a process, so that
// a burst of answers leaves a processor to the event loops. A caller that is done with a body
// gives it back with Recycle: the next call reads into it.
package places

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herd-project/herd/codec"
)

// Provider names accepted by Config.Provider.
const (
	Google   = "google"
	GoogleV1 = "google-v1"
	Offline  = "offline"
)

// Defaults used by New for zero Config fields.
const (
	DefaultGoogleURL   = "https://maps.googleapis.com"
	DefaultGoogleV1URL = "https://places.googleapis.com"
	DefaultTimeout     = 5 * time.Second
	DefaultMaxConns    = 64
	// MaxResults is the most results a provider returns: Google's page size.
	MaxResults = 20
	// MaxBodySize bounds an upstream response body.
	MaxBodySize = 4 << 20
)

// Request is one Nearby Search question. The text fields are what goes on the wire where the
// provider sends text (the legacy query string); the numbers are used everywhere else. A zero
// text field is derived from its number. Request is a value: it keeps no reference to its input.
type Request struct {
	Lat, Lng   string  // decimal degrees as text, with sign (codec Message.LatText/LngText)
	RadiusM    string  // metres as text (codec.AppendRadiusMetres)
	LatF, LngF float64 // the same, as numbers
	RadiusMF   float64
	// Bound is the caller's bound (1..20). No provider of this package sends it: each asks for
	// a full page of up to MaxResults, so that one answer serves every bound (the caller cuts
	// it, codec.AppendPlacesBody) and a cache or a shared call need not tell bounds apart.
	Bound int
}

// Provider answers Nearby Search requests. Nearby is called off the loop, from any goroutine,
// concurrently.
//
// It ALWAYS returns a body to send: Google's legacy shape and layout, ending with one "\n". On
// failure that is the UNKNOWN_ERROR body of SPEC §4 and err says what failed (for logs; it never
// holds the API key). A status that Google itself sent (REQUEST_DENIED, OVER_QUERY_LIMIT,
// INVALID_REQUEST) comes back as Google's body with a *StatusError. The body is the caller's; a
// caller that shares it (a cache) must not modify it.
type Provider interface {
	Nearby(ctx context.Context, req Request) (body []byte, err error)
	Name() string
}

// Indexer is a Provider that indexes the body it returns (codec.IndexPlaces) in the scan it
// makes of it anyway, so that its caller cuts the body (PlacesIndex.AppendCut) without a
// second scan: a page of 20 results is some 35 KiB, and a scan of it costs more than the
// rest of a call. The google provider is one; a caller asks the others with Nearby and
// indexes their bodies itself.
type Indexer interface {
	Provider
	// NearbyIndexed is Nearby, with the index of the body it returns.
	NearbyIndexed(ctx context.Context, req Request) (body []byte, ix codec.PlacesIndex, err error)
}

// Recycle gives back a body that a provider returned, once the caller is done with it: it
// keeps no reference to it (it has cut and written it, and does not cache it). A later call
// reads its answer into that memory: a page of 20 results is some 35 KiB, which would
// otherwise be allocated at every call and collected after. Optional; any goroutine.
func Recycle(body []byte) {
	if c := cap(body); c >= minRecycled && c <= maxRecycled {
		bodies.Put(&recycledBody{b: body[:0]})
	}
}

// Bodies recycled are kept between these capacities: a smaller one would have to grow for a
// page of results, and a larger one (a body near MaxBodySize) would hold memory for nothing.
const (
	minRecycled = 4 << 10
	maxRecycled = 256 << 10
)

// recycledBody carries a recycled body in the pool (a pointer, so that Put allocates nothing).
type recycledBody struct{ b []byte }

var bodies sync.Pool

// recycled returns a buffer given back with Recycle, or nil. Any goroutine.
func recycled() []byte {
	if r, ok := bodies.Get().(*recycledBody); ok {
		return r.b
	}
	return nil
}

// Config selects and tunes a provider. The zero Config is the offline provider over the
// embedded dataset.
type Config struct {
	Provider string        // "google" | "google-v1" | "offline"; "" means offline
	URL      string        // base URL; "" means Google's
	Key      string        // API key; required by google and google-v1
	Timeout  time.Duration // per upstream call; 0 means DefaultTimeout
	MaxConns int           // upstream connections at most; 0 means DefaultMaxConns
	Dataset  string        // offline: optional GeoJSON file of the user's own places
}

// Errors. Every error a provider returns wraps one of these (errors.Is), except a *StatusError
// and the caller's own ctx.Err().
var (
	ErrConfig    = errors.New("places: bad config") // every *ConfigError is one (errors.Is)
	ErrTimeout   = errors.New("places: timeout")
	ErrTransport = errors.New("places: transport error")
	ErrHTTP      = errors.New("places: HTTP")
	ErrBadBody   = errors.New("places: bad response body")
)

// ConfigError is a Config that New rejects. Key names the setting as a herd config's [places]
// table spells it ("provider", "url", "key", "dataset"); Msg says what is wrong with it. Find it
// with errors.As; errors.Is(err, ErrConfig) holds too.
type ConfigError struct {
	Key string
	Msg string
	Err error // the underlying error (reading a dataset file, say), or nil
}

// Error returns "places: KEY: MSG". Any goroutine.
func (e *ConfigError) Error() string { return "places: " + e.Key + ": " + e.Msg }

// Unwrap returns ErrConfig and the underlying error, if any. Any goroutine.
func (e *ConfigError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrConfig}
	}
	return []error{ErrConfig, e.Err}
}

// StatusError reports that Google answered with a status other than OK or ZERO_RESULTS. The
// body returned with it is Google's (legacy) or its legacy mapping (v1), not UNKNOWN_ERROR.
type StatusError struct {
	Status  string // legacy status, e.g. "REQUEST_DENIED"
	Message string // error_message, key removed
}

// Error returns "places: status STATUS[: message]". Any goroutine.
func (e *StatusError) Error() string {
	if e.Message == "" {
		return "places: status " + e.Status
	}
	return "places: status " + e.Status + ": " + e.Message
}

// New builds the provider cfg names. Any goroutine. The offline provider loads its dataset
// here (the embedded one once per process, about 0.2 s). A Config it cannot use gives a
// *ConfigError.
func New(cfg Config) (Provider, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	var (
		p   Provider
		err error
	)
	switch cfg.Provider {
	case Google:
		p, err = newGoogle(cfg)
	case GoogleV1:
		p, err = newGoogleV1(cfg)
	case Offline, "":
		p, err = newOffline(cfg)
	default:
		err = &ConfigError{Key: "provider", Msg: fmt.Sprintf("unknown provider %q (want google, google-v1 or offline)", cfg.Provider)}
	}
	if err != nil {
		return nil, err // not p: a nil *google in a Provider is not nil
	}
	return p, nil
}

// normalize fills the text fields of req from its numbers (and the reverse), and drops a
// leading "+" from the text, which Google does not need.
func normalize(req Request) Request {
	if req.Lat == "" {
		req.Lat = strconv.FormatFloat(req.LatF, 'f', -1, 64)
	} else if req.LatF == 0 {
		req.LatF, _ = strconv.ParseFloat(req.Lat, 64)
	}
	if req.Lng == "" {
		req.Lng = strconv.FormatFloat(req.LngF, 'f', -1, 64)
	} else if req.LngF == 0 {
		req.LngF, _ = strconv.ParseFloat(req.Lng, 64)
	}
	if req.RadiusM == "" {
		req.RadiusM = strconv.FormatFloat(req.RadiusMF, 'f', -1, 64)
	} else if req.RadiusMF == 0 {
		req.RadiusMF, _ = strconv.ParseFloat(req.RadiusM, 64)
	}
	req.Lat = strings.TrimPrefix(req.Lat, "+")
	req.Lng = strings.TrimPrefix(req.Lng, "+")
	return req
}
