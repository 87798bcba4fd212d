// Package fake is a stand-in for Google Places on loopback: it serves the legacy Nearby Search
// (GET /maps/api/place/nearbysearch/json) and Places API (New) Nearby Search
// (POST /v1/places:searchNearby) with realistic bodies in Google's layouts, and can be told to be
// slow, to hang, to fail with an HTTP status, to send a forced status or a malformed body, to
// drop a connection without answering, or to close its idle keep-alive connections. It
// records every request so tests can check what was asked.
//
// Every method of *Server may be called from any goroutine.
package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-project/herd/codec"
	"github.com/valyala/fasthttp"
)

// Options are the fake's knobs. The zero Options answer every request at once with 20 places.
type Options struct {
	// Delay is how long each answer waits.
	Delay time.Duration
	// Hang makes requests wait until Close (for timeouts).
	Hang bool
	// Status forces a legacy status (e.g. "REQUEST_DENIED") with StatusMessage as
	// error_message; for v1 it becomes the matching error (PERMISSION_DENIED etc.).
	Status        string
	StatusMessage string
	// HTTPStatus, if not 0 or 200, answers with that HTTP status and a short text body
	// (or, for v1, Google's error model when V1Error is set).
	HTTPStatus int
	// V1Error is the google.rpc status name ("INVALID_ARGUMENT", ...) of a v1 error body sent
	// with HTTPStatus (400 if HTTPStatus is 0), with StatusMessage as its message.
	V1Error string
	// Malformed sends a body that is not JSON, with HTTP 200.
	Malformed bool
	// Key, if not "", is the only API key accepted; others get REQUEST_DENIED
	// (legacy) or 400 INVALID_ARGUMENT "API key not valid" (v1).
	Key string
	// Results is the number of places in a page; 0 means 20, negative means none.
	Results int
	// Body, if not nil, is sent as the legacy answer byte for byte (HTTP 200), e.g. a real capture.
	Body []byte
	// Drop closes the connection without answering (after counting and recording the request).
	Drop bool
	// NoRecord keeps no requests for Requests (Count still counts them), so that a long
	// benchmark's fake costs little more than writing its answers.
	NoRecord bool
	// Pool, when above 0, makes Start build that many legacy answers (for as many locations
	// near UCLA, Results places each) and answer each valid legacy question with the one a
	// hash of its location and radius picks, instead of building an answer per question
	// (half a millisecond for 20 places): a benchmark's fake then costs little more than the
	// write of each answer, whatever number of distinct questions it gets. The places of an
	// answer are then not around the location asked. A question with another number of
	// results (Set changed Results) is answered as without a pool.
	Pool int
}

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header map[string]string // canonical names
	Body   []byte
}

// The paths the fake serves.
const (
	legacyPath = "/maps/api/place/nearbysearch/json"
	v1Path     = "/v1/places:searchNearby"
)

// AsksNearby reports whether r is a legacy Nearby Search for location ("LAT,LNG" as sent),
// radius (metres, as sent) and key.
func (r Request) AsksNearby(location, radius, key string) bool {
	q := r.Query
	return r.Method == "GET" && r.Path == legacyPath && q.Get("location") == location && q.Get("radius") == radius && q.Get("key") == key
}

// Server is the fake. Create it with New, then Start.
type Server struct {
	mu      sync.Mutex
	opts    Options
	reqs    []Request
	count   atomic.Int64
	ln      net.Listener
	srv     *fasthttp.Server
	hang    chan struct{}
	closing sync.Once
	served  chan struct{}
	hold    chan struct{}         // not nil: requests wait until it is closed (Release)
	bodies  sync.Map              // bodyKey → []byte: answers already built (see body)
	pool    [][]byte              // Options.Pool's answers, built by StartOn; read-only then
	poolN   int                   // the number of results of each of them
	nbodies atomic.Int64          // entries in bodies
	idle    map[net.Conn]struct{} // keep-alive connections between requests; under mu
}

// MaxCached bounds the answers the fake keeps built; past it, the cache starts over. It is
// above the 10,000 distinct locations a default loadgen run asks about (a cache smaller than
// a working set asked in turn would never hit): about 350 MB of 20-result bodies for those.
const MaxCached = 16384

// bodyKey is a question whose answer body is cached: the answer depends on nothing else.
type bodyKey struct {
	api                 string
	lat, lng, radius, n float64
}

// body returns build(lat, lng, radius, n), built once per distinct question while it stays
// among the MaxCached cached ones, so that a benchmark's answer costs little more than its
// write. The result must not be modified.
func (s *Server) body(api string, lat, lng, radius float64, n int, build func(lat, lng, radius float64, n int) []byte) []byte {
	k := bodyKey{api, lat, lng, radius, float64(n)}
	if b, ok := s.bodies.Load(k); ok {
		return b.([]byte)
	}
	b := build(lat, lng, radius, n)
	if _, loaded := s.bodies.LoadOrStore(k, b); !loaded && s.nbodies.Add(1) > MaxCached {
		// Bounded without bookkeeping per hit: a benchmark's working set is far smaller,
		// and a body is the same whenever it is built.
		s.bodies.Clear()
		s.nbodies.Store(0)
	}
	return b
}

// New returns a fake with the given options; it is not listening yet.
func New(opts Options) *Server {
	return &Server{opts: opts, hang: make(chan struct{}), served: make(chan struct{})}
}

// Start listens on 127.0.0.1:0 and serves in the background. It returns the base URL
// ("http://127.0.0.1:PORT") to give the Places client.
func (s *Server) Start() (baseURL string, err error) {
	return s.StartOn("127.0.0.1:0")
}

// StartTest is New and Start for the test t: it fails t if the fake cannot start, closes the
// fake when the test ends, and returns the fake and its base URL. Call it from the test's
// goroutine.
func StartTest(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	s := New(opts)
	base, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, base
}

// StartOn is Start on a given address (for the fakeplaces command).
func (s *Server) StartOn(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("fake: %w", err)
	}
	s.ln = ln
	if n := s.opts.Pool; n > 0 {
		s.pool, s.poolN = make([][]byte, n), s.opts.count()
		for i := range s.pool {
			// A spiral of about a kilometre around UCLA: distinct places in each answer.
			a := float64(i) * 2.399963 // the golden angle: the points spread evenly
			r := 0.01 * math.Sqrt(float64(i+1)/float64(n))
			s.pool[i] = LegacyBody(34.068930+r*math.Cos(a), -118.445127+r*math.Sin(a), 10000, s.poolN)
		}
	}
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		Name:               "scaffolding on HTTPServer2",
		MaxRequestBodySize: 1 << 20,
		CloseOnShutdown:    true,
		ConnState:          s.connState,
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close releases hanging requests and stops the server. Idempotent.
func (s *Server) Close() error {
	s.closing.Do(func() {
		close(s.hang)
		if s.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = s.srv.ShutdownWithContext(ctx)
			_ = s.ln.Close()
			<-s.served
		}
	})
	return nil
}

func (s *Server) connState(c net.Conn, st fasthttp.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == fasthttp.StateIdle {
		if s.idle == nil {
			s.idle = map[net.Conn]struct{}{}
		}
		s.idle[c] = struct{}{}
	} else {
		delete(s.idle, c)
	}
}

// CloseIdle closes the keep-alive connections that wait for a next request, as a server
// does when its idle timeout expires or when it restarts, and returns how many it closed.
// A connection becomes idle shortly after its answer is sent: poll until CloseIdle > 0 to
// be sure the connection a client just used is closed.
func (s *Server) CloseIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.idle)
	for c := range s.idle {
		_ = c.Close()
		delete(s.idle, c)
	}
	return n
}

// Set replaces the options; requests already waiting keep the ones they started with.
func (s *Server) Set(opts Options) {
	s.mu.Lock()
	s.opts = opts
	s.mu.Unlock()
}

// Options returns the current options.
func (s *Server) Options() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// Hold makes requests that arrive from now on wait (after being counted and recorded) until
// Release or Close, so a test can line up concurrent callers.
func (s *Server) Hold() {
	s.mu.Lock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
	s.mu.Unlock()
}

// Release lets held requests go on.
func (s *Server) Release() {
	s.mu.Lock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
	s.mu.Unlock()
}

// Count returns how many requests arrived (counted as they arrive, before any delay).
func (s *Server) Count() int64 { return s.count.Load() }

// MaxRecorded bounds the requests kept for Requests; past it the older half is forgotten.
const MaxRecorded = 10000

// Requests returns a copy of the requests recorded so far (at most MaxRecorded, the newest),
// in arrival order; requests that arrived under Options.NoRecord are not among them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Reset forgets the recorded requests and zeroes Count.
func (s *Server) Reset() {
	s.mu.Lock()
	s.reqs = nil
	s.count.Store(0)
	s.mu.Unlock()
}

// record returns the request ctx holds, as Requests shows it.
func record(ctx *fasthttp.RequestCtx) Request {
	r := Request{
		Method: string(ctx.Method()),
		Path:   string(ctx.Path()),
		Query:  url.Values{},
		Header: map[string]string{},
		Body:   append([]byte(nil), ctx.PostBody()...),
	}
	for k, v := range ctx.QueryArgs().All() {
		r.Query.Add(string(k), string(v))
	}
	for k, v := range ctx.Request.Header.All() {
		r.Header[string(k)] = string(v)
	}
	return r
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	opts := s.opts
	hold := s.hold
	if !opts.NoRecord {
		if len(s.reqs) >= MaxRecorded {
			// A long benchmark must not grow the fake without bound: keep the newer half.
			s.reqs = append(s.reqs[:0], s.reqs[len(s.reqs)-MaxRecorded/2:]...)
		}
		s.reqs = append(s.reqs, record(ctx))
	}
	s.mu.Unlock()
	s.count.Add(1)

	if hold != nil {
		select {
		case <-hold:
		case <-s.hang:
		}
	}
	if opts.Hang {
		<-s.hang
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		return
	}
	if opts.Drop {
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { _ = c.Close() })
		return
	}
	if opts.Delay > 0 {
		t := time.NewTimer(opts.Delay)
		select {
		case <-t.C:
		case <-s.hang:
			t.Stop()
		}
	}
	switch {
	case ctx.IsGet() && string(ctx.Path()) == legacyPath:
		s.legacy(ctx, &opts)
	case ctx.IsPost() && string(ctx.Path()) == v1Path:
		s.v1(ctx, &opts)
	default:
		ctx.Error("Not Found", fasthttp.StatusNotFound)
	}
}

func (s *Server) legacy(ctx *fasthttp.RequestCtx, o *Options) {
	if o.HTTPStatus != 0 && o.HTTPStatus != fasthttp.StatusOK {
		ctx.Error(fasthttp.StatusMessage(o.HTTPStatus), o.HTTPStatus)
		return
	}
	ctx.SetContentType("application/json; charset=UTF-8")
	if o.Malformed {
		ctx.SetBodyString("<html><body>Not JSON & not { closed")
		return
	}
	if o.Status != "" {
		ctx.SetBody(codec.AppendErrorBody(nil, o.Status, o.StatusMessage))
		return
	}
	if o.Body != nil {
		ctx.SetBody(o.Body)
		return
	}
	q := ctx.QueryArgs()
	if o.Key != "" && string(q.Peek("key")) != o.Key {
		ctx.SetBody(codec.AppendErrorBody(nil, "REQUEST_DENIED", "The provided API key is invalid."))
		return
	}
	lat, lng, ok := parseLocation(string(q.Peek("location")))
	radius, err := strconv.ParseFloat(string(q.Peek("radius")), 64)
	if !ok || err != nil || radius <= 0 {
		ctx.SetBody(codec.AppendErrorBody(nil, "INVALID_REQUEST", ""))
		return
	}
	// The cached body is never modified: no need for the copy SetBody makes.
	if n := o.count(); s.pool != nil && n == s.poolN {
		ctx.Response.SetBodyRaw(s.pool[fnv1a(fnv1a(fnvOffset, q.Peek("location")), q.Peek("radius"))%uint64(len(s.pool))])
		return
	}
	ctx.Response.SetBodyRaw(s.body("legacy", lat, lng, radius, o.count(), LegacyBody))
}

// fnv1a folds b into the FNV-1a hash h (fnvOffset to begin), without the allocation of
// hash/fnv's interface.
func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

const fnvOffset = 14695981039346656037

func (o *Options) count() int {
	switch {
	case o.Results < 0:
		return 0
	case o.Results == 0 || o.Results > 20:
		return 20
	}
	return o.Results
}

var v1Codes = map[string]int{
	"INVALID_ARGUMENT":    400,
	"FAILED_PRECONDITION": 400,
	"UNAUTHENTICATED":     401,
	"PERMISSION_DENIED":   403,
	"NOT_FOUND":           404,
	"RESOURCE_EXHAUSTED":  429,
	"INTERNAL":            500,
	"UNAVAILABLE":         503,
}

// legacyToV1 maps a forced legacy status to the v1 error Google would give instead.
var legacyToV1 = map[string]string{
	"INVALID_REQUEST":  "INVALID_ARGUMENT",
	"REQUEST_DENIED":   "PERMISSION_DENIED",
	"OVER_QUERY_LIMIT": "RESOURCE_EXHAUSTED",
	"UNKNOWN_ERROR":    "INTERNAL",
}

func v1ErrorBody(status string, code int, msg string) []byte {
	b, _ := json.MarshalIndent(map[string]any{
		"error": map[string]any{"code": code, "message": msg, "status": status},
	}, "", "  ")
	return append(b, '\n')
}

func (s *Server) v1(ctx *fasthttp.RequestCtx, o *Options) {
	ctx.SetContentType("application/json; charset=UTF-8")
	v1err, code, msg := o.V1Error, o.HTTPStatus, o.StatusMessage
	if v1err == "" && o.Status != "" && o.Status != "OK" && o.Status != "ZERO_RESULTS" {
		v1err = legacyToV1[o.Status]
		if v1err == "" {
			v1err = "INTERNAL"
		}
	}
	if v1err == "" && code != 0 && code != fasthttp.StatusOK {
		ctx.Error(fasthttp.StatusMessage(code), code)
		return
	}
	if v1err == "" && o.Key != "" && string(ctx.Request.Header.Peek("X-Goog-Api-Key")) != o.Key {
		v1err, code, msg = "INVALID_ARGUMENT", 400, "API key not valid. Please pass a valid API key."
	}
	if v1err == "" && len(ctx.Request.Header.Peek("X-Goog-FieldMask")) == 0 {
		v1err, code, msg = "INVALID_ARGUMENT", 400, "FieldMask is a required parameter. See https://cloud.google.com/apis/docs/system-parameters on how to provide it."
	}
	if v1err != "" {
		if code == 0 || code == fasthttp.StatusOK {
			code = v1Codes[v1err]
			if code == 0 {
				code = 500
			}
		}
		ctx.SetStatusCode(code)
		ctx.SetBody(v1ErrorBody(v1err, code, msg))
		return
	}
	if o.Malformed {
		ctx.SetBodyString("<html><body>Not JSON & not { closed")
		return
	}
	var q struct {
		MaxResultCount      int `json:"maxResultCount"`
		LocationRestriction struct {
			Circle struct {
				Center struct {
					Latitude  float64 `json:"latitude"`
					Longitude float64 `json:"longitude"`
				} `json:"center"`
				Radius float64 `json:"radius"`
			} `json:"circle"`
		} `json:"locationRestriction"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &q); err != nil || q.MaxResultCount < 0 || q.MaxResultCount > 20 {
		ctx.SetStatusCode(400)
		ctx.SetBody(v1ErrorBody("INVALID_ARGUMENT", 400, "Invalid JSON payload received."))
		return
	}
	n := o.count()
	if q.MaxResultCount > 0 && q.MaxResultCount < n {
		n = q.MaxResultCount
	}
	c := q.LocationRestriction.Circle
	ctx.Response.SetBodyRaw(s.body("v1", c.Center.Latitude, c.Center.Longitude, c.Radius, n, V1Body))
}

func parseLocation(s string) (lat, lng float64, ok bool) {
	a, b, found := strings.Cut(s, ",")
	if !found {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(a, 64)
	lng, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		return 0, 0, false
	}
	return lat, lng, true
}

// Place is one synthetic place, the same for both APIs.
type Place struct {
	ID, Name, Vicinity string
	Lat, Lng           float64
	Types              []string
	Kind               string // icon kind: restaurant, bar, generic_business, ...
	Rating             float64
	Ratings            int
	Price              int // -1: none
	OpenNow            int // -1: unknown, 0 closed, 1 open
	Status             string
}

var names = []string{
	"Maxwell Restaurant", "Legends Chicken & Fish", "Amber’s Food Cafe", "New Hap's Grill",
	"Café Déjà Vu", "Sushi <Zen> Bar", "Müller & Söhne Bäckerei", "東京ラーメン",
	"Taquería \"El Güero\"", "Smith & Wollensky", "Le Petit Bistro", "Pizza > Burgers",
	"Crème Brûlée Corner", "Back\\Slash Books", "Zürich Bierhalle", "Ὀδυσσέας Taverna",
	"Humble Eats", "Joe's <Diner>", "São Paulo Grill", "Ølbaren",
}

var kinds = []struct {
	kind  string
	types []string
	color string
	mask  string
}{
	{"restaurant", []string{"restaurant", "food", "point_of_interest", "establishment"}, "#FF9E67", "restaurant"},
	{"bar", []string{"bar", "point_of_interest", "establishment"}, "#FF9E67", "bar"},
	{"restaurant", []string{"meal_delivery", "restaurant", "food", "point_of_interest", "establishment"}, "#FF9E67", "restaurant"},
	{"generic_business", []string{"store", "point_of_interest", "establishment"}, "#7B9EB0", "generic"},
	{"cafe", []string{"cafe", "food", "point_of_interest", "establishment"}, "#FF9E67", "cafe"},
}

// Places returns n synthetic places around (lat, lng) within radius metres, deterministic
// from the arguments.
func Places(lat, lng, radius float64, n int) []Place {
	h := fnv.New64a()
	fmt.Fprintf(h, "%.6f,%.6f", lat, lng)
	seed := h.Sum64()
	next := func() uint64 { // xorshift64*
		seed ^= seed >> 12
		seed ^= seed << 25
		seed ^= seed >> 27
		return seed * 2685821657736338717
	}
	ps := make([]Place, n)
	for i := range ps {
		r := next()
		dist := radius * float64(i+1) / float64(n+1) * 0.9
		bearing := float64(r%3600) / 10 * math.Pi / 180
		dLat := dist * math.Cos(bearing) / 111320
		dLng := dist * math.Sin(bearing) / (111320 * math.Max(math.Cos(lat*math.Pi/180), 0.01))
		k := kinds[(r>>12)%uint64(len(kinds))]
		id := make([]byte, 27)
		const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		copy(id, "ChIJ")
		for j := 4; j < len(id); j++ {
			id[j] = alpha[next()%64]
		}
		p := Place{
			ID:       string(id),
			Name:     names[(int(r>>20)+i)%len(names)],
			Vicinity: fmt.Sprintf("%d Main St & %d<sup>th</sup> Ave", 100+i*7, i+1),
			Lat:      math.Round((lat+dLat)*1e7) / 1e7,
			Lng:      math.Round((lng+dLng)*1e7) / 1e7,
			Types:    k.types,
			Kind:     k.kind,
			Rating:   float64(10+(r>>24)%41) / 10,
			Ratings:  int((r >> 32) % 5000),
			Price:    int((r>>40)%6) - 1,
			OpenNow:  int((r>>44)%3) - 1,
			Status:   "OPERATIONAL",
		}
		if i == 3 {
			p.Rating, p.Ratings = 4, 12 // an integer rating, written "4"
		}
		if i == 7 {
			p.Status = "CLOSED_TEMPORARILY"
		}
		ps[i] = p
	}
	return ps
}

const (
	viewportHalf = 0.001349829892725
	iconV1       = "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/"
	iconV2       = "https://maps.gstatic.com/mapfiles/place_api/icons/v2/"
)

func latLng(lat, lng float64) codec.Object {
	return codec.Object{{Key: "lat", Value: lat}, {Key: "lng", Value: lng}}
}

// LegacyBody is the legacy Nearby Search body the fake sends for a request, in Google's layout.
func LegacyBody(lat, lng, radius float64, n int) []byte {
	ps := Places(lat, lng, radius, n)
	results := make(codec.Array, 0, len(ps))
	for _, p := range ps {
		o := codec.Object{
			{Key: "business_status", Value: p.Status},
			{Key: "geometry", Value: codec.Object{
				{Key: "location", Value: latLng(p.Lat, p.Lng)},
				{Key: "viewport", Value: codec.Object{
					{Key: "northeast", Value: latLng(p.Lat+viewportHalf, p.Lng+viewportHalf)},
					{Key: "southwest", Value: latLng(p.Lat-viewportHalf, p.Lng-viewportHalf)},
				}},
			}},
			{Key: "icon", Value: iconV1 + p.Kind + "-71.png"},
			{Key: "icon_background_color", Value: kindColor(p.Kind)},
			{Key: "icon_mask_base_uri", Value: iconV2 + kindMask(p.Kind) + "_pinlet"},
			{Key: "name", Value: p.Name},
			{Key: "photos", Value: codec.Array{codec.Object{
				{Key: "height", Value: 1200},
				{Key: "html_attributions", Value: codec.Array{
					`<a href="https://maps.google.com/maps/contrib/108249016142101779369">John Watts</a>`,
				}},
				{Key: "photo_reference", Value: "AW30ND" + p.ID},
				{Key: "width", Value: 1600},
			}}},
			{Key: "place_id", Value: p.ID},
			{Key: "plus_code", Value: codec.Object{
				{Key: "compound_code", Value: "Q934+Q7 Springfield, Illinois"},
				{Key: "global_code", Value: "86HJQ934+Q7"},
			}},
			{Key: "rating", Value: codec.Number(strconv.FormatFloat(p.Rating, 'g', -1, 64))},
			{Key: "reference", Value: p.ID},
			{Key: "scope", Value: "GOOGLE"},
			{Key: "types", Value: strs(p.Types)},
			{Key: "user_ratings_total", Value: p.Ratings},
			{Key: "vicinity", Value: p.Vicinity},
		}
		if p.OpenNow >= 0 {
			o = append(o, codec.Member{Key: "opening_hours", Value: codec.Object{{Key: "open_now", Value: p.OpenNow == 1}}})
		}
		if p.Price >= 0 {
			o = append(o, codec.Member{Key: "price_level", Value: p.Price})
		}
		results = append(results, o)
	}
	status := "OK"
	if len(ps) == 0 {
		status = "ZERO_RESULTS"
	}
	top := codec.Object{
		{Key: "html_attributions", Value: codec.Array{}},
		{Key: "results", Value: results},
		{Key: "status", Value: status},
	}
	if len(ps) == 20 {
		top = append(top, codec.Member{Key: "next_page_token", Value: "AW30NDy9cfn_IpTGDItApfS1Sn88F6qi6c802LmFe1Zxhrte6JC1xL_QqZuxjRs2VaIW4e9ZlU8Fv"})
	}
	return codec.AppendStyled(make([]byte, 0, 512+1800*len(ps)), top) // a page is ~1.75 KB a place
}

func kindColor(kind string) string {
	for _, k := range kinds {
		if k.kind == kind {
			return k.color
		}
	}
	return "#7B9EB0"
}

func kindMask(kind string) string {
	for _, k := range kinds {
		if k.kind == kind {
			return k.mask
		}
	}
	return "generic"
}

func strs(ss []string) codec.Array {
	a := make(codec.Array, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

var v1Prices = []string{"PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE", "PRICE_LEVEL_MODERATE", "PRICE_LEVEL_EXPENSIVE", "PRICE_LEVEL_VERY_EXPENSIVE"}

// V1Body is the Places API (New) searchNearby body for a request (2-space JSON, as Google's REST
// front end writes it). An empty answer is "{}".
func V1Body(lat, lng, radius float64, n int) []byte {
	ps := Places(lat, lng, radius, n)
	type ll struct {
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
	}
	type hours struct {
		OpenNow bool `json:"openNow"`
	}
	type place struct {
		Name                  string            `json:"name"`
		ID                    string            `json:"id"`
		Types                 []string          `json:"types"`
		ShortFormattedAddress string            `json:"shortFormattedAddress"`
		PlusCode              map[string]string `json:"plusCode"`
		Location              ll                `json:"location"`
		Viewport              map[string]ll     `json:"viewport"`
		Rating                float64           `json:"rating"`
		BusinessStatus        string            `json:"businessStatus"`
		PriceLevel            string            `json:"priceLevel,omitempty"`
		UserRatingCount       int               `json:"userRatingCount"`
		DisplayName           map[string]string `json:"displayName"`
		CurrentOpeningHours   *hours            `json:"currentOpeningHours,omitempty"`
		IconBackgroundColor   string            `json:"iconBackgroundColor"`
		IconMaskBaseURI       string            `json:"iconMaskBaseUri"`
	}
	out := make([]place, 0, len(ps))
	for _, p := range ps {
		q := place{
			Name:                  "places/" + p.ID,
			ID:                    p.ID,
			Types:                 p.Types,
			ShortFormattedAddress: p.Vicinity,
			PlusCode:              map[string]string{"globalCode": "86HJQ934+Q7", "compoundCode": "Q934+Q7 Springfield, IL, USA"},
			Location:              ll{p.Lat, p.Lng},
			Viewport: map[string]ll{
				"low":  {p.Lat - viewportHalf, p.Lng - viewportHalf},
				"high": {p.Lat + viewportHalf, p.Lng + viewportHalf},
			},
			Rating:              p.Rating,
			BusinessStatus:      p.Status,
			UserRatingCount:     p.Ratings,
			DisplayName:         map[string]string{"text": p.Name, "languageCode": "en"},
			IconBackgroundColor: kindColor(p.Kind),
			IconMaskBaseURI:     iconV2 + kindMask(p.Kind) + "_pinlet",
		}
		if p.Price >= 0 {
			q.PriceLevel = v1Prices[p.Price]
		}
		if p.OpenNow >= 0 {
			q.CurrentOpeningHours = &hours{p.OpenNow == 1}
		}
		out = append(out, q)
	}
	if len(out) == 0 {
		return []byte("{}\n")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"places": out})
	return buf.Bytes()
}
