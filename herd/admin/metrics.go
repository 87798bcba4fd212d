package admin

import (
	"github.com/herd-project/herd/herd"
	"github.com/prometheus/client_golang/prometheus"
)

// family is one exported metric: its name, help, type, its one label (or none) and how to
// read its values from a server. Values are read at scrape time from the server's atomics:
// nothing is copied on the loop.
type family struct {
	name  string
	help  string
	kind  prometheus.ValueType // CounterValue or GaugeValue
	label string               // "" for a single series
	read  func(s *herd.Server, m *herd.Metrics, emit func(v float64, label string))
}

// families lists every metric this package exports besides the two histograms
// (herd_places_duration_seconds, herd_loop_lag_seconds) and the Go runtime's. It is the one
// place to add a counter: a new field of herd.Metrics is exported, and shown in /status, by a
// row here. Families with the label "peer" are per link; /status shows them in its links.
var families = []family{
	{"herd_clients_connected", "Connections on the client port open now (a plain neighbour's among them; links are on the peer port).", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.ClientsOpen.Load()) })},
	{"herd_clients_max", "The most client connections the server takes at once (max_clients, or less to fit the open file limit).", gauge, "",
		func(s *herd.Server, _ *herd.Metrics, emit func(float64, string)) { emit(float64(s.MaxClients()), "") }},
	{"herd_clients_accepted_total", "Client connections accepted.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.ClientsTotal.Load()) })},
	{"herd_accept_errors_total", "Accepts that failed (EMFILE and the like), each followed by a pause before the next.", counter, "",
		func(s *herd.Server, _ *herd.Metrics, emit func(float64, string)) { emit(float64(s.AcceptErrors()), "") }},
	{"herd_clients_refused_total", "Connections closed as soon as they were accepted, by reason.", counter, "reason",
		each(herd.RefuseReasons[:], func(m *herd.Metrics, i int) uint64 { return m.Refused[i].Load() })},
	{"herd_clients_cut_total", "Clients cut off or closed by the server, by reason.", counter, "reason",
		each(herd.CutReasons[:], func(m *herd.Metrics, i int) uint64 { return m.Cut[i].Load() })},
	{"herd_lines_total", "Lines received from clients and neighbours, by command.", counter, "command",
		each(herd.LineCommands[:], func(m *herd.Metrics, i int) uint64 { return m.Lines.In[i].Load() })},
	{"herd_invalid_total", `"?" replies sent, by reason.`, counter, "reason",
		each(herd.InvalidReasons[:], func(m *herd.Metrics, i int) uint64 { return m.Lines.Invalid[i].Load() })},
	{"herd_records", "Client records held.", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.Records.Load()) })},
	{"herd_updates_applied_total", "Updates stored: newer than the record held.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.Stored.Load()) })},
	{"herd_updates_stale_total", "Updates dropped: not newer than the record held.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.Stale.Load()) })},
	{"herd_records_max", "The most client records the server holds (limits.max_records).", gauge, "",
		func(s *herd.Server, _ *herd.Metrics, emit func(float64, string)) { emit(float64(s.MaxRecords()), "") }},
	{"herd_record_bytes", "Bytes the records held are counted for (at least the heap they hold).", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.RecordBytes.Load()) })},
	{"herd_record_bytes_max", "The most bytes the records may be counted for (limits.max_record_bytes).", gauge, "",
		func(s *herd.Server, _ *herd.Metrics, emit func(float64, string)) {
			emit(float64(s.MaxRecordBytes()), "")
		}},
	{"herd_records_removed_total", "Records removed by reason: evicted (the oldest, for a new client past limits.max_records), expired (older than records.ttl).", counter, "reason",
		func(_ *herd.Server, m *herd.Metrics, emit func(float64, string)) {
			emit(float64(m.RecordCounts.Evicted.Load()), "evicted")
			emit(float64(m.RecordCounts.Expired.Load()), "expired")
		}},
	{"herd_updates_refused_total", "Updates not stored, by reason: clock_skew (a neighbour's AT line more than limits.max_clock_skew ahead of this server's clock: refused for clock skew), expired (older than records.ttl), table_full (a new client older than every record held at limits.max_records).", counter, "reason",
		func(_ *herd.Server, m *herd.Metrics, emit func(float64, string)) {
			emit(float64(m.Lines.SkewDropped.Load()), "clock_skew")
			emit(float64(m.RecordCounts.TooOld.Load()), "expired")
			emit(float64(m.RecordCounts.TableFull.Load()), "table_full")
		}},
	{"herd_updates_flooded_total", "Updates flooded to the neighbours whose links were up.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.FloodLines.Load()) })},
	{"herd_snapshot_writes_total", "Snapshots of the records written ([store] path).", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.SnapshotWrites.Load()) })},
	{"herd_snapshot_write_errors_total", "Snapshots that could not be written (the previous one stays; retried every second).", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.SnapshotWriteErrors.Load()) })},
	{"herd_snapshot_last_write_timestamp_seconds", "When the last snapshot was written (Unix time; 0: none yet).", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.SnapshotLastWrite.Load()) / 1e9 })},
	{"herd_snapshot_loaded_records", "Records read from the snapshot at start.", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.SnapshotLoaded.Load()) })},
	{"herd_snapshot_bad_lines", "Lines of the snapshot read at start that were not whole records (damaged) or were refused.", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.SnapshotBadLines.Load()) })},
	{"herd_snapshot_torn", "1 if the snapshot read at start had no end line (a torn file).", gauge, "",
		one(func(m *herd.Metrics) float64 {
			if m.SnapshotTruncated.Load() {
				return 1
			}
			return 0
		})},
	{"herd_places_calls_total", "Places requests made.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.PlacesCalls.Load()) })},
	{"herd_places_coalesced_total", "WHATSATs that joined an identical Places request in flight.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.PlacesShared.Load()) })},
	{"herd_places_cache_hits_total", "WHATSATs answered from the Places cache (places.cache_ttl).", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.PlacesCacheHits.Load()) })},
	{"herd_whatsats_waiting", "WHATSATs waiting for Places now, all clients (at most limits.max_waiting).", gauge, "",
		one(func(m *herd.Metrics) float64 { return float64(m.Waiting.Load()) })},
	{"herd_places_errors_total", "Places requests that failed, by kind (busy: answered at once past limits.max_waiting).", counter, "kind",
		each(herd.PlacesErrorKinds[:], func(m *herd.Metrics, i int) uint64 { return m.PlacesErrorsBy[i].Load() })},
	{"herd_link_hellos_held_total", "Neighbours' link hellos held unanswered while this server's own dial to them, the connection both keep, was under way.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.LinkHelloHolds.Load()) })},
	{"herd_links_overflowed_total", "Links closed because a neighbour did not read (max_link_unsent).", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.LinkOverflows.Load()) })},
	{"herd_log_dropped_total", "Log records dropped because the log's disk could not keep up.", counter, "",
		func(s *herd.Server, _ *herd.Metrics, emit func(float64, string)) { emit(float64(s.LogDropped()), "") }},
	{"herd_link_up", "1 while the link to the neighbour is up.", gauge, "peer",
		perLink(func(l *herd.LinkMetrics) float64 {
			if l.Up.Load() {
				return 1
			}
			return 0
		})},
	{"herd_link_reconnects_total", "Times the link came up again after it went down.", counter, "peer",
		perLink(func(l *herd.LinkMetrics) float64 { return float64(max(l.Ups.Load(), 1) - 1) })},
	{"herd_link_dial_failures_total", "Dials to the neighbour that failed.", counter, "peer",
		perLink(func(l *herd.LinkMetrics) float64 { return float64(l.DialFailures.Load()) })},
	{"herd_link_resync_sent_total", "Records sent to the neighbour in resyncs.", counter, "peer",
		perLink(func(l *herd.LinkMetrics) float64 { return float64(l.ResyncSent.Load()) })},
	{"herd_link_discarded_lines_total", "Lines a plain peer sent that were not AT lines (acknowledgements, text without a newline, lines over the limit), discarded.", counter, "peer",
		perLink(func(l *herd.LinkMetrics) float64 { return float64(l.Discarded.Load()) })},
	{"herd_link_send_failures_total", "Connections to a plain-per-message peer that failed to carry their line; each takes the link down until a redial resyncs it.", counter, "peer",
		perLink(func(l *herd.LinkMetrics) float64 { return float64(l.SendFailures.Load()) })},
	{"herd_plain_extra_fields_total", "AT lines from plain peers that carried names after their six fields, stored without them.", counter, "",
		one(func(m *herd.Metrics) float64 { return float64(m.Lines.Extra.Load()) })},
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// one reads a single series from the server's Metrics.
func one(f func(m *herd.Metrics) float64) func(*herd.Server, *herd.Metrics, func(float64, string)) {
	return func(_ *herd.Server, m *herd.Metrics, emit func(float64, string)) { emit(f(m), "") }
}

// each reads one series per name of a fixed list of reasons or kinds.
func each(names []string, f func(m *herd.Metrics, i int) uint64) func(*herd.Server, *herd.Metrics, func(float64, string)) {
	return func(_ *herd.Server, m *herd.Metrics, emit func(float64, string)) {
		for i, name := range names {
			emit(float64(f(m, i)), name)
		}
	}
}

// perLink reads one series per link, labelled with the neighbour's name.
func perLink(f func(l *herd.LinkMetrics) float64) func(*herd.Server, *herd.Metrics, func(float64, string)) {
	return func(_ *herd.Server, m *herd.Metrics, emit func(float64, string)) {
		for i := range m.Links {
			emit(f(&m.Links[i]), m.Links[i].Peer)
		}
	}
}

// Histogram buckets, in seconds. Places: from the offline provider's tenth of a millisecond to
// past the default 5 s timeout. Loop lag: from an idle loop's few microseconds to a loop that
// is seconds behind.
var (
	placesBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	lagBuckets    = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// collector exports families for one server.
type collector struct {
	s     *herd.Server
	descs []*prometheus.Desc // by index in families
}

func newCollector(s *herd.Server) *collector {
	c := &collector{s: s}
	for _, f := range families {
		var labels []string
		if f.label != "" {
			labels = []string{f.label}
		}
		c.descs = append(c.descs, prometheus.NewDesc(f.name, f.help, labels, nil))
	}
	return c
}

// Describe implements prometheus.Collector. Any goroutine.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads every family's atomics now. Any goroutine.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.Metrics()
	for i, f := range families {
		d := c.descs[i]
		f.read(c.s, m, func(v float64, label string) {
			if f.label == "" {
				ch <- prometheus.MustNewConstMetric(d, f.kind, v)
			} else {
				ch <- prometheus.MustNewConstMetric(d, f.kind, v, label)
			}
		})
	}
}

// counters returns the values of the families without a peer label, for /status: single
// series by name (without "herd_"), labelled ones by name and label value.
func counters(s *herd.Server) (single map[string]float64, labelled map[string]map[string]float64) {
	single = make(map[string]float64)
	labelled = make(map[string]map[string]float64)
	m := s.Metrics()
	for _, f := range families {
		if f.label == "peer" {
			continue
		}
		key := f.name[len("herd_"):]
		f.read(s, m, func(v float64, label string) {
			if f.label == "" {
				single[key] = v
				return
			}
			if labelled[key] == nil {
				labelled[key] = make(map[string]float64)
			}
			labelled[key][label] = v
		})
	}
	return single, labelled
}
