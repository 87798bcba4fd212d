package reactor

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseListeners stops accepting connections: every listener made by Listen is closed (its
// port is free again at once) while the connections already accepted go on. As when any
// listening socket is closed, connections still waiting in the kernel's accept queue are reset
// (their connect may have succeeded: the kernel completes the handshake before the server
// accepts); a connection gnet's acceptor took just before may still reach the loop and get its
// Protocol. Addrs still reports the old addresses. It is the first step of a graceful server
// shutdown: stop accepting, let the open connections finish, then Stop. Idempotent.
//
// Loop or any goroutine; it returns once the listeners are closed (from another goroutine it
// waits for the loop to run it). It returns ErrClosed if the loop is not running.
//
// gnet v2.9.7 offers no way to close a listener of a running engine, so the loop replaces the
// listening socket under gnet's file descriptor with an inert one (a Unix socket that nobody
// connects to): the kernel then closes the real socket, which also leaves gnet's poller, and
// gnet closes the stand-in when it stops. This needs Linux's /proc/self/fd to find gnet's
// descriptor; elsewhere CloseListeners returns an error and the listeners stay open.
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

// closeListener swaps an inert listening socket in for gnet's listener s.
func (l *Loop) closeListener(s *listenSpec) error {
	d, err := l.eng.DupListener("tcp", s.address)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	fd, err := sameSocketFD(d)
	if err != nil {
		return err
	}
	// The stand-in must answer accept with EAGAIN, as an idle listener does: gnet's acceptor
	// may be about to call accept on this descriptor, and any other error stops the engine.
	inert, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(inert)
	if err := unix.Bind(inert, &unix.SockaddrUnix{}); err != nil { // autobind: an unnamed abstract address
		return err
	}
	if err := unix.Listen(inert, 1); err != nil {
		return err
	}
	return unix.Dup3(inert, fd, unix.O_CLOEXEC)
}

// sameSocketFD returns the one descriptor other than d that refers to d's socket.
func sameSocketFD(d int) (int, error) {
	var want unix.Stat_t
	if err := unix.Fstat(d, &want); err != nil {
		return -1, err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, fmt.Errorf("cannot list file descriptors: %w", err)
	}
	found := -1
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == d {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if found >= 0 {
			return -1, errors.New("the listening socket has several descriptors")
		}
		found = fd
	}
	if found < 0 {
		return -1, errors.New("gnet's descriptor of the listening socket not found")
	}
	return found, nil
}
