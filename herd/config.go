package herd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/herd-project/herd/codec"
)

// Config is a whole herd: the Places provider, logging, limits and the servers with their links.
// LoadConfig, ParseConfig and DefaultConfig return a Config that has been validated, has every
// default filled in and has symmetric links. A Config is plain data: copy it with Clone before
// changing one that a running Server uses.
type Config struct {
	Places  PlacesConfig   `toml:"places"`
	Log     LogConfig      `toml:"log"`
	Limits  Limits         `toml:"limits"`
	Links   LinksConfig    `toml:"links"`
	Records RecordsConfig  `toml:"records"`
	Store   StoreConfig    `toml:"store"`
	Servers []ServerConfig `toml:"server"`
}

// RecordsConfig says how long a server keeps its client records.
type RecordsConfig struct {
	// TTL drops a record whose client time is older than this, on the server's clock
	// (default 0: records are kept until a newer one replaces them, or limits.max_records
	// evicts them). An expired record is not stored when a neighbour sends it and is not
	// sent in a resync, so it does not come back.
	TTL time.Duration `toml:"ttl"`
}

// StoreConfig says where servers keep snapshots of their records (off by default).
type StoreConfig struct {
	// Path is a folder that holds one snapshot per server, <Name>.snap (default "": no
	// snapshots). A server loads its snapshot before it listens, writes a new one at most
	// once a second while records change, and a last one when it stops. A relative path is
	// resolved against the folder of the config file (LoadConfig).
	Path string `toml:"path"`
}

// PlacesConfig selects and configures the Places provider (see package places).
type PlacesConfig struct {
	// Provider is "google", "google-v1" or "offline". Empty: "google" when a key is set (in the
	// file or in GOOGLE_PLACES_API_KEY), else "offline".
	Provider string `toml:"provider"`
	// URL is the base URL of the API ("" means Google's own).
	URL string `toml:"url"`
	// Key is the API key; empty: the GOOGLE_PLACES_API_KEY environment variable.
	Key string `toml:"key"`
	// Timeout bounds one Places call (default 5s).
	Timeout time.Duration `toml:"timeout"`
	// CacheTTL keeps answers this long (default 0: no cache), in one LRU of up to
	// places.DefaultCacheSize answers per process, shared by its servers and read on the loop.
	// Only answers without error are kept.
	CacheTTL time.Duration `toml:"cache_ttl"`
	// Workers is how many Places calls a server runs at once: the size of its loop's executor
	// (reactor.Options.Workers), whose workers are goroutines started on demand and kept. Calls
	// beyond it wait in the loop's queue, at no goroutine each, and one still queued when
	// places.timeout has passed since its WHATSAT arrived is answered with a timeout without
	// being made. The default depends on the provider. For google and google-v1 it is
	// DefaultWorkers (1024), by Little's law: a remote call only waits on the network, and the
	// calls in flight are the rate times the latency (20,000 calls/s x 50 ms = 1,000). For
	// offline it is GOMAXPROCS: its calls are all CPU, so more workers than cores only make
	// them queue on the cores instead, behind the loop. The CPU a remote call spends once its
	// answer is in (reading and checking a body of tens of KiB) runs on goroutines that the Go
	// scheduler serves in turn with the loop's: when many answers land at once on few cores,
	// the loop waits behind them, so a smaller pool trades WHATSAT throughput for the latency of
	// everything else (see BENCHMARKS.md). The servers of one process (herd run) do not share a
	// pool: each loop owns its queue, so each server has places.workers of its own.
	Workers int `toml:"workers"`
	// MaxConns bounds the HTTP connections to the API, for the whole process: its servers share
	// one client (default 0: Workers for each server of the process). An HTTP/1.1 connection
	// carries one call at a time, so fewer connections than calls in flight make the rest
	// wait. It is lowered to fit the process's open file limit (FileBudget).
	MaxConns int `toml:"max_conns"`
	// Dataset is a GeoJSON file of places for the offline provider (default: the built-in one).
	// A relative path is resolved against the folder of the config file (LoadConfig).
	Dataset string `toml:"dataset"`
}

// LogConfig says where each server writes its log.
type LogConfig struct {
	// Dir holds one <Name>.log per server (default "logs"). "off" turns logging off; "-"
	// writes every server's records to the process's standard error (containers, journald),
	// where the server field tells them apart. A relative path, the default included, is
	// resolved against the folder of the config file (LoadConfig).
	Dir string `toml:"dir"`
	// Level is "debug", "info" (default), "warn", "error" or "off". Input and output lines are
	// logged at "info"; "warn" keeps only connection cut-offs, link failures and Places errors.
	Level string `toml:"level"`
	// Format is "text" (default) or "json".
	Format string `toml:"format"`
	// MaxSize rotates a server's log file when the next batch would take it past this size
	// (default 100MiB; whole MiB, rounded up): the file is renamed <Name>-<UTC time>.log and
	// a new one started. 0 turns the built-in rotation off (for logrotate, which signals
	// SIGHUP). Not used with Dir "-".
	MaxSize ByteSize `toml:"max_size"`
	// MaxFiles is how many rotated files of a server are kept besides the one being written
	// (default 10): the oldest are removed. A server's logs then take at most
	// (MaxFiles+1) x MaxSize of disk.
	MaxFiles int `toml:"max_files"`
}

// Off reports whether logging is turned off.
func (c LogConfig) Off() bool { return c.Dir == "off" || c.Level == "off" }

// Stderr reports whether the logs go to the process's standard error (Dir "-").
func (c LogConfig) Stderr() bool { return c.Dir == "-" }

// Log rotation defaults (log.max_size, log.max_files).
const (
	DefaultLogMaxSize  ByteSize = 100 << 20
	DefaultLogMaxFiles          = 10
)

// defaultLog returns the defaults of [log].
func defaultLog() LogConfig {
	return LogConfig{Dir: "logs", Level: "info", Format: "text", MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles}
}

// ByteSize is a size in bytes, written in a config with a unit: "100MiB", "1GiB", "512KiB"
// (KB, MB and GB are the same binary units; B is bytes). A number without a unit is an
// error, except 0.
type ByteSize int64

// UnmarshalText parses a size with its unit (the toml package calls it). Any goroutine.
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := parseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = n
	return nil
}

// String writes the size in the largest binary unit that divides it: "100MiB". Any goroutine.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    ByteSize
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && b%u.n == 0 {
			return strconv.FormatInt(int64(b/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

var sizeUnits = map[string]ByteSize{
	"B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MiB": 1 << 20,
	"G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30,
}

// parseByteSize parses "100MiB" (a whole number and a unit of sizeUnits) or "0".
func parseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		if t == "0" {
			return 0, nil
		}
		return 0, fmt.Errorf("%s has no unit: write a size such as \"%sMiB\"", s, t)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	unit, ok := sizeUnits[strings.TrimSpace(t[i:])]
	if err != nil || !ok || n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("%q is not a size (want a whole number and B, KiB, MiB or GiB: \"100MiB\")", s)
	}
	return ByteSize(n) * unit, nil
}

// Limits bound what one client or link may make a server hold.
type Limits struct {
	// MaxLine is the longest IAMAT or WHATSAT line accepted, without its "\n" (default 4096).
	// AT lines may be codec.ATOverhead bytes longer: the AT line made of an IAMAT of max_line bytes.
	MaxLine int `toml:"max_line"`
	// MaxUnsent is the most reply bytes a client may leave unread before it is cut off (default 1 MiB).
	MaxUnsent int `toml:"max_unsent"`
	// MaxUnsentTotal is the most reply bytes all the clients of a server together may leave
	// unread (default 256MiB): past it, the client with the most unsent bytes is cut off
	// (aborted), then the next, until the total is below it. Without it max_clients x
	// max_unsent (16 GiB at the defaults) would be the bound.
	MaxUnsentTotal ByteSize `toml:"max_unsent_total"`
	// MaxPending is the most requests of one client waiting for their reply (default 256).
	MaxPending int `toml:"max_pending"`
	// MaxWaiting is the most WHATSATs waiting for Places in one server, all clients together
	// (default 16384: with 1,024 workers at 50 ms a call, less than a second of work). A
	// WHATSAT past it is answered at once with an UNKNOWN_ERROR body saying the server is
	// busy.
	MaxWaiting int `toml:"max_waiting"`
	// MaxClients is the most connections one server serves at once (default 16384: room for
	// 10,000 clients and then some). Connections from a neighbour's host may go one past it per
	// neighbour, so that idle clients cannot keep the neighbours' links out.
	MaxClients int `toml:"max_clients"`
	// IdleTimeout closes a client connection that has sent nothing for this long and is owed no
	// reply (default 5m: a phone that reports its place every few minutes stays connected,
	// while a connection abandoned without a FIN goes within minutes; 0 turns it off). A
	// connection that has sent AT lines (a neighbour's link) is exempt.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// LineTimeout is how long a client may take to finish a line once its first byte has
	// arrived (default 30s: far longer than any line takes on a bad mobile network, far
	// shorter than a slowloris needs; 0 turns it off). A line not finished in time gets "? "
	// and what arrived of it, and the connection is closed. A connection that has sent AT
	// lines is exempt.
	LineTimeout time.Duration `toml:"line_timeout"`
	// MaxLinkUnsent is the most unsent bytes on a link before it is closed and redialled
	// (default 8 MiB). It must leave room for a resync chunk: at least MinLinkUnsent(max_line).
	MaxLinkUnsent int `toml:"max_link_unsent"`
	// DialTimeout bounds one dial to a neighbour, its name resolved and its hello answered
	// (default 1s); a neighbour's connection must say its hello within it too.
	DialTimeout time.Duration `toml:"dial_timeout"`
	// BackoffBase is the first redial delay bound (default 100ms); it doubles up to BackoffCap (default 5s).
	BackoffBase time.Duration `toml:"backoff_base"`
	BackoffCap  time.Duration `toml:"backoff_cap"`
	// MaxClockSkew is how far ahead of the server's clock a client's time may be (default
	// 1h; 0: any time is taken). An IAMAT past it gets "?"; a neighbour's AT line past it is
	// dropped and counted. Without it one IAMAT with a far-future time would hold that
	// client's record on every server for good: no real update would be newer.
	MaxClockSkew time.Duration `toml:"max_clock_skew"`
	// MaxRecords is the most client records a server holds (default 1,000,000). A record of
	// a new client past it evicts the record with the oldest client time (the record that
	// every server holding the same records agrees is oldest); a new client's record older
	// than every record held is not stored.
	MaxRecords int `toml:"max_records"`
	// MaxRecordBytes bounds the memory the records take (default 512MiB), each counted for
	// its AT line and a quarter more, its client ID and RecordOverhead (RecordBytes: at
	// least the heap it holds). Past it the oldest records are evicted, as past
	// max_records. A million records of 100-byte lines take about 400 MB; lines of max_line
	// bytes, which no real client sends, would take 5 KiB each without this bound.
	MaxRecordBytes ByteSize `toml:"max_record_bytes"`
}

// ServerConfig is one server of the herd.
type ServerConfig struct {
	// Name is the server's name, as it appears in AT lines: no white space, at most MaxNameLen
	// (64) bytes.
	Name string `toml:"name"`
	// Addr is the host:port the server listens on for clients (and for the AT lines of plain
	// neighbours; a plain server is dialled there). Port 0 picks a free port at Start (see
	// Herd).
	Addr string `toml:"addr"`
	// PeerAddr is the host:port the server listens on for links from its neighbours, and
	// that they dial. Default: Addr's host with Addr's port + 10000, as Redis Cluster's bus
	// (port 0 stays 0: a free port). Not used for a plain server.
	PeerAddr string `toml:"peer_addr"`
	// Peers names the server's neighbours. Links are symmetric: a link named on one side only
	// is added to the other.
	Peers []string `toml:"peers"`
	// Link is how neighbours link to this server: LinkHerd ("herd", the default) on its
	// peer port with a hello and a digest resync; or, for a server that speaks only AT lines
	// on its client port (the Python prototype, a plain peer), LinkPlain ("plain"): dialled
	// at Addr and sent bare AT lines over one connection and, when it comes up, every
	// record; or LinkPlainPerMessage ("plain-per-message"): each line on a connection of
	// its own, for servers that read one line from a connection and close it.
	Link string `toml:"link"`
	// AdminAddr is the host:port of the server's admin listener (metrics, health, status, a
	// status page and pprof, served by package herd/admin); "" (the default) turns it off.
	// It has no authentication: keep it on loopback or a private network.
	AdminAddr string `toml:"admin_addr"`
}

// Link modes (ServerConfig.Link).
const (
	LinkHerd            = "herd"
	LinkPlain           = "plain"
	LinkPlainPerMessage = "plain-per-message"
)

// Plain reports whether the server is a plain peer, one of another implementation (Link
// "plain" or "plain-per-message"). Any goroutine.
func (s *ServerConfig) Plain() bool { return s.Link == LinkPlain || s.Link == LinkPlainPerMessage }

// PerMessage reports whether the server is a plain peer sent each line on a connection of
// its own (Link "plain-per-message"). Any goroutine.
func (s *ServerConfig) PerMessage() bool { return s.Link == LinkPlainPerMessage }

// LinksConfig configures the links between the servers of the herd.
type LinksConfig struct {
	// Secret, when set, makes every link prove in its hello that both servers know it (an
	// HMAC-SHA256 over fresh nonces; the secret never goes on the wire), and AT lines are then
	// taken only on such links, never on the client port. At least MinSecretLen bytes. Empty:
	// SecretFile, else the HERD_LINK_SECRET environment variable, else no authentication.
	Secret string `toml:"secret"`
	// SecretFile names a file that holds the secret (a final newline is dropped); a relative
	// path is resolved against the folder of the config file. Reading the config reads it;
	// Secret then holds what it read.
	SecretFile string `toml:"secret_file"`
}

// MinSecretLen is the shortest links.secret accepted, in bytes.
const MinSecretLen = 16

// SecretEnv is the environment variable that gives links.secret when the config does not.
const SecretEnv = "HERD_LINK_SECRET"

// peerPortOffset is what the default peer port adds to the client port.
const peerPortOffset = 10000

// MinLinkUnsent returns the smallest limits.max_link_unsent accepted with a max_line of
// maxLine: room for two resync chunks and the longest AT line, so that a resync, which waits
// for the link's write buffer to fall below its high mark before it writes a chunk, can never
// reach the limit itself. Any goroutine.
func MinLinkUnsent(maxLine int) int { return 2*linkChunk + maxLine + codec.ATOverhead + 1 }

// DefaultWorkers is the default number of Places calls a server runs at once (places.workers)
// with a remote provider (google, google-v1); the offline provider's is GOMAXPROCS.
const DefaultWorkers = 1024

// defaultWorkers returns the default of places.workers for a provider (see PlacesConfig.Workers).
func defaultWorkers(provider string) int {
	if provider == "offline" {
		return runtime.GOMAXPROCS(0)
	}
	return DefaultWorkers
}

const maxWorkers = 1 << 16

// Default client deadlines (see Limits).
const (
	DefaultIdleTimeout = 5 * time.Minute
	DefaultLineTimeout = 30 * time.Second
)

// DefaultMaxClockSkew is the default of limits.max_clock_skew.
const DefaultMaxClockSkew = time.Hour

// DefaultMaxUnsentTotal is the default of limits.max_unsent_total.
const DefaultMaxUnsentTotal = 256 << 20

// Default record table bounds (limits.max_records, limits.max_record_bytes).
const (
	DefaultMaxRecords     = 1_000_000
	DefaultMaxRecordBytes = 512 << 20
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxLine:        4096,
		MaxUnsent:      1 << 20,
		MaxPending:     256,
		MaxWaiting:     16384,
		MaxClients:     16384,
		IdleTimeout:    DefaultIdleTimeout,
		LineTimeout:    DefaultLineTimeout,
		MaxLinkUnsent:  8 << 20,
		DialTimeout:    time.Second,
		BackoffBase:    100 * time.Millisecond,
		BackoffCap:     5 * time.Second,
		MaxClockSkew:   DefaultMaxClockSkew,
		MaxUnsentTotal: DefaultMaxUnsentTotal,
		MaxRecords:     DefaultMaxRecords,
		MaxRecordBytes: DefaultMaxRecordBytes,
	}
}

// DefaultConfig returns the herd of SPEC §1: Hill, Jaquez, Smith, Singleton and Campbell on
// 127.0.0.1:12000-12004 (their peer ports on 22000-22004), the offline Places provider (whatever the environment holds) and logs in
// ./logs. Any goroutine may call it; each call returns a new Config.
func DefaultConfig() *Config {
	c := &Config{
		Places: PlacesConfig{Provider: "offline", Timeout: 5 * time.Second, Workers: defaultWorkers("offline")},
		Log:    defaultLog(),
		Limits: DefaultLimits(),
		Servers: []ServerConfig{
			{Name: "Hill", Addr: "127.0.0.1:12000", PeerAddr: "127.0.0.1:22000", Peers: []string{"Jaquez", "Smith"}, Link: LinkHerd},
			{Name: "Jaquez", Addr: "127.0.0.1:12001", PeerAddr: "127.0.0.1:22001", Peers: []string{"Hill", "Singleton"}, Link: LinkHerd},
			{Name: "Smith", Addr: "127.0.0.1:12002", PeerAddr: "127.0.0.1:22002", Peers: []string{"Hill", "Singleton", "Campbell"}, Link: LinkHerd},
			{Name: "Singleton", Addr: "127.0.0.1:12003", PeerAddr: "127.0.0.1:22003", Peers: []string{"Jaquez", "Smith", "Campbell"}, Link: LinkHerd},
			{Name: "Campbell", Addr: "127.0.0.1:12004", PeerAddr: "127.0.0.1:22004", Peers: []string{"Singleton", "Smith"}, Link: LinkHerd},
		},
	}
	return c
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	d := *c
	d.Servers = make([]ServerConfig, len(c.Servers))
	for i, s := range c.Servers {
		s.Peers = append([]string(nil), s.Peers...)
		d.Servers[i] = s
	}
	return &d
}

// Server returns the config of the server called name, or nil.
func (c *Config) Server(name string) *ServerConfig {
	for i := range c.Servers {
		if c.Servers[i].Name == name {
			return &c.Servers[i]
		}
	}
	return nil
}

// ConfigError is a problem with a config: the file, the line when known (0 if not), the key when
// known, and what is wrong. LoadConfig and ParseConfig return one, or several joined with
// errors.Join; find them with errors.As.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
	Err  error // the underlying error, if any
}

// Error says "herd: config FILE:LINE: KEY: what is wrong", leaving out what is unknown.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("herd: config")
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
	} else if e.Line > 0 {
		b.WriteString(" line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error (a toml or places error), if any.
func (e *ConfigError) Unwrap() error { return e.Err }

// IsConfigError reports whether err holds a ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// LoadConfig reads, validates and completes the TOML config in the file at path. Relative
// paths in it (log.dir, the default "logs" included, and places.dataset) are resolved
// against the file's folder, so the config means the same from any working directory.
// Any goroutine may call it.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	c, err := ParseConfig(data, path)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	c.resolvePaths(dir)
	return c, nil
}

// resolvePaths makes the relative paths of c (log.dir, places.dataset, store.path) relative
// to dir.
func (c *Config) resolvePaths(dir string) {
	if d := c.Log.Dir; !c.Log.Off() && !c.Log.Stderr() && !filepath.IsAbs(d) {
		c.Log.Dir = filepath.Join(dir, d)
	}
	if d := c.Places.Dataset; d != "" && !filepath.IsAbs(d) {
		c.Places.Dataset = filepath.Join(dir, d)
	}
	if d := c.Store.Path; d != "" && !filepath.IsAbs(d) {
		c.Store.Path = filepath.Join(dir, d)
	}
}

// ParseConfig parses, validates and completes a TOML config; file names it in errors.
// Missing keys take their defaults; GOOGLE_PLACES_API_KEY fills an empty key.
func ParseConfig(data []byte, file string) (*Config, error) {
	c := &Config{
		Places: PlacesConfig{Timeout: 5 * time.Second},
		Log:    defaultLog(),
		Limits: DefaultLimits(),
	}
	// First as plain TOML values, to check their types: the toml package reports a value of
	// the wrong type as text only, and takes an integer as nanoseconds for a duration.
	var raw map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, parseError(err, file)
	}
	loc := newKeyLocator(data)
	if err := typeErrors(raw, loc, file); err != nil {
		return nil, err
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return nil, parseError(err, file)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, &ConfigError{File: file, Line: loc.line(k), Key: k.String(), Msg: "unknown key"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.Places.Key == "" {
		c.Places.Key = os.Getenv("GOOGLE_PLACES_API_KEY")
	}
	if c.Places.Provider == "" {
		if c.Places.Key != "" {
			c.Places.Provider = "google"
		} else {
			c.Places.Provider = "offline"
		}
	}
	if err := c.validate(file, loc); err != nil {
		return nil, err
	}
	c.completeLinks()
	return c, nil
}

// parseError makes a decoder's error a ConfigError, with the decoder's own position when it
// has one (syntax, a size the ByteSize parser rejects).
func parseError(err error, file string) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ConfigError{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message, Err: err}
	}
	return &ConfigError{File: file, Msg: err.Error(), Err: err}
}

// typeErrors returns a ConfigError for each value of a TOML text, decoded into raw, that does
// not fit the Config field it is for, or nil.
func typeErrors(raw map[string]any, loc *keyLocator, file string) error {
	var errs []error
	checkTypes(raw, reflect.TypeFor[Config](), nil, func(key []string, msg string) {
		errs = append(errs, &ConfigError{File: file, Line: loc.line(key), Key: keyName(key), Msg: msg})
	})
	return errors.Join(errs...)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[ByteSize]()
)

// checkTypes calls bad for each value under v (a TOML value decoded into an any) that cannot
// go into a value of type t, the type of the field at key. Durations and sizes need a unit:
// "5s", "100MiB"; a bare number is refused (but 0), since "timeout = 5" would otherwise be 5
// nanoseconds.
func checkTypes(v any, t reflect.Type, key []string, bad func(key []string, msg string)) {
	want := func(what string) { bad(key, fmt.Sprintf("want %s, got %s", what, tomlType(v))) }
	switch {
	case t == durationType:
		switch x := v.(type) {
		case int64:
			if x != 0 {
				bad(key, fmt.Sprintf(`%d has no unit: write a duration such as "%ds" or "%dms"`, x, x, x))
			}
		case string:
			if _, err := time.ParseDuration(x); err == nil {
				break
			}
			if _, err := strconv.ParseFloat(x, 64); err == nil {
				bad(key, fmt.Sprintf(`"%s" has no unit: write a duration such as "%ss" or "%sms"`, x, x, x))
			} else {
				bad(key, fmt.Sprintf(`%q is not a duration (want a number and a unit: "5s", "500ms", "1m30s")`, x))
			}
		default:
			want(`a duration ("5s")`)
		}
	case t == sizeType:
		switch x := v.(type) {
		case int64:
			if x != 0 {
				bad(key, fmt.Sprintf(`%d has no unit: write a size such as "%dMiB"`, x, x))
			}
		case string:
			if _, err := parseByteSize(x); err != nil {
				bad(key, err.Error())
			}
		default:
			want(`a size ("100MiB")`)
		}
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			want("a table")
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("toml")
			if fv, ok := m[name]; ok && name != "" {
				checkTypes(fv, f.Type, append(key[:len(key):len(key)], name), bad)
			}
		}
	case t.Kind() == reflect.Slice:
		var elems []any
		switch a := v.(type) {
		case []any:
			elems = a
		case []map[string]any:
			for _, e := range a {
				elems = append(elems, e)
			}
		default:
			want("an array")
			return
		}
		for i, e := range elems {
			checkTypes(e, t.Elem(), append(key[:len(key):len(key)], strconv.Itoa(i)), bad)
		}
	case t.Kind() == reflect.String:
		if _, ok := v.(string); !ok {
			want("a string")
		}
	case t.Kind() == reflect.Int:
		if _, ok := v.(int64); !ok {
			want("an integer")
		}
	}
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	}
	return "a date or time"
}

// keyName spells a key as validation errors do: server[1].peers, limits.max_line.
func keyName(key []string) string {
	var b strings.Builder
	for i, k := range key {
		if _, err := strconv.Atoi(k); err == nil && i > 0 {
			b.WriteString("[" + k + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	return b.String()
}

// Validate checks a Config built in code (DefaultConfig or a changed copy) and completes its links.
func (c *Config) Validate() error {
	if err := c.validate("", nil); err != nil {
		return err
	}
	c.completeLinks()
	return nil
}

func (c *Config) validate(file string, loc *keyLocator) error {
	var errs []error
	bad := func(line int, key, format string, args ...any) {
		errs = append(errs, &ConfigError{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	at := func(k ...string) int {
		if loc == nil {
			return 0
		}
		return loc.line(toml.Key(k))
	}
	switch c.Places.Provider {
	case "google", "google-v1":
		if c.Places.Key == "" {
			bad(at("places", "provider"), "places.provider", "provider %q needs an API key: places.key or the GOOGLE_PLACES_API_KEY environment variable", c.Places.Provider)
		}
	case "offline":
	default:
		bad(at("places", "provider"), "places.provider", "unknown provider %q (want google, google-v1 or offline)", c.Places.Provider)
	}
	if c.Places.Timeout <= 0 {
		bad(at("places", "timeout"), "places.timeout", "must be a positive duration, got %v", c.Places.Timeout)
	}
	if c.Places.CacheTTL < 0 {
		bad(at("places", "cache_ttl"), "places.cache_ttl", "must not be negative, got %v", c.Places.CacheTTL)
	}
	if c.Places.Workers < 0 || c.Places.Workers > maxWorkers {
		bad(at("places", "workers"), "places.workers", "must be between 1 and %d, got %d", maxWorkers, c.Places.Workers)
	} else if c.Places.Workers == 0 {
		c.Places.Workers = defaultWorkers(c.Places.Provider)
	}
	if c.Places.MaxConns < 0 {
		bad(at("places", "max_conns"), "places.max_conns", "must not be negative, got %d", c.Places.MaxConns)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error", "off":
	default:
		bad(at("log", "level"), "log.level", "unknown level %q (want debug, info, warn, error or off)", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad(at("log", "format"), "log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	if c.Log.Dir == "" {
		c.Log.Dir = "logs"
	}
	if m := c.Log.MaxSize; m != 0 && m < 1<<20 {
		bad(at("log", "max_size"), "log.max_size", "must be 0 (no rotation) or at least 1MiB, got %v", m)
	}
	if c.Log.MaxSize > 0 && c.Log.MaxFiles < 1 || c.Log.MaxFiles < 0 {
		bad(at("log", "max_files"), "log.max_files", "must be at least 1 (rotated files kept), got %d", c.Log.MaxFiles)
	}
	l := &c.Limits
	if l.MaxLine < 64 || l.MaxLine > 1<<24 {
		bad(at("limits", "max_line"), "limits.max_line", "must be between 64 and 16777216, got %d", l.MaxLine)
	}
	positive := []struct {
		key string
		v   int
	}{{"max_unsent", l.MaxUnsent}, {"max_pending", l.MaxPending}, {"max_waiting", l.MaxWaiting}, {"max_clients", l.MaxClients}, {"max_link_unsent", l.MaxLinkUnsent}, {"max_records", l.MaxRecords}}
	for _, p := range positive {
		if p.v <= 0 {
			bad(at("limits", p.key), "limits."+p.key, "must be positive, got %d", p.v)
		}
	}
	durations := []struct {
		key string
		v   time.Duration
	}{{"dial_timeout", l.DialTimeout}, {"backoff_base", l.BackoffBase}, {"backoff_cap", l.BackoffCap}}
	for _, d := range durations {
		if d.v <= 0 {
			bad(at("limits", d.key), "limits."+d.key, "must be a positive duration, got %v", d.v)
		}
	}
	if l.IdleTimeout < 0 {
		bad(at("limits", "idle_timeout"), "limits.idle_timeout", "must not be negative, got %v", l.IdleTimeout)
	}
	if l.LineTimeout < 0 {
		bad(at("limits", "line_timeout"), "limits.line_timeout", "must not be negative, got %v", l.LineTimeout)
	}
	if l.MaxUnsentTotal < 1<<20 {
		bad(at("limits", "max_unsent_total"), "limits.max_unsent_total", "must be at least 1MiB, got %v", l.MaxUnsentTotal)
	}
	if l.MaxRecordBytes < 1<<20 {
		bad(at("limits", "max_record_bytes"), "limits.max_record_bytes", "must be at least 1MiB, got %v", l.MaxRecordBytes)
	}
	if l.MaxClockSkew < 0 {
		bad(at("limits", "max_clock_skew"), "limits.max_clock_skew", "must not be negative, got %v", l.MaxClockSkew)
	}
	if c.Records.TTL < 0 {
		bad(at("records", "ttl"), "records.ttl", "must not be negative, got %v", c.Records.TTL)
	}
	if l.BackoffBase > 0 && l.BackoffCap > 0 && l.BackoffCap < l.BackoffBase {
		bad(at("limits", "backoff_cap"), "limits.backoff_cap", "%v is less than backoff_base %v", l.BackoffCap, l.BackoffBase)
	}
	if min := MinLinkUnsent(l.MaxLine); l.MaxLinkUnsent > 0 && l.MaxLine >= 64 && l.MaxLinkUnsent < min {
		bad(at("limits", "max_link_unsent"), "limits.max_link_unsent",
			"must be at least %d bytes with max_line %d (two resync chunks of %d and the longest AT line), got %d",
			min, l.MaxLine, linkChunk, l.MaxLinkUnsent)
	}
	c.validateLinks(file, at, bad)

	if len(c.Servers) == 0 {
		bad(0, "server", "no [[server]] in the config")
	}
	names := make(map[string]int, len(c.Servers))
	for i, s := range c.Servers {
		idx := strconv.Itoa(i)
		key := fmt.Sprintf("server[%d]", i)
		switch {
		case s.Name == "":
			bad(at("server", idx, "name"), key+".name", "missing server name")
		case strings.IndexFunc(s.Name, unicode.IsSpace) >= 0:
			bad(at("server", idx, "name"), key+".name", "server name %q contains white space", s.Name)
		case len(s.Name) > MaxNameLen:
			bad(at("server", idx, "name"), key+".name", "server name %q is longer than %d bytes", s.Name, MaxNameLen)
		default:
			if j, dup := names[s.Name]; dup {
				bad(at("server", idx, "name"), key+".name", "duplicate server name %q (also server[%d])", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}
		if err := checkAddr(s.Addr); err != nil {
			bad(at("server", idx, "addr"), key+".addr", "%v", err)
		}
		switch s.Link {
		case "":
			c.Servers[i].Link = LinkHerd
		case LinkHerd, LinkPlain, LinkPlainPerMessage:
		default:
			bad(at("server", idx, "link"), key+".link", "unknown link mode %q (want herd, plain or plain-per-message)", s.Link)
		}
		if s.Plain() && c.Links.Secret != "" {
			bad(at("server", idx, "link"), key+".link",
				"server %q is a plain peer (link = %q) and cannot authenticate; with links.secret set, AT lines are taken only on authenticated links: remove the secret or the plain peer", s.Name, s.Link)
		}
		if s.PeerAddr != "" {
			if err := checkAddr(s.PeerAddr); err != nil {
				bad(at("server", idx, "peer_addr"), key+".peer_addr", "%v", err)
			}
		} else if !s.Plain() && checkAddr(s.Addr) == nil {
			pa, err := defaultPeerAddr(s.Addr)
			if err != nil {
				bad(at("server", idx, "addr"), key+".peer_addr", "%v", err)
			}
			c.Servers[i].PeerAddr = pa
		}
		if s.AdminAddr != "" {
			if err := checkAddr(s.AdminAddr); err != nil {
				bad(at("server", idx, "admin_addr"), key+".admin_addr", "%v", err)
			}
		}
	}
	c.checkClashes(at, bad)
	for i, s := range c.Servers {
		idx := strconv.Itoa(i)
		key := fmt.Sprintf("server[%d].peers", i)
		seen := make(map[string]bool, len(s.Peers))
		for _, p := range s.Peers {
			switch {
			case p == s.Name:
				bad(at("server", idx, "peers"), key, "server %q names itself as a peer", s.Name)
			case seen[p]:
				bad(at("server", idx, "peers"), key, "peer %q named twice", p)
			default:
				if _, ok := names[p]; !ok {
					bad(at("server", idx, "peers"), key, "unknown peer %q (no [[server]] has that name)", p)
				}
			}
			seen[p] = true
		}
	}
	return errors.Join(errs...)
}

// checkAddr checks a host:port listen address.
func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("missing address (want host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad address %q: %v", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port in address %q", addr)
	}
	if host != "" && net.ParseIP(host) == nil {
		for _, r := range host {
			if !(r == '-' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
				return fmt.Errorf("bad host in address %q", addr)
			}
		}
	}
	return nil
}

// completeLinks adds the missing half of every link named on one side only, and sorts nothing:
// peers keep the order they were given, added ones follow.
func (c *Config) completeLinks() {
	idx := make(map[string]int, len(c.Servers))
	for i, s := range c.Servers {
		idx[s.Name] = i
	}
	for i := range c.Servers {
		for _, p := range c.Servers[i].Peers {
			j, ok := idx[p]
			if !ok {
				continue
			}
			if !contains(c.Servers[j].Peers, c.Servers[i].Name) {
				c.Servers[j].Peers = append(c.Servers[j].Peers, c.Servers[i].Name)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// keyLocator finds the line of a key in a TOML text, for errors found after decoding (unknown
// keys, values of the wrong type, bad settings). The toml package (v1.6.0) keeps key positions
// to itself, and keeps one per key name across an array of tables (the last [[server]]'s for
// every server), so this is a light scan of table headers and "key =" lines: enough for the
// flat layout of a herd config (dotted keys and inline tables give 0: unknown). Errors the
// decoder finds itself (syntax, a bad duration) carry its own position (toml.ParseError).
type keyLocator struct {
	lines map[string]int
}

func newKeyLocator(data []byte) *keyLocator {
	k := &keyLocator{lines: make(map[string]int)}
	table, base := "", ""
	arrays := make(map[string]int)
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		switch {
		case strings.HasPrefix(line, "[["):
			end := strings.Index(line, "]]")
			if end < 0 {
				continue
			}
			name := strings.TrimSpace(line[2:end])
			n := arrays[name]
			arrays[name] = n + 1
			table, base = name+"."+strconv.Itoa(n), name
			k.set(table, i+1)
			k.set(base, i+1)
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				continue
			}
			table, base = strings.TrimSpace(line[1:end]), ""
			k.set(table, i+1)
		default:
			eq := strings.IndexByte(line, '=')
			if eq <= 0 {
				continue
			}
			key := strings.Trim(strings.TrimSpace(line[:eq]), `"'`)
			if base != "" {
				// The toml package names keys of array tables without the index.
				k.set(base+"."+key, i+1)
			}
			if table != "" {
				key = table + "." + key
			}
			k.set(key, i+1)
		}
	}
	return k
}

func (k *keyLocator) set(key string, line int) {
	if _, ok := k.lines[key]; !ok {
		k.lines[key] = line
	}
}

// line returns the line of key, or of the closest enclosing table, or 0. Array-of-tables
// elements are numbered in the key as the toml package numbers them (server.0.name).
func (k *keyLocator) line(key toml.Key) int {
	parts := []string(key)
	for n := len(parts); n > 0; n-- {
		if l, ok := k.lines[strings.Join(parts[:n], ".")]; ok {
			return l
		}
	}
	return 0
}

// sortedNames returns the names of c's servers, sorted.
func (c *Config) sortedNames() []string {
	names := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		names[i] = s.Name
	}
	sort.Strings(names)
	return names
}

// validateLinks checks [links] and loads the secret: from secret_file, else from
// HERD_LINK_SECRET when the config sets none.
func (c *Config) validateLinks(file string, at func(k ...string) int, bad func(line int, key, format string, args ...any)) {
	lc := &c.Links
	switch {
	case lc.Secret != "" && lc.SecretFile != "":
		bad(at("links", "secret_file"), "links.secret_file", "set links.secret or links.secret_file, not both")
		return
	case lc.SecretFile != "":
		path := lc.SecretFile
		if !filepath.IsAbs(path) && file != "" {
			path = filepath.Join(filepath.Dir(file), path) // as LoadConfig resolves paths
		}
		b, err := os.ReadFile(path)
		if err != nil {
			bad(at("links", "secret_file"), "links.secret_file", "%v", err)
			return
		}
		lc.Secret = strings.TrimRight(string(b), "\r\n")
		if lc.Secret == "" {
			bad(at("links", "secret_file"), "links.secret_file", "%s is empty", lc.SecretFile)
			return
		}
		lc.SecretFile = ""
	case lc.Secret == "":
		lc.Secret = os.Getenv(SecretEnv)
	}
	if lc.Secret != "" && len(lc.Secret) < MinSecretLen {
		bad(at("links", "secret"), "links.secret", "a secret must be at least %d bytes, got %d", MinSecretLen, len(lc.Secret))
	}
}

// defaultPeerAddr returns the default peer address of a server listening on addr (valid for
// checkAddr): the same host, the port + 10000, port 0 staying 0.
func defaultPeerAddr(addr string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	if n == 0 {
		return addr, nil
	}
	if n+peerPortOffset > 65535 {
		return "", fmt.Errorf("not set, and the default (the port of addr, %d, + %d) is past 65535: set peer_addr", n, peerPortOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+peerPortOffset)), nil
}

// checkClashes reports listening addresses (client, peer and admin ports, any server) that
// two servers, or two listeners of one server, would share: the same port on the same
// interface of the same machine. A server's machine is the host of its addr (an unspecified
// or loopback addr: this machine). Two listeners with hosts given clash when the hosts are
// the same (loopback ones only on the same machine: each server of a multi-host herd may
// keep its admin listener on its own 127.0.0.1); one on an unspecified host (all
// interfaces) clashes with any listener of the same port on its machine. Port 0 never
// clashes: each listener gets a free port.
func (c *Config) checkClashes(at func(k ...string) int, bad func(line int, key, format string, args ...any)) {
	type listener struct {
		host, port, machine, key string
	}
	var seen []listener
	add := func(i int, field, addr, machine string) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || strings.Trim(port, "0") == "" {
			return
		}
		key := fmt.Sprintf("server[%d].%s", i, field)
		l := listener{strings.ToLower(host), strings.TrimLeft(port, "0"), machine, key}
		for _, o := range seen {
			same := o.host == l.host // two hosts given: the same interface
			switch {
			case unspecified(o.host) || unspecified(l.host):
				same = o.machine == l.machine
			case loopback(o.host) && loopback(l.host):
				same = same && o.machine == l.machine
			}
			if o.port == l.port && same {
				bad(at("server", strconv.Itoa(i), field), key, "%s is also the listening address of %s", addr, o.key)
				return
			}
		}
		seen = append(seen, l)
	}
	for i, s := range c.Servers {
		machine := "this machine"
		if host, _, err := net.SplitHostPort(s.Addr); err == nil && !unspecified(host) && !loopback(host) {
			machine = strings.ToLower(host)
		}
		add(i, "addr", s.Addr, machine)
		if !s.Plain() {
			add(i, "peer_addr", s.PeerAddr, machine)
		}
		if s.AdminAddr != "" {
			add(i, "admin_addr", s.AdminAddr, machine)
		}
	}
}

// loopback reports whether host is a loopback IP or "localhost".
func loopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback() || strings.EqualFold(host, "localhost")
}

// unspecified reports whether host means every interface ("", 0.0.0.0, ::).
func unspecified(host string) bool {
	ip, err := netip.ParseAddr(host)
	return host == "" || err == nil && ip.IsUnspecified()
}
