package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"time"

	"github.com/herd-project/herd/herd"
)

// processStart is when this process started, near enough: uptime is the process's.
var processStart = time.Now()

// Status is what /status answers, in the manner of NATS's /varz: the server, a summary of its
// config (never the Places key), its links, its counters and its most recent updates. herd
// status decodes it.
type Status struct {
	Server        string    `json:"server"`
	Version       string    `json:"version,omitempty"`
	Go            string    `json:"go"`
	PID           int       `json:"pid"`
	Start         time.Time `json:"start"` // the process's
	Now           time.Time `json:"now"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Addr          string    `json:"addr"`            // the client address it listens on ("" before)
	Ready         bool      `json:"ready"`           // what /readyz says
	NotReady      string    `json:"not_ready"`       // why not, or ""
	Error         string    `json:"error,omitempty"` // the loop did not answer: links and recent updates are missing

	Config ConfigSummary `json:"config"`
	Herd   []Node        `json:"herd"`  // every server of the config: the topology
	Links  []Link        `json:"links"` // this server's links

	Counters       map[string]float64            `json:"counters"` // the metrics' single series, without "herd_"
	Labelled       map[string]map[string]float64 `json:"labelled"` // by name, then label value
	LoopLagSeconds float64                       `json:"loop_lag_seconds"`
	Recent         []Update                      `json:"recent"` // newest first
}

// ConfigSummary is the part of a server's config an operator may see: no key or secret.
type ConfigSummary struct {
	Addr      string         `json:"addr"`
	AdminAddr string         `json:"admin_addr"`
	Peers     []string       `json:"peers"`
	Places    PlacesSummary  `json:"places"`
	Log       map[string]any `json:"log"`
	Limits    map[string]any `json:"limits"`
}

// PlacesSummary is the Places config without its key.
type PlacesSummary struct {
	Provider string `json:"provider"`
	URL      string `json:"url,omitempty"`
	KeySet   bool   `json:"key_set"`
	Timeout  string `json:"timeout"`
	CacheTTL string `json:"cache_ttl"`
	Workers  int    `json:"workers"`
	MaxConns int    `json:"max_conns"`
	Dataset  string `json:"dataset,omitempty"`
}

// Node is one server of the herd's config.
type Node struct {
	Name      string   `json:"name"`
	Addr      string   `json:"addr"`
	AdminAddr string   `json:"admin_addr,omitempty"`
	Peers     []string `json:"peers"`
}

// Link is one of the server's links: its state from the loop, its counters from the atomics.
type Link struct {
	Peer         string     `json:"peer"`
	Addr         string     `json:"addr"`
	Up           bool       `json:"up"`
	Since        *time.Time `json:"since,omitempty"` // when it came up
	Fault        string     `json:"fault"`
	Reconnects   uint64     `json:"reconnects"`
	DialFailures uint64     `json:"dial_failures"`
	ResyncSent   uint64     `json:"resync_sent"`
}

// Update is a record the server stored.
type Update struct {
	Time time.Time `json:"time"`
	From string    `json:"from"` // "client" or "peer"
	Line string    `json:"line"`
}

// Status builds what /status answers. It waits for the loop's snapshot at most until ctx is
// done; without it, Error says so and the links come from the atomics. Any goroutine.
func (a *Admin) Status(ctx context.Context) *Status {
	s := a.s
	now := time.Now()
	st := &Status{
		Server:         s.Name(),
		Version:        a.opts.Version,
		Go:             runtime.Version(),
		PID:            os.Getpid(),
		Start:          processStart,
		Now:            now,
		UptimeSeconds:  now.Sub(processStart).Seconds(),
		LoopLagSeconds: time.Duration(a.lastLag.Load()).Seconds(),
		Recent:         []Update{},
	}
	if ad := s.Addr(); ad != nil {
		st.Addr = ad.String()
	}
	st.NotReady = a.notReady()
	st.Ready = st.NotReady == ""
	st.Config, st.Herd = summary(s.Config(), s.Name())
	st.Counters, st.Labelled = counters(s)

	snap, err := s.Snapshot(ctx)
	if err != nil {
		st.Error = err.Error()
	}
	m := s.Metrics()
	for i := range m.Links {
		lm := &m.Links[i]
		l := Link{
			Peer: lm.Peer, Up: lm.Up.Load(), Fault: "none",
			Reconnects: max(lm.Ups.Load(), 1) - 1, DialFailures: lm.DialFailures.Load(), ResyncSent: lm.ResyncSent.Load(),
		}
		if snap != nil && i < len(snap.Links) {
			ls := snap.Links[i]
			l.Addr, l.Up, l.Fault = ls.Addr, ls.Up, ls.Fault
			if ls.Up {
				since := ls.Since
				l.Since = &since
			}
		}
		st.Links = append(st.Links, l)
	}
	if snap != nil {
		for _, u := range snap.Recent {
			st.Recent = append(st.Recent, Update(u))
		}
	}
	return st
}

// status serves Status as JSON.
func (a *Admin) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), snapshotTimeout)
	defer cancel()
	st := a.Status(ctx)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

// summary returns what an operator may see of cfg for the server called name, and the herd's
// topology. The Places key is left out by naming what goes in; limits and log settings hold
// no secret and are listed whole, by their config keys, so a new limit shows up by itself.
func summary(cfg *herd.Config, name string) (ConfigSummary, []Node) {
	var cs ConfigSummary
	if sc := cfg.Server(name); sc != nil {
		cs.Addr, cs.AdminAddr, cs.Peers = sc.Addr, sc.AdminAddr, sc.Peers
	}
	p := cfg.Places
	cs.Places = PlacesSummary{
		Provider: p.Provider, URL: redactURL(p.URL), KeySet: p.Key != "", Timeout: p.Timeout.String(),
		CacheTTL: p.CacheTTL.String(), Workers: p.Workers, MaxConns: p.MaxConns, Dataset: p.Dataset,
	}
	cs.Log = byTOMLKey(cfg.Log)
	cs.Limits = byTOMLKey(cfg.Limits)
	nodes := make([]Node, 0, len(cfg.Servers))
	for _, sc := range cfg.Servers {
		nodes = append(nodes, Node{Name: sc.Name, Addr: sc.Addr, AdminAddr: sc.AdminAddr, Peers: sc.Peers})
	}
	return cs, nodes
}

// redactURL returns u without its user info and query, where credentials may hide.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable)"
	}
	pu.User, pu.RawQuery, pu.ForceQuery = nil, "", false
	return pu.String()
}

// byTOMLKey returns the fields of a config struct by their TOML keys, durations as text.
func byTOMLKey(v any) map[string]any {
	out := make(map[string]any)
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	for i := range rt.NumField() {
		key := rt.Field(i).Tag.Get("toml")
		if key == "" || !rt.Field(i).IsExported() {
			continue
		}
		f := rv.Field(i).Interface()
		if d, ok := f.(time.Duration); ok {
			f = d.String()
		}
		out[key] = f
	}
	return out
}
