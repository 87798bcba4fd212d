// Package result is the JSON shape of one load generator run (`loadgen -json`), shared by the
// load generator that writes it and the harness that reads it. The Places path clients
// (bench/placespath, in Go, Python and Node.js) print the same shape.
//
// Times are in microseconds (float64) unless a field's name says otherwise. The zero value of
// every type is an empty result.
package result

import "github.com/HdrHistogram/hdrhistogram-go"

// Result is one run of the load generator. Fields that do not apply to a scenario are zero
// and omitted from the JSON.
type Result struct {
	Scenario string   `json:"scenario"`
	Targets  []string `json:"targets"`
	Conns    int      `json:"conns"`
	Pipeline int      `json:"pipeline,omitempty"`
	// Rate is the open-loop total request rate per second; 0 for a closed loop.
	Rate     float64 `json:"rate,omitempty"`
	Seconds  float64 `json:"seconds"`        // the measured window, after the warm-up
	WarmupS  float64 `json:"warmup_seconds"` // excluded from every figure
	Requests uint64  `json:"requests"`       // sent during the window
	// RequestsAll counts every request sent in the run: the warm-up's, the window's, those
	// that prime a WHATSAT load and those after the window. A server's counters read before
	// and after the run are divided by it.
	RequestsAll uint64 `json:"requests_all"`
	Replies     uint64 `json:"replies"` // complete replies received during the window
	// Throughput is Replies / Seconds.
	Throughput float64 `json:"throughput"`
	// Kinds counts replies by request kind ("iamat", "whatsat", "raw").
	Kinds map[string]uint64 `json:"kinds,omitempty"`

	Errors       uint64            `json:"errors"`
	ErrorKinds   map[string]uint64 `json:"error_kinds,omitempty"`
	ErrorSamples []string          `json:"error_samples,omitempty"`
	Checked      uint64            `json:"checked,omitempty"` // replies verified by -check

	Latency Summary `json:"latency"`
	// ReplyLatency is, for the propagation scenario, the near server's reply latency
	// (Latency is then the propagation time).
	ReplyLatency *Summary `json:"reply_latency,omitempty"`

	// Propagation scenario.
	Sent       uint64 `json:"sent,omitempty"`
	Received   uint64 `json:"received,omitempty"`
	Lost       uint64 `json:"lost,omitempty"`
	Duplicates uint64 `json:"duplicates,omitempty"`

	// Idle scenario: the server's resident set (VmRSS) before and after opening IdleConns.
	IdleConns  int     `json:"idle_conns,omitempty"`
	RSSBefore  int64   `json:"rss_before_bytes,omitempty"`
	RSSAfter   int64   `json:"rss_after_bytes,omitempty"`
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`

	CPU CPU `json:"cpu"`
	// Hists are the run's latency histograms (nanoseconds) by tag ("latency"; "reply" for
	// propagation), as the harness reads them back from loadgen's -hdr-out file. They are not
	// part of the JSON.
	Hists map[string]*hdrhistogram.Histogram `json:"-"`
	// WallS is the whole run's wall time in seconds: connecting, setup, warm-up, the window
	// and the wait for stragglers.
	WallS float64 `json:"wall_seconds"`
}

// Summary holds latency percentiles in microseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// CPU is the load generator's own CPU time (getrusage RUSAGE_SELF) over the whole run.
type CPU struct {
	UserS   float64 `json:"user_s"`
	SystemS float64 `json:"system_s"`
	// PerRequestUs is (user+system) / requests sent, in microseconds. The Places path
	// clients (bench/placespath) give it over the measured window alone, per reply in it:
	// an interpreter's start-up and the warm-up are not a request's cost.
	PerRequestUs float64 `json:"per_request_us"`
}
