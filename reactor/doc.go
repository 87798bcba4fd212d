// Package reactor is an event loop in the manner of Python's asyncio, for Go, on one gnet
// engine with exactly one event loop.
//
// # The model
//
// A Loop owns one goroutine (gnet's event-loop goroutine). Everything the program does on
// the loop runs there, one callback at a time: protocol events of every connection (inbound
// from Listen, outbound from Dial), callbacks given to CallSoon and CallLater, and the done
// callbacks of Futures. State shared only by such callbacks needs no locks. Other goroutines
// reach the loop through CallSoonThreadsafe; blocking work leaves it through Go, whose result
// comes back as a Future completed on the loop.
//
// The names follow asyncio's (CPython Lib/asyncio: events.py, base_events.py, protocols.py,
// transports.py, futures.py):
//
//	asyncio                                  reactor
//	loop.call_soon(cb)                       (*Loop).CallSoon(fn) *Handle
//	  (never cancelled, no allocation)         (*Loop).CallSoonFunc(fn)
//	loop.call_soon_threadsafe(cb)            (*Loop).CallSoonThreadsafe(fn) error
//	loop.call_later(d, cb), call_at          (*Loop).CallLater(d, fn), CallAt(when, fn)
//	Handle.cancel(), TimerHandle.cancel()    (*Handle).Cancel()
//	loop.time()                              (*Loop).Time(), on Options.Clock
//	loop.run_in_executor(None, fn)           Go(l, fn) *Future[T], GoWith (a deadline)
//	Future: result, done, cancel,            (*Future[T]).Result, Done, Cancel,
//	  add_done_callback, set_result            AddDoneCallback, SetResult
//	Protocol.connection_made(t)              Protocol.ConnectionMade(t)
//	Protocol.data_received(data)             Protocol.DataReceived(data)
//	Protocol.eof_received()                  Protocol.EOFReceived() bool
//	Protocol.connection_lost(exc)            Protocol.ConnectionLost(err)
//	Protocol.pause_writing/resume_writing    WriteFlowController.PauseWriting/ResumeWriting
//	Transport.write, writelines              (*Transport).Write, Writev
//	Transport.close, abort                   (*Transport).Close, Abort
//	Transport.write_eof                      (*Transport).WriteEOF
//	Transport.get_write_buffer_size          (*Transport).WriteBufferSize
//	Transport.set_write_buffer_limits        (*Transport).SetWriteBufferLimits (64 KiB, high/4)
//	loop.create_server                       (*Loop).Listen, then Start or Run
//	Server.close (stop accepting)            (*Loop).CloseListeners
//	loop.create_connection                   (*Loop).Dial
//	loop.run_forever / stop                  (*Loop).Run / Stop (and Start, Wait, Done)
//	(http.Server.Shutdown, without waiting)  (*Loop).Shutdown, Unsent
//	loop.set_debug(True)                     Options.Debug (slow callbacks, wrong goroutine)
//
// # One pass of the loop
//
// As in asyncio's _run_once, a pass runs the callbacks that were ready when it began: those
// from CallSoon, those posted with CallSoonThreadsafe, timers whose deadline has passed, done
// callbacks of Futures and ConnectionLost. The pass is the only place where such scheduled
// callbacks run (a protocol's I/O events, DataReceived and the like, run in gnet's callbacks
// for its connection). Callbacks scheduled during the pass run in the next one, after the
// loop has polled its sockets again, so a callback that keeps rescheduling itself cannot
// starve I/O. CallSoon is FIFO; CallSoonThreadsafe keeps the order of each calling goroutine;
// timers run in deadline order (ties in scheduling order) and never before their deadline.
// CallAtPassEnd runs a callback at the end of the running pass, once its callbacks have run
// (redis's beforeSleep): the place to gather what several callbacks produced, one write for
// several replies.
//
// Stopping is passes too. The first pass after Stop tears down: the thread-safe queue closes
// (what it holds still runs), pending timers are dropped, and every transport is aborted, so
// its ConnectionLost(nil) runs in that pass. Later passes run what those callbacks scheduled,
// until nothing is left (at most 1000 passes: a callback that keeps rescheduling itself is cut
// off), and then the loop tells gnet to stop. Nothing runs after the loop goroutine has gone.
//
// Shutdown is the graceful stop, as net/http's Server.Shutdown is: the loop runs on as usual
// while the protocols close their transports, and no socket is closed while its peer is short
// of bytes, so a peer that reads slowly still gets every reply. It stops (as Stop) once every
// transport is lost and every peer has taken all that was written to it: the kernel's send
// queue is empty (SIOCOUTQ) and the write side shut. Stop ends the wait, aborting what is
// left; Unsent says beforehand how much that is, by transport.
//
// CallSoon allocates a Handle (64 bytes) so that the callback can be cancelled; CallSoonFunc
// queues the function alone and allocates nothing once the queue has grown to its working size
// (its backing arrays are reused from pass to pass), for the common callback that is never
// cancelled (bind a method value or closure once and pass it each time). Both share one FIFO
// queue.
//
// The pass is driven by a waker, armed at most once per pass however many callbacks are
// queued. Off the loop, and from callbacks run by a pass, the waker is a socketpair whose one
// end is a gnet connection on the loop and whose other end the loop writes one byte to: three
// system calls (the write, the epoll round that reports it, gnet's read of the byte). From
// I/O callbacks (DataReceived and the like) the pass is posted as one gnet task
// (EventLoop.Execute), which gnet signals on its edge-triggered eventfd and never reads: two
// system calls and one small allocation; the task runs at the end of the epoll round, after
// its I/O events. gnet's task queue carries only that signal, never the callbacks: it runs
// tasks posted by a task in the same round, without polling (which would let a callback that
// reschedules itself starve I/O), and loses FIFO order beyond about a thousand queued tasks.
// On a busy loop a wake-up is shared by every event of the round; a lone request whose reply
// is deferred with CallSoon pays it in full (five system calls instead of three).
//
// # Time
//
// Timers are a binary heap on the loop, ordered by deadline, with one runtime timer set to the
// earliest: CallLater costs O(log n) for n pending timers. Cancel is amortised O(1): the entry
// stays in the heap and is dropped when it reaches the top, but the cancel that leaves more
// than half of the heap dead compacts it in O(n).
//
// The loop reads time from Options.Clock (SystemClock by default): Time, the deadlines of
// CallLater and CallAt, and the lingering close's timeout. A FakeClock stands still until a
// test advances it, so tests of timers, timeouts and backoff are timelines rather than sleeps.
// What waits on the network keeps real time whatever the Clock: Dial's timeout, the half-close
// writer's deadline and the polling for drained write buffers.
//
// # Connections
//
// A Transport wraps a gnet connection. Write copies what the kernel does not take at once;
// PauseWriting is called once when the queued bytes exceed the high-water mark and
// ResumeWriting once when they fall to the low-water mark. gnet has no drain callback, so the
// loop checks paused and closing transports on each pass (O(1) per such transport) and on a
// timer (1 ms, backing off to 32 ms while nothing drains). Close waits for the queue to drain;
// Abort does not. ConnectionLost runs exactly once per transport, in a pass.
//
// A transport's life is one state (transport.go writes out the transitions, as asyncio's
// protocols.py does):
//
//	open -> [eofPending ->] [writeShut ->] [closing ->] lingering [-> draining] -> lost
//	open -> detached [-> detachedClosing] -> lost
//	any -> closed -> lost   (Abort, errors, the peer closing)
//
// Close lingers, like a web server's lingering close: once the queue is sent it shuts down the
// write side (the peer reads end-of-file after the last byte) and schedules ConnectionLost, then
// keeps the socket open, reading and discarding input, until the peer closes, a second passes or
// 4 MiB arrive (Options.LingerTimeout, LingerBytes). Closing a socket with unread input makes
// the kernel send a reset, and the reset can destroy a reply the peer has not read yet: an
// error line to a client that is still sending, for one; the kernel drops its own send queue
// too. While the loop shuts down (Shutdown) a linger that ends with the peer short of bytes
// (the send queue not empty) goes on as draining, reading and discarding, until the peer has
// them all or closes, or Stop; with lingering off, Close drains at once in that case. WriteEOF
// shuts down only the write side (asyncio's write_eof) and keeps receiving.
//
// gnet closes a connection as soon as read returns end-of-file. asyncio lets a protocol keep
// writing after the peer's EOF (EOFReceived returning true), and so does reactor: the transport
// then writes to a duplicate of the socket itself, and if the kernel does not take everything
// at once, one short-lived goroutine writes the rest and closes. That is the only goroutine a
// connection ever gets.
//
// # Accepting
//
// Start binds the listeners given to Listen itself, and one goroutine per listener accepts
// connections and hands each to the loop (gnet's EventLoop.Enroll), where it gets its Protocol
// as any connection does. gnet's own acceptor would end the engine at the first accept that
// fails with EMFILE (gnetgaps.go, gap 4); here a failed accept (EMFILE, ENFILE, ENOBUFS,
// ENOMEM, ...) is counted (AcceptErrors), logged, and retried after a pause, as net/http's
// Server.Serve does: 5 ms, doubling up to 1 s, none again once an accept succeeds. The
// connections that come meanwhile wait in the kernel's backlog, or are refused by the kernel
// when it is full, and the loop serves again as soon as descriptors are free. (A connection
// accepted with the last descriptor, for which gnet's hand-over finds none to duplicate, is
// closed, and the acceptor pauses the same way.) At most 128
// connections of a listener are on their way to the loop at once; beyond that the acceptor
// waits, and the rest stay in the backlog. The pause costs nothing but the wait; the hand-off
// costs a descriptor duplicate, a trip through Go's poller and two goroutine switches per
// connection, which left a burst of 1,000 connects as fast as before (BenchmarkAccept: the
// connecting side is the bound).
//
// # Executor
//
// Go and GoWith run blocking work as asyncio's run_in_executor does on its default
// ThreadPoolExecutor: at most Options.Workers jobs at once (default min(32, GOMAXPROCS+4), as
// asyncio's), on worker goroutines started on demand and kept for the next job, while the
// others wait in a queue that the loop owns, at no goroutine each. The queue is fair across
// keys (JobOptions.Key, a connection say): a FIFO per key, and the keys take turns, so one
// key's thousand queued jobs delay another key's next job by one job, not a thousand. It is
// bounded by Options.MaxQueued: a job beyond it fails at once with ErrBusy. A job cancelled
// while queued never runs; a GoWith deadline is kept from submission to completion: the
// Future completes with ErrDeadline at the deadline if the job has not returned (a queued job
// never runs, a running one has its ctx cancelled and its result dropped). Stop fails the
// queued jobs with ErrClosed, waits for the running ones and drops their results. Handing a
// worker its next job takes a loop pass (the queue is the loop's), about a microsecond more
// per job than goroutines that wait on a semaphore, when all workers are busy. See
// executor.go.
//
// # What gnet lacks
//
// gnetgaps.go gathers the workarounds for what gnet v2.9.7 does not offer, one section each
// saying what is missing and what it costs: a wake-up that waits for the next poll (the waker),
// a drain callback (drain polling), half-close (the writer on a duplicated descriptor), an
// acceptor that outlives a failed accept (the loop accepts itself), abandoning a connection
// handed to Enroll, the size of the kernel's send queue (SIOCOUTQ), and a close that closes
// even while Enroll's worker still holds its own descriptor of the socket.
//
// # Example
//
//	type echo struct{ t *reactor.Transport }
//
//	func (e *echo) ConnectionMade(t *reactor.Transport) { e.t = t }
//	func (e *echo) DataReceived(p []byte)               { e.t.Write(p) }
//	func (e *echo) EOFReceived() bool                   { return false }
//	func (e *echo) ConnectionLost(err error)            {}
//
//	l := reactor.New(reactor.Options{})
//	_ = l.Listen("127.0.0.1:7000", func() reactor.Protocol { return &echo{} })
//	_ = l.Start()
//	_ = l.CallSoonThreadsafe(func() {
//		l.CallLater(time.Minute, l.Stop)
//	})
//	_ = l.Wait()
//
// # Limits
//
// TCP only. gnet cannot pause reading, so a protocol that must bound its input closes the
// transport. gnet's logger is process-wide: with several loops in one process, gnet's warnings
// go to the Logger of the loop started last. When the peer closes its side while bytes are
// still queued (the kernel would not take them), gnet drops the connection after one more
// non-blocking attempt: ConnectionLost then gets an error wrapping ErrUnsent, and a protocol
// that asked to keep writing (EOFReceived true) is not kept open. asyncio would go on flushing.
// (Handing those bytes to the half-close writer is not possible: gnet offers no way to read or
// clear its output buffer, and it writes what it can of it itself after OnClose.)
// Start needs Linux: it finds the descriptor of gnet's own listener in /proc/self/fd, to put a
// descriptor that is never readable in its place (gnetgaps.go, gap 4). A lingering Close keeps the
// socket (not the Transport) for up to Options.LingerTimeout after ConnectionLost, or, during
// Shutdown, until its peer has every byte. Shutdown waits for the kernel's send queues on
// Linux (SIOCOUTQ); a half-closed transport's writer (EOFReceived true) closes its socket once
// it has handed the kernel the last byte, and the kernel goes on sending it on its own (no
// input is left to make it reset).
// A connection (accepted, or made by Dial) that gnet is handing to the loop when Stop comes is
// still opened (and closed at once) before the loop exits, since gnet's goroutine waits for
// that. When gnet ends the loop on its own (a poll failure), the loop stops as after Stop, its
// last passes running on the loop goroutine as gnet closes the connections.
package reactor
