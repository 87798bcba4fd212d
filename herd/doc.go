// Package herd is the proxy herd server of SPEC.md: clients say where they are (IAMAT), servers
// flood what they learn to their neighbours (AT), and any server answers what is near a client
// (WHATSAT) through a Places provider.
//
// # One loop per server
//
// A Server owns one reactor.Loop, and everything it knows belongs to that loop: the record
// Table, the client connections, the links to its neighbours and the Places requests in flight.
// Nothing is locked and no connection has a goroutine. Places calls run on the loop's executor
// (reactor.Go) and their completions come back to the loop. The only other goroutines are the
// log writer (one per server, see LogWriter) and what the reactor and the Places client run.
//
// # One request core
//
// What a line means is decided in one place, Core.Handle, which knows nothing of sockets: it
// takes a line, its receive time and its Origin (a client, a neighbour's host on the client
// port, a link once its hello is done) and returns the reply and the Action that follows (store
// and flood, ask Places, close after the reply, abort, nothing). The client connections and
// the links of this package, and the goroutine-per-connection baseline (bench/baseline),
// frame their input with codec.Decoder and call it, and do what it says in their own I/O
// model; so they answer every line alike, and a new kind of origin changes Core alone.
//
// # Decisions
//
// Where SPEC.md leaves a choice, this package makes these:
//
//   - Records. Table.Apply is the only place where "newer wins" is decided (codec.Newer): client
//     IAMATs, neighbours' AT lines and resyncs all go through it, and only what it reports as
//     changed is flooded. The reply to an IAMAT always describes that IAMAT, stored or not.
//   - Clock skew. A client time more than limits.max_clock_skew (default 1h) ahead of the
//     receiving server's clock is refused (Core, for every front end): an IAMAT gets "?"
//     (counted as clock_skew), a neighbour's AT line is dropped, counted
//     (herd_updates_refused_total{reason="clock_skew"}) and logged at WARN, never stored or
//     flooded. Without it one IAMAT with a far-future time held that client's record on every
//     server for good, every real update being older, and a resync carried it back to a
//     restarted server. Past times stay valid: a phone that was offline reports late. An hour
//     covers any clock a phone keeps by the network; 0 turns the check off.
//   - Record bounds. limits.max_records (default 1,000,000) and limits.max_record_bytes
//     (default 512MiB; each record counted by RecordBytes, at least the heap it holds: about
//     390 bytes for a record of a 98-byte line, 370 held) bound the table. Past either, the
//     record with the oldest client time is evicted (at equal times the one codec.Newer ranks
//     lower): the rule every server applies alike, so servers that hold the same records
//     evict the same ones, and an evicted record leaves its bucket's digest, so an in-sync
//     resync still sends nothing. A record that would itself be the oldest is not stored
//     (herd_updates_refused_total{reason="table_full"}): otherwise it would evict itself.
//     Each update costs O(log n) more (a binary heap by client time; about 20 steps at a
//     million), nothing is scanned. Servers with different bounds disagree on what the
//     smaller one evicted: each resync sends those records again and the smaller one drops
//     them again; give the servers of a herd the same bounds.
//   - TTL. records.ttl (off by default) drops records whose client time is older than it,
//     on the server's clock: they are not stored when they come (an IAMAT still gets its AT
//     reply, as for any update not stored), not answered (a WHATSAT gets "?"), not sent in a
//     resync and not written in a snapshot, so they do not come back; they leave the table
//     within a second (a loop timer expires 4,096 a pass, oldest first).
//   - Snapshots ([store] path, off by default): see store.go for the file. A server loads its
//     snapshot before it listens (each record checked as a neighbour's AT line is, so the
//     skew, the TTL and the bounds apply), writes one at most once a second while records
//     change, off the loop (the loop copies whole digest buckets into two 256 KiB buffers in
//     turn, which the server's snapshot goroutine checksums and writes: the copy goes no
//     faster than the disk), and a last one once its loop has ended at a stop. A snapshot is
//     written to <Name>.snap.tmp, fsynced, renamed and the folder fsynced. A SIGKILL loses
//     what changed in the last second and while the last snapshot was being written; a clean
//     stop loses nothing. A damaged record (checksum) or a torn end is reported at WARN and
//     in the metrics (herd_snapshot_bad_lines, herd_snapshot_torn); the server starts with
//     what it read and the resync of its links gives back the rest. A write that fails is
//     logged once, counted and retried every second; the previous snapshot stays. Cost: the
//     copy and the write of every record each second while records change (a million
//     records, about 100 MB: a few tens of milliseconds of the loop's time in 256 KiB pieces).
//   - AT lines from neighbours are stored and flooded in canonical form: their six fields
//     joined by single spaces, whatever white space the sender used (SPEC §2), so every WHATSAT
//     reply carries a canonical AT line and "newer" compares canonical lines.
//   - Links: see Links below. The floods of a loop round's client reads are gathered per link
//     and written at the round's end (the pass after the round's I/O, Server.flushAtPassEnd),
//     in one write per link, and the replies of the reads that flooded wait for them:
//     clientConn.flushOut calls Server.flushLinks first. So a client that has read its AT
//     reply finds its update at every neighbour whose link is up, since the flood was in the
//     neighbour's socket before the reply was in the client's. (It is certain on one host;
//     across a network the two take different paths, and a link whose write buffer is not
//     empty holds the flood back.) A read that floods nothing is answered at once. A link's
//     read relays what it applied at its end, in one write per other link. An update
//     is not flooded back on the link it came from. A link whose unsent bytes pass
//     max_link_unsent is aborted and redialled, and the resync of its next connection
//     repairs what was dropped; it counts as down at once: its resync stops and no more
//     floods are queued on it. Metrics.LinkOverflows counts each drop once.
//   - Reply order. Each connection has a queue of reply slots. Replies that are ready when the
//     queue is empty are gathered during one read and written in one write; behind a WHATSAT
//     waiting on Places, later replies wait in their slots, and the completion writes every
//     reply that became ready in one write. A WHATSAT reply (the AT line held when the request
//     was read, the cut body, the blank line) is always one write.
//   - WHATSAT. The stored location text (with its sign) and the radius in metres
//     (codec.AppendRadiusMetres) make the request and its key: identical requests in flight
//     are made once, by the loop (the only place that coalesces; providers do not), and the
//     cache (places.cache_ttl, off by default; one per process, shared by the servers of a
//     herd) is read on the loop, so a cached answer never waits for a worker. Every provider
//     answers a full page of up to 20 places, whatever the bound (google-v1 asks for 20), so
//     one answer serves WHATSATs of any bound, each cut to its own. A body that codec cannot cut
//     is replaced by an UNKNOWN_ERROR body, except a JSON object without "results" that
//     carries a "status" (an error body Google may send): it passes through as sent (SPEC §4).
//     A provider that returns no body at all gets an UNKNOWN_ERROR body too. A body is scanned
//     once: the google provider indexes it in the scan that checks it (places.Indexer; the
//     server indexes other providers' bodies itself), and every bound is cut from that index
//     (codec.PlacesIndex), so a shared call serving several bounds costs one scan. The cut for
//     the first WHATSAT's bound is made off the loop; the loop only copies. The body is given
//     back (places.Recycle) once cut, unless the cache keeps it.
//   - Receive time. A line's receive time (the server's side of its skew) is the time the
//     loop began to handle the read that brought it (reactor.Loop.EventTime): the lines of one
//     read share it, and one clock read serves them, their deadlines and their log records.
//     (With a clock given to the server, WithClock or WithLoopClock, that clock's time.)
//   - Places pool. Calls run on the server loop's executor (reactor.GoWith): at most
//     places.workers at once, on worker goroutines started on demand and kept; the rest wait
//     in the loop's queue at no goroutine each. The queue is fair: each connection's calls
//     wait in order, and connections take turns (reactor.JobOptions.Key), so one client's
//     thousands of WHATSATs delay another client's by one call, not thousands (a client
//     behind 15,000 queued WHATSATs of another is answered in 40 ms, TestWHATSATFairAndOnTime).
//     Each call has a deadline of places.timeout from its WHATSAT's arrival, kept by a loop
//     timer from then on: a call still queued then is answered with an UNKNOWN_ERROR timeout
//     body without being made, and one still running is answered so too (its ctx is
//     cancelled, its late answer dropped). So every WHATSAT is answered within places.timeout
//     of its arrival plus the loop's lag (how late the loop runs a timer: microseconds when
//     idle, tens of milliseconds when thousands of WHATSATs expire at once), however long the
//     queue and whatever Places does. The default size depends on the provider: 1,024 for
//     google and google-v1 (Little's law: 20,000 calls/s x 50 ms), GOMAXPROCS for offline,
//     whose calls are all CPU. Servers of one process (herd run) do not share a pool: each
//     loop owns its queue, without a lock, so each server has places.workers of its own;
//     workers start only when calls need them, so the default herd of five offline servers
//     has at most 5 x GOMAXPROCS, never 5 x 1,024. At a stop, queued calls are dropped and the
//     loop waits for running ones, which end within places.timeout (fasthttp cannot abandon a
//     call in flight).
//   - Pending WHATSATs. limits.max_waiting (default 16,384) bounds the WHATSATs waiting for
//     Places in a server, all clients together (the executor's queue is bounded by it too): a
//     WHATSAT past it is answered at once, in its turn on its connection, with an
//     UNKNOWN_ERROR body saying the server is busy, and counted as the Places error kind
//     "busy". A WHATSAT waiting costs about 0.7 KB of heap (its slot with a copy of the AT
//     line, its share of the Places call, the executor's job and its deadline timer; 1 KiB
//     is the bound TestPendingWHATSATMemory holds it to), against 1.75 KB when each slot
//     reserved 1 KiB for the body: max_waiting x 1 KiB = 16 MiB per server at most.
//   - Client IDs (ValidClientID, in the Core): 1 to 256 bytes of UTF-8 without control
//     characters (Unicode's Cc: C0, DEL, C1), so any printable ASCII and text in any script.
//     A server stores a client ID, floods it to every neighbour and echoes it to whoever asks
//     WHATSAT about it, and writes it in its log: NUL, escape sequences and bytes that are
//     not UTF-8 would travel the whole herd to land in terminals and parsers. An IAMAT or
//     WHATSAT with any other client ID gets "?" (counted as bad_client_id), as does an AT line
//     from a neighbour's host; on a link such a line is ignored. The goroutine baseline shares
//     the Core, and the Python baseline (bench/asyncio/server.py, check_client_id) applies the
//     same rule.
//   - Invalid lines get "? <line>"; then no later line of that connection is processed, the
//     replies owed before it are written in order, and the connection is closed once they and
//     the "?" line are written. A line over max_line gets "? " and its first 64 bytes, the same.
//     An empty line is invalid too.
//   - Line limits. max_line bounds IAMAT and WHATSAT lines (and any line not starting with the
//     field "AT"); AT lines may be codec.ATOverhead (128) bytes longer, since an IAMAT of
//     max_line bytes makes an AT line that much longer ("AT ", a name of at most MaxNameLen
//     (64) bytes, the skew): neighbours must take it, or a long IAMAT would close links
//     for ever. Server names longer than 64 bytes are a config error. Which limit applies is
//     decided by the first field (codec.LineLimit); bytes held before it has arrived count
//     against the larger limit, so the answer does not depend on how the stream was cut.
//   - Link faults. SetLinkFault (on a Server, or on a Herd for both sides of a link) cuts a
//     link (aborted, the neighbour's connections refused, no redial) or makes it drop what
//     this side sends, until healed; healing redials a cut link at once, and closes and
//     redials one that dropped, whose new connection resyncs. Partition tests use it instead
//     of stopping servers; it is logged at WARN, so a drill shows in the logs.
//   - Half-close. After a client half-closes, a last line without "\n" is still a line; the
//     connection stays open until every reply owed is written, then the server closes it.
//   - Limits. A client whose unread reply bytes (the transport's buffer plus the replies queued
//     behind a WHATSAT) pass max_unsent is cut off: aborted, with a log line saying why. All
//     the clients of a server together may leave max_unsent_total (default 256MiB) unread:
//     past it the client with the most unsent bytes is cut off, then the next, until the sum
//     is below it (the sum kept at each flush can only be too high, since buffers drain
//     unseen, so it is counted again exactly, at most once a loop pass, before anyone is cut).
//     Cutting the worst reader was chosen over making new replies wait: a wait would hold
//     every client's replies for the one that does not read, and what waits is memory too. One
//     that has more than max_pending WHATSATs waiting is cut off too, but it reads: the
//     replies already made, in order, are written first and the connection is closed once
//     they are out (the WHATSATs still waiting are dropped). A connection over max_clients is accepted
//     and closed at once, with a log line, unless it comes from a neighbour's host and there
//     are fewer than max_clients + (number of neighbours) connections: so idle clients cannot
//     keep a plain neighbour's connections out (links are on the peer port, see Links). On a loopback herd every local connection is from a
//     neighbour's host, so there any connection may use that room. Memory per client is
//     therefore bounded by max_line + max_unsent plus the WHATSATs it may have waiting (at
//     most max_pending, and max_waiting for the server). The README's "Guarantees and limits"
//     adds them up.
//   - Replies made ready by Places completions are written at the end of the loop's pass
//     (reactor.Loop.CallAtPassEnd, as redis writes its clients' output in beforeSleep): the
//     completions of one pass for one client leave in one write.
//   - Deadlines for slow clients. limits.idle_timeout (default 5 min: a phone that reports
//     its place every few minutes keeps its connection, one dropped without a FIN goes within
//     minutes) closes a client that has sent nothing for that long and is owed no reply.
//     limits.line_timeout (default 30 s: far more than a line of a few hundred bytes takes on
//     the worst mobile network, far less than a slowloris needs) bounds how long a line may
//     take from its first byte: one not finished in time gets "? " and its first 64 bytes (as
//     a line too long does), and the connection is closed once the replies owed before it are
//     written. 0 turns either off. One timer per connection, on the loop's clock: a read only
//     notes its time, and the timer, when it fires, closes the connection or re-arms itself
//     for the earliest deadline left; it is moved earlier only when a line begins and would
//     otherwise be checked too late (at most once per line_timeout). The only exemption is a
//     connection on the client port that has sent an AT line that was applied (a plain
//     neighbour's, such as a Python server's): a connection from a neighbour's host that has
//     not (on a loopback herd, any local connection) is a client like any other. Links, on
//     the peer port, are not client connections: these deadlines do not apply to them. The
//     rule is one flag on the connection (sentAT).
//   - Open files. Each client is a file descriptor, and so is every other thing a server
//     holds open. cmd/herd raises the soft RLIMIT_NOFILE to the hard limit at start, and the
//     limit is shared out once per process (FileBudget, NewHerd): 64 for the process, 16 per
//     server (its two listeners, gnet's pollers, the waker, its log file, connections on
//     their way from the acceptor to the loop), 16 more with an admin listener, 2 per
//     neighbour (its link, and a second connection while a simultaneous dial is settled or
//     a plain neighbour's connection on the client port), and places.max_conns for a remote provider (one
//     client per process, shared by its servers, so its default is places.workers for each
//     of them: no call waits for a connection; fasthttp's connections per host are capped at
//     it). What is left is split between the servers, each keeping a headroom of an eighth
//     of its share (at least 64) for the connections it accepts over max_clients only to close
//     them; its max_clients is lowered to the rest. If places.max_conns is more than half of
//     what the process may open, it is lowered to half. cmd/herd says so in one line
//     ("max_clients lowered from ... to fit the open file limit"), each server's log at WARN.
//     Should the limit be met all the same (a burst faster than the server closes what it
//     refuses, another program's descriptors), accept backs off and retries
//     (reactor.Loop.AcceptErrors counts it): the server never stops for it, and serves again
//     once descriptors are free.
//   - Shutdown (SIGINT/SIGTERM in cmd/herd) stops taking clients and links: the listeners
//     (client and peer ports) are closed (reactor.Loop.CloseListeners: the reactor binds and
//     accepts on its own listeners, so this works everywhere), and new connections are
//     refused. No more redials, and no more lines read: what clients send after
//     the stop began is discarded unanswered, so the stop has an end (a request half read is
//     dropped too). Clients owed nothing are closed; the others are closed after their last
//     reply (a WHATSAT waiting on Places included). Once no client is left the links are
//     flushed and kept open for 100 ms (linkSettle), still reading and relaying, so that
//     servers stopped together pass on the floods in flight between them and each last
//     snapshot holds every update; then their write sides are shut, and each is closed when
//     the neighbour closes too, or 100 ms later (link connections still in their hello are
//     aborted at once). The loop runs
//     on (reactor.Loop.Shutdown) until every connection is closed and its peer has taken
//     every byte, slow readers included: a client that sent
//     more than the server read gets the end of stream after its last reply, and its socket is
//     drained, never reset, while it reads. When the grace period (Shutdown's context; herd
//     -grace, default 10s) ends first, what is left is dropped and the log says so at WARN
//     ("grace period over: replies not delivered", with conns, bytes, and whatsats never
//     answered); Shutdown returns an *UnsentError and cmd/herd exits 3.
//   - Config. Missing keys take their defaults (see Limits and DefaultConfig). places.provider
//     defaults to "google" when a key is set (in the file or GOOGLE_PLACES_API_KEY) and to
//     "offline" otherwise. Links named on one side only are completed, not rejected. Unknown
//     keys, duplicate or white-space names, unknown peers, self links, bad addresses, durations
//     and limits are errors (*ConfigError) that name the file, the line and the key. A value
//     of the wrong type is named by its key too (server[1].name: want a string, got an
//     integer), every one of them, not only the first. A duration or a size needs its unit
//     ("5s", "100MiB"): a bare number is an error (0 excepted), since the toml package would
//     take "timeout = 5" as 5 nanoseconds. Relative paths (log.dir, the default "logs"
//     included, and places.dataset) are resolved by LoadConfig against the config file's
//     folder, so a config means the same from any working directory. A Places setting the
//     provider rejects names its key (places.url, places.key, ...), from places.ConfigError.
//     peer_addr defaults to addr's host and port + 10000 (port 0 stays 0); a port past 55535
//     without peer_addr is an error that says to set it. Two listening addresses (client,
//     peer or admin, of any servers) that would share a port on one interface of one
//     machine are an error; a server's machine is its addr's host, one unspecified or on
//     loopback being this machine (so each server of a multi-host herd may listen on its own
//     ":13000" or 127.0.0.1:13000); port 0 never clashes. max_link_unsent
//     below MinLinkUnsent(max_line) is an error that names the minimum. links.secret_file,
//     relative, is read from the config file's folder too.
//   - Datasets. An offline dataset file skips the features that are not named Points, or
//     have coordinates out of range or fields of the wrong type (an OpenStreetMap export has
//     many), and each server logs how many at start ("places dataset loaded"); a file with no
//     place at all is a config error.
//   - Logs: one file per server, <log.dir>/<Name>.log, appended to, rotated by size; or
//     standard error for log.dir "-"; see Logs below.
//   - Observing. Metrics are atomics the loop adds to, so any goroutine reads them without
//     a lock: the Core counts every line by its command (a line that does not parse, by
//     its first field) and every "?" reply by reason; refusals, cut-offs and Places errors
//     are counted by reason, and each link has its own LinkMetrics. What only the loop
//     holds (links, the last RecentUpdates records stored, kept in a ring whose buffers are
//     reused) is copied out by the loop when Snapshot asks. The admin listener (package
//     herd/admin, admin_addr) serves them.
//
// # Links
//
// Each server listens on two ports: its client port (addr) and its peer port (peer_addr,
// by default the client port + 10000, as Redis Cluster's bus). Neighbours dial the peer
// port, so that no process but a server itself holds a socket on its client port (a grader
// that kills "whoever holds port 12000" kills that server alone). There is one link per
// pair of neighbours, used both ways, as NATS routes: floods and resyncs flow over it in
// both directions, whichever side dialled it.
//
// The hello. The dialling side's first line is
//
//	HELLO 1 <its name> <the name it dials> <instance> <nonce>
//
// (codec.ParseHello: link protocol version 1, an instance of 16 hex digits that names the
// process and changes at each start, a nonce of 32 hex digits fresh for the connection).
// The accepting side answers with its own HELLO (with a proof when the herd has a secret,
// see Authentication). A HELLO from a server that is not a neighbour, of another version,
// meant for another server, or any other first line, is refused: an ERR line saying why
// goes to the peer, a WARN record to the log (Metrics.LinkRefusals), and the connection is
// closed. The hello must finish within dial_timeout; at most 64 accepted connections may be
// in their hello at once (more are closed at once), so idle connections to the peer port
// cannot hold a server's descriptors.
//
// One link per pair. Both neighbours dial each other, so two connections may finish their
// hello at the same moment. Between the same two processes (the instances in the hellos
// match) the connection dialled by the server whose name sorts lower (byte-wise) is kept,
// and the other closed; both sides apply the rule, so they keep the same one whichever
// finished first. Of two dialled by the same side, the newer is kept. A connection from
// another instance of the neighbour (it restarted) replaces the old one at once. The side
// whose dial will be kept does not even answer the other's HELLO while its own dial is under
// way (link.park): it closes that connection once its own is up, or answers it if its own
// dial fails, so that simultaneous dials (a healed partition, two servers started together)
// bring up one connection and start one resync, not two with one of them cut halfway.
//
// Instant relink. A server dials every neighbour as soon as it listens. After a failure
// it redials with exponential backoff and full jitter: the n-th retry waits a random time
// in (0, min(backoff_cap, backoff_base*2^n)], so the first comes within backoff_base
// (100 ms); the count restarts when a link that stayed up longer than backoff_cap goes down.
// A server that accepts a link from a neighbour uses it at once and drops its own backoff
// toward it, so a restarted server has its links and its resyncs within milliseconds of
// listening on a healthy herd (BenchmarkRestartRelink, loopback, two busy cores: 3 to 7 ms
// to its three links, 4 to 12 ms to their resyncs done; the neighbours' backoff plays no
// part).
//
// Names in addresses. A host name in addr or peer_addr is resolved when the server starts
// and again at each dial, off the loop, within dial_timeout (each address it resolves to is
// tried in turn), so a Kubernetes headless Service works; the addresses resolved at the
// latest dial are the neighbour's host for AT lines on the client port. A neighbour on an
// unspecified address is dialled on 127.0.0.1 and counts loopback as its host.
//
// Resync. When a connection becomes a link's, both sides send the digest of their records
// (Table.Digest: 4096 buckets of summed hashes, only the non-empty ones) and compare it with
// the other's. For each bucket whose digests differ, a side whose bucket the other lacks
// entirely sends it whole; where both hold records, each sends (client, time, hash)
// summaries of its bucket and answers the other's with the records the other lacks or holds
// older (or, at equal times, holds in another form; Apply decides). Each side ends with
// "DONE <records sent>", and the resync is done when both have (Metrics.ResyncsDone, a
// "resync done" record with what each side sent). Servers already in sync send no record
// (4096 digests at most, about 90 KiB for a million clients), and one record that differs
// is found and sent alone, after the summaries of its bucket (about 250 for a million
// clients); BenchmarkResyncMillion: two servers of a million records each, one differing,
// resync in 20 to 70 ms with 290 KB on the wire. Everything is written in chunks of 64 KiB,
// one per loop pass, and only while the link's write buffer is below its high mark
// (PauseWriting stops it, ResumeWriting resumes it); the mark is 256 KiB, lower when
// max_link_unsent is small, so that a resync cannot trip max_link_unsent itself: a resync
// and the floods of one read stay below the limit by a chunk. Floods meanwhile go out as
// usual (order does not matter: newer wins); records that change after a side took its
// digest reach the other by flood. A neighbour that sends more than 65536 summaries for one
// bucket, or a malformed resync line, loses its link.
//
// Authentication (off by default). With links.secret (or links.secret_file, or the
// HERD_LINK_SECRET environment variable; at least 16 bytes), the accepting side's HELLO
// carries a proof, and the dialling side answers with "AUTH <proof>". A proof is the
// HMAC-SHA256, under the secret, of both names, both instances, both nonces and the
// direction ("accept" or "dial", so that neither proof can be reflected as the other), in
// hex. The secret never goes on the wire; each side's fresh nonce makes every proof good
// for one connection, so a replayed HELLO and AUTH fail. A link is taken only once the
// proof checks; an AT line (or anything) before that is refused. With a secret, AT lines
// are accepted on authenticated links only: on the client port they get "?", from any host.
// Authentication proves who opened a link; it does not encrypt it or protect it from a
// host on the path that can rewrite the stream: use a private network or a tunnel for that.
// Without a secret the hello carries no proof, and AT lines are also accepted on the client
// port from a neighbour's host (SPEC §5), so that herds mixed with plain servers work.
//
// Plain peers. A server marked link = "plain" or "plain-per-message" in the config is one
// of another implementation, of the seed's design (the Python prototype): it has no peer
// port and speaks no hello. It is dialled at its client address, sent bare AT lines in
// this project's form (six fields, whatever it sent), and sent every record when the link
// comes up (it cannot take a digest). Its own AT lines come on this server's client port
// from its host, on one connection per message or a persistent one, as it pleases, or on
// the connection this server dialled. From a plain peer, and from it alone:
//
//   - the time difference may be in any form Python prints a float in ("+1.1e-05", "0.5",
//     "-3.0", "1e-05", "+0.001401662826538086": codec.Python); the stored line keeps it as
//     sent, so WHATSAT answers with the originating server's bytes (in canonical white
//     space);
//   - names after the six fields (some Python herds append their own, or those of every
//     server a line passed through, to stop loops) are accepted and dropped: the record
//     is the six fields, applied and flooded by the usual rules, and the line is counted
//     (LineCounts.Extra, herd_plain_extra_fields_total). From any other neighbour such a
//     line is still refused: "?" on the client port, ignored on a link;
//   - whatever else it sends on a connection this server dialled (acknowledgements, text
//     with no newline, more than the line limit without one) is discarded and counted
//     (LinkMetrics.Discarded, herd_link_discarded_lines_total); a line over the limit is
//     skipped to its newline (codec.Decoder.SkipLine). None of it ever drops the link.
//
// Which connections on the client port are a plain peer's is decided by their host: a host
// where a plain peer listens (its addr) is read in the Python dialect, even if another
// neighbour shares it (on a loopback herd, every local connection). Those connections are
// also clients: their IAMATs and WHATSATs are answered, and anything invalid gets "?".
//
// One connection per message. A server of the seed's design often reads one line from a
// connection and closes it, as its prototype opens a connection for each flood: over a
// persistent link it keeps the first line, and every flood sent while the link is
// redialled is lost. A peer marked link = "plain-per-message" is sent each line on a
// connection of its own, with at most 8 open or being dialled at once, the rest queued in
// order (msgTransport: the queue is the link's unsent bytes, so it is bounded by
// max_link_unsent and paces the resync as a socket's buffer does). Each connection writes
// its line, shuts its write side, reads and discards what the peer answers until the peer
// closes or 500 ms have passed, and closes; the loop never waits on any of them. The link
// is up once a first connection is made; a connection that fails (refused, reset, timed
// out) is counted (LinkMetrics.SendFailures) and takes the link down, so that the usual
// backoff applies to the redial and its resync sends every record again, making up for
// the line lost and for a peer that restarted empty. That resync costs a connection per
// record: eight at a time, a table of 10,000 clients takes about as many round trips to the
// peer as 1,250 one after the other. When this server stops, lines still queued for
// connections not yet made are dropped (the peer gets every record again when the server
// is back).
//
// A plain peer cannot authenticate. With links.secret set, AT lines are taken on
// authenticated links only, so a config with both a secret and a plain peer is an error
// that names the peer and the conflict, rather than a herd that silently ignores the plain
// peer's updates or takes AT lines from anyone on its host.
//
// # Logs
//
// Each server logs every line in and out, connections opening and closing, floods, links up
// and down, Places calls, answers and failures, one record per line in slog's text form (or its
// JSON form, log.format = "json"). A line and the reply made to it at once share one record
// ("reply", with "in" and "out"); a line answered later (WHATSAT) or not at all (a neighbour's
// AT line) has an "in" record, and the later reply an "out" record:
//
//	time=2026-11-26T05:29:02.123Z level=INFO msg=reply server=Hill conn=12 in="IAMAT kiwi +34.1-118.4 1621464827.9" out="AT Hill +0.263873386 kiwi +34.1-118.4 1621464827.9"
//	time=2026-11-26T05:29:02.124Z level=INFO msg=in server=Hill conn=12 in="WHATSAT kiwi 10 5"
//	time=2026-11-26T05:29:02.180Z level=INFO msg=out server=Hill conn=12 out="AT Hill +0.263873386 kiwi +34.1-118.4 1621464827.9" bytes=2711
//
// Lines are quoted with only the quote, the backslash, control bytes and bytes that are not
// UTF-8 escaped (\", \\, \t, \r, \xNN): every other byte is copied as it is, and a line of
// printable ASCII (almost every line) is checked eight bytes at a time. The frequent records
// are appended by hand on the loop into one buffer per server, each stamped with the time its
// event began (one clock read per read of a connection, however many lines it held; records of
// one event share it, to the millisecond); the fixed part of a record ("level=INFO msg=reply
// server=Hill") is made once. The buffer goes to the log's writer goroutine over a bounded
// queue once it holds 64 KiB, or 10 ms after its first record, whichever comes first: at full
// load one hand-off and one write(2) per 64 KiB (some 300 records), and nothing per loop pass.
// So a record reaches the file at most about 10 ms after its event, and a record written off
// the loop (slog's, from another goroutine) may precede loop records up to 10 ms older. When
// the queue is full (the disk cannot keep up) the batch is dropped and its records counted
// (LogWriter.Dropped; the count is in the "stopped" record): logging never blocks the loop.
// log.level = "off" (or log.dir = "off") turns logging off, for benchmarks.
//
// The traffic records (every line in and out) are at INFO, the default level, as the course
// asks; "warn" keeps the faults only. A connection that closes without sending a byte (a health
// probe, a port scan) writes nothing at INFO: its "open" record is written when its first
// bytes arrive, and a connection that never sent one gets a single DEBUG record ("close
// without data") when it closes.
//
// Files are rotated by size, log.max_size (default 100MiB) with log.max_files (default 10)
// rotated files kept, through lumberjack, so a server's logs have a bound on disk by default.
// log.max_size = 0 leaves rotation to logrotate: Server.ReopenLog (SIGHUP in cmd/herd) has the
// writer's goroutine flush and reopen the file at its path between two batches, off the loop,
// so each record is whole in the old file or the new one. With log.dir "-" the servers share
// standard error; every write the writer makes holds whole records, so their lines never mix.
// JSON records keep one type and one form per field: the time as in the text form (RFC 3339,
// milliseconds), addresses and other Stringers as text, durations in nanoseconds.
package herd
