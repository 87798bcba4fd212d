// Package admin is a herd server's admin listener: what an operator reads, served with
// net/http on goroutines of its own, off the server's event loop.
//
//	/metrics        Prometheus text format: the server's counters, two histograms, Go runtime stats
//	/healthz        200 while the server's loop runs
//	/readyz         200 once the server listens with every link up, else 503 and why
//	/status         JSON in the manner of NATS's /varz (Status)
//	/               a live status page: the herd's topology, counters, links, recent updates
//	/debug/pprof/   net/http/pprof
//
// # Reading without slowing the loop
//
// The loop's counters are atomics (herd.Metrics) that a scrape reads when it comes: the loop
// pays one uncontended atomic add per event and nothing per scrape. What only the loop holds
// (its links' addresses and state, the last herd.RecentUpdates records stored) is copied out
// by the loop when /status asks (herd.Server.Snapshot): a closure posted to the loop, whose
// answer the handler waits for at most 2 s. The two histograms are
// prometheus.Histograms, whose Observe takes no lock: the Places call durations are observed
// on the loop (herd.Server.SetPlacesObserver), the loop lag by the probe goroutine.
//
// # Decisions
//
//   - One listener, registry and probe per server, so that several servers in one process
//     (herd run) each export their own series; every series carries the label server=NAME.
//     The Go runtime and process series are the process's, repeated under each server.
//   - Loop lag: every 100 ms a probe is posted to the loop (herd.Server.LoopLag) and the time
//     from the post to its run is observed; nothing is measured per request. A stuck loop
//     holds the probe, so probes do not pile up, and /readyz reports a loop that has not
//     answered for 3 s.
//   - /healthz says the process serves: 200 until the server's loop has ended. /readyz says
//     the server should get traffic: it listens, is not shutting down (503 from the moment a
//     graceful stop begins, so a load balancer drains it), answers its probes, and every link
//     to a neighbour is up; the 503 body names the links that are down.
//   - /status shows the config without secrets: the Places key is left out (key_set says
//     whether one is set) by listing what goes in, and so are the user info and query of
//     the Places URL; limits and log settings are shown whole.
//     Its counters come from the same table as /metrics (families), so a counter added there
//     shows in both.
//   - The status page is one HTML file embedded in the binary, with inline CSS, JavaScript
//     and SVG and a Content-Security-Policy that forbids anything else, so it works offline.
//     It fetches /status every second (a relative URL, so it works behind a path prefix). It
//     draws every server of the config on a circle and every link of the config: this
//     server's links green (up) or dashed red (down), the others grey, since this server
//     knows only its own. Client IDs are any bytes a client sent: the page puts text in with
//     textContent only.
//   - No authentication and no TLS: the listener is off unless admin_addr is set, and is
//     meant for loopback or a private network; pprof and /status tell much about the process.
//   - Bounded: at most 12 connections at once (more wait in the kernel's backlog until one
//     closes), within the 16 descriptors the server's file budget reserves for its admin
//     listener; a request must arrive within 10 s (headers in 64 KiB); idle connections are
//     closed after 30 s. Only GET and HEAD are served (405 otherwise). Responses have no
//     write deadline, so that a CPU profile of 30 s can be taken.
package admin
