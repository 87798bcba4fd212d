package reactor

import (
	"errors"
	"fmt"
)

// CloseListeners stops accepting connections: every listener made by Listen is closed (its
// port is free again at once) while the connections already accepted go on. As when any
// listening socket is closed, connections still waiting in the kernel's accept queue are reset
// (their connect may have succeeded: the kernel completes the handshake before the server
// accepts); a connection gnet's acceptor took just before may still reach the loop and get its
// Protocol. Addrs still reports the old addresses. It is the first step of a graceful server
// shutdown: stop accepting, let the open connections finish (Shutdown waits for them and for
// their peers to take every byte). Idempotent.
//
// Loop or any goroutine; it returns once the listeners are closed (from another goroutine it
// waits for the loop to run it). It returns ErrClosed if the loop is not running.
//
// gnet v2.9.7 offers no way to close a listener of a running engine: the loop swaps an inert
// socket in under gnet's descriptor, which it finds through Linux's /proc/self/fd (gnetgaps.go,
// gap 4). Elsewhere CloseListeners returns an error and the listeners stay open.
func (l *Loop) CloseListeners() error {
	if l.state.Load() != stateRunning {
		return ErrClosed
	}
	if l.OnLoop() {
		return l.closeListeners()
	}
	done := make(chan error, 1)
	if err := l.CallSoonThreadsafe(func() { done <- l.closeListeners() }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-l.done:
		return ErrClosed
	}
}

func (l *Loop) closeListeners() error {
	if l.listenersClosed {
		return nil
	}
	if l.stopping {
		return ErrClosed
	}
	l.listenersClosed = true
	var errs []error
	for _, s := range l.listens {
		if s.factory == nil {
			continue // the internal listener accepts nothing anyway
		}
		if err := l.closeListener(s); err != nil {
			errs = append(errs, fmt.Errorf("reactor: close listener %s: %w", s.address, err))
		}
	}
	return errors.Join(errs...)
}
