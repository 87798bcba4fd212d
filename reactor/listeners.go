package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Listening and accepting. The loop binds its listeners itself and accepts on them, one
// goroutine per listener, handing each connection to gnet's loop with EventLoop.Enroll (as Dial
// does with the connections it makes): gnet's own acceptor ends the engine when accept fails
// with EMFILE (gnetgaps.go, gap 4), and a server must outlive a burst of connections.
//
// An accept that fails is counted (AcceptErrors) and retried after a pause, as net/http's
// Server.Serve does: 5 ms, doubling up to 1 s, back to none after an accept succeeds. The
// connections that come meanwhile wait in the kernel's backlog (or are refused by it when it is
// full), and are accepted once descriptors are free. The pause ends early when the loop stops.
// Enroll needs a second descriptor for a moment (gnet's duplicate): when that one fails for
// want of descriptors or memory, the connection, already accepted, is closed (its client sees
// it end at once) and the acceptor pauses as after a failed accept.
//
// Cost: Enroll hands the connection to gnet through one of gnet's pool goroutines, which
// duplicates the descriptor, queues it to the loop and closes the original; so an accepted
// connection costs, besides accept, a dup, a registration in Go's poller and its removal, and
// two goroutine hand-offs. At most maxEnrolling connections of one listener are on their way to
// the loop at once: past that the acceptor waits for the oldest, so a loop that cannot keep up
// leaves the rest in the backlog instead of in memory.

// Accept backoff, as net/http's Server.Serve.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
)

// maxEnrolling bounds the connections one acceptor has handed to gnet whose arrival on the loop
// it has not seen yet.
const maxEnrolling = 128

// bind binds every listener of l. On error those bound are closed again. Called by Start.
func (l *Loop) bind() error {
	lc := net.ListenConfig{KeepAlive: -1} // as gnet's default: no keep-alive probes
	for _, s := range l.listens {
		ln, err := lc.Listen(context.Background(), s.network, s.address)
		if err != nil {
			l.closeListeners()
			return fmt.Errorf("reactor: listen %s: %w", s.address, err)
		}
		s.ln = ln.(*net.TCPListener)
		s.addr = s.ln.Addr().(*net.TCPAddr)
	}
	return nil
}

// startAcceptors starts one accepting goroutine per listener, once the loop runs. Called by
// Start.
func (l *Loop) startAcceptors() {
	for _, s := range l.listens {
		if !l.track(&l.acceptWG) {
			return
		}
		go l.accept(s)
	}
}

// enrolling is a connection handed to gnet on its way to the loop.
type enrolling struct {
	tag *enrollTag
	ch  <-chan gnet.RegisteredResult
}

// accept is the acceptor of listener s: it accepts connections and hands them to the loop
// until the listener is closed, pausing after a failed accept, or after gnet could not take a
// connection for want of descriptors or memory (see the top of this file).
func (l *Loop) accept(s *listenSpec) {
	defer l.acceptWG.Done()
	var pending []enrolling // oldest first
	var delay time.Duration
	pause := func(what string, err error) {
		delay = min(max(2*delay, acceptDelayMin), acceptDelayMax)
		l.log.Warn("reactor: "+what+"; retrying", "listener", s.addr.String(), "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-l.stopCh:
		}
	}
	for {
		var starved error
		pending, starved = l.reap(pending, len(pending) >= maxEnrolling)
		if starved != nil {
			pause("accepted connection not served", starved)
		}
		nc, err := s.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			l.acceptErrors.Add(1)
			pause("accept failed", err)
			continue
		}
		if starved == nil {
			delay = 0
		}
		tag := &enrollTag{factory: s.factory}
		ch, err := l.enroll(nc, tag)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				break
			}
			l.acceptErrors.Add(1)
			l.log.Warn("reactor: accepted connection not served", "listener", s.addr.String(), "err", err)
			continue
		}
		pending = append(pending, enrolling{tag, ch})
	}
	for len(pending) > 0 {
		pending, _ = l.reap(pending, true)
	}
}

// reap takes the connections at the front of pending that have reached the loop (or failed to)
// off it. With wait it waits for the first one, unless the loop has ended. It returns pending
// with them removed, and the last error that says gnet could not take a connection for want
// of descriptors or memory (its duplicate of the descriptor failed): the acceptor then pauses
// as after a failed accept. Each failure is counted in AcceptErrors. On the acceptor's
// goroutine.
func (l *Loop) reap(pending []enrolling, wait bool) (rest []enrolling, starved error) {
	n := 0
	for ; n < len(pending); n++ {
		e := pending[n]
		var r gnet.RegisteredResult
		if wait && n == 0 {
			select {
			case r = <-e.ch:
			case <-l.exited:
				r.Err = ErrClosed
			}
		} else {
			select {
			case r = <-e.ch:
			default:
				return l.dropReaped(pending, n), starved
			}
		}
		e.tag.arrived(l)
		if r.Err != nil && !errors.Is(r.Err, ErrClosed) {
			l.acceptErrors.Add(1)
			if outOfResources(r.Err) {
				starved = r.Err
			} else {
				l.log.Warn("reactor: accepted connection not served", "err", r.Err)
			}
		}
	}
	return l.dropReaped(pending, n), starved
}

// outOfResources reports whether err says the process ran out of descriptors or memory.
func outOfResources(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

// dropReaped removes the first n of pending, keeping its backing array.
func (l *Loop) dropReaped(pending []enrolling, n int) []enrolling {
	if n == 0 {
		return pending
	}
	k := copy(pending, pending[n:])
	clear(pending[k:])
	return pending[:k]
}

// AcceptErrors returns how many times accepting a connection failed: accept itself (EMFILE,
// ENFILE, ENOBUFS, ENOMEM and the like; each failure is followed by a pause) or handing the
// connection to the loop (gnet's duplicate of its descriptor failed: the connection is closed,
// and for want of descriptors or memory the acceptor pauses too). Any goroutine.
func (l *Loop) AcceptErrors() uint64 { return l.acceptErrors.Load() }

// CloseListeners stops accepting connections: every listener made by Listen is closed (its
// port is free again at once) while the connections already accepted go on. As when any
// listening socket is closed, connections still waiting in the kernel's accept queue are reset
// (their connect may have succeeded: the kernel completes the handshake before the server
// accepts); a connection accepted just before may still reach the loop and get its Protocol.
// Addrs still reports the old addresses. It is the first step of a graceful server shutdown:
// stop accepting, let the open connections finish (Shutdown waits for them and for their peers
// to take every byte). Idempotent.
//
// Loop or any goroutine; it returns once the listeners are closed. It returns ErrClosed if the
// loop is not running.
func (l *Loop) CloseListeners() error {
	select {
	case <-l.started: // the listeners are bound
	default:
		return ErrClosed
	}
	if l.state.Load() != stateRunning {
		return ErrClosed
	}
	return l.closeListeners()
}

// closeListeners closes every listener that is open. Any goroutine.
func (l *Loop) closeListeners() error {
	var errs []error
	for _, s := range l.listens {
		if err := s.close(); err != nil {
			errs = append(errs, fmt.Errorf("reactor: close listener %s: %w", s.address, err))
		}
	}
	return errors.Join(errs...)
}

// close closes the listener once. Any goroutine.
func (s *listenSpec) close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.ln != nil {
			err = s.ln.Close()
		}
	})
	return err
}
