package testutil

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/ephemeral"
)

// Exchange sends input on a new connection to addr, half-closes it, and returns everything
// the server writes until it closes the connection. It fails t if any step does. Call it from
// the test's goroutine.
func Exchange(t testing.TB, addr, input string) string {
	t.Helper()
	out, err := TryExchange(addr, input)
	if err != nil {
		t.Fatalf("exchange with %s: %v (got %q)", addr, err, out)
	}
	return out
}

// TryExchange is Exchange that returns the error instead of failing a test, for polling a
// server and for goroutines other than the test's. Any goroutine may call it.
func TryExchange(addr, input string) (string, error) { return TryExchangeFrom(nil, addr, input) }

// TryExchangeFrom is TryExchange from a connection bound to the host local (nil: any), for
// servers that treat some hosts apart.
func TryExchangeFrom(local net.IP, addr, input string) (string, error) {
	d := net.Dialer{Timeout: Patience}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	return TryExchangeOn(c, input)
}

// TryExchangeOn is TryExchange on a TCP connection the caller made (from a network namespace,
// say), which it closes. Any goroutine may call it.
func TryExchangeOn(c net.Conn, input string) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(Patience))
	if _, err := io.WriteString(c, input); err != nil {
		return "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// Knows reports whether the herd server at addr answers "WHATSAT client 1 1" with the AT line
// want (without its "\n"): whether an update has reached it. Any goroutine may call it.
func Knows(addr, client, want string) bool {
	out, err := TryExchange(addr, "WHATSAT "+client+" 1 1\n")
	return err == nil && strings.HasPrefix(out, want+"\n")
}

// Listen listens on a free loopback port and closes the listener when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Serve accepts connections on ln on a goroutine of its own and runs serve for each on a
// goroutine of its own; with serve nil it only holds them open, unread (a peer that never
// reads). accepted reports how many connections it has accepted so far, to any goroutine.
// When the test ends Serve closes ln and every connection, and waits for its goroutines, so
// serve must return once its connection is closed.
func Serve(t testing.TB, ln net.Listener, serve func(c net.Conn)) (accepted func() int) {
	var (
		mu      sync.Mutex
		conns   []net.Conn
		serving sync.WaitGroup
	)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if serve != nil {
				serving.Go(func() { serve(c) })
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepting // no connection comes after this
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		serving.Wait()
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// Accepted is Serve that hands each connection over, unread, on the returned channel. The
// connections the test has not taken by its end are closed with the rest.
func Accepted(t testing.TB, ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn)
	stop := make(chan struct{})
	Serve(t, ln, func(c net.Conn) {
		select {
		case ch <- c:
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // before Serve's cleanup, which waits for the handoffs
	return ch
}

// FreeAddr returns a loopback address whose port was free a moment ago, for a server that
// must be told its address before it starts, or for a dial that must be refused. The port is
// closed again at once, so it is taken below the kernel's ephemeral range (ports 10000 up to
// ip_local_port_range's first): there no outgoing connection of this or another process, a
// herd server dialling its neighbours included, can be given it in between. Ports are handed
// out in turn from a random start, each one once per process, so that two servers of one test
// never share one and packages tested side by side rarely meet. Any goroutine may call it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// ports is where FreeAddr takes its ports from.
var ports = ephemeral.Below()

func freeAddr() (string, error) {
	p, err := ports.Next()
	if err != nil {
		return "", fmt.Errorf("testutil: %w", err)
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// Refused reports whether a connection to addr is refused: nothing listens there any more.
// Any goroutine may call it.
func Refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, Patience)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	c.Close()
	return false
}

// IsReset reports whether err is a connection reset by the peer. A server that closes with
// unread input in its socket makes the kernel send one after the data.
func IsReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset")
}

// SmallReceiveBuffer returns a dialer whose connections get a receive buffer of n bytes, set
// before the connection is made (so the window the peer sees is small from the first byte):
// what the test does not read then stays in the peer's socket, as with a slow client.
func SmallReceiveBuffer(n int) *net.Dialer {
	return &net.Dialer{Timeout: Patience, Control: receiveBuffer(n)}
}

// SmallReceiveBufferListen listens on addr with a receive buffer of n bytes, which the
// connections it accepts inherit: a peer that is slow to read.
func SmallReceiveBufferListen(addr string, n int) (net.Listener, error) {
	lc := net.ListenConfig{Control: receiveBuffer(n)}
	return lc.Listen(context.Background(), "tcp", addr)
}

// receiveBuffer is a socket Control function that sets SO_RCVBUF to n.
func receiveBuffer(n int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}); err != nil {
			return err
		}
		return serr
	}
}

// Conn is a test's client connection to a line server. Every read and every Send has a
// deadline of Patience, so a server that never answers fails the test instead of hanging it.
// Its methods but Ask fail the test, so only the test's goroutine may call them.
type Conn struct {
	// TCP is the connection itself, for what the helpers do not do: half-close it, write raw
	// bytes, size its buffers.
	TCP *net.TCPConn
	t   testing.TB
	r   *bufio.Reader
}

// Dial connects to addr and closes the connection when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, Patience)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Conn{TCP: c.(*net.TCPConn), t: t, r: bufio.NewReader(c)}
}

// Send writes s as it is.
func (c *Conn) Send(s string) {
	c.t.Helper()
	c.TCP.SetWriteDeadline(time.Now().Add(Patience))
	if _, err := io.WriteString(c.TCP, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *Conn) readDeadline() { c.TCP.SetReadDeadline(time.Now().Add(Patience)) }

// Line reads one line, with its "\n".
func (c *Conn) Line() string {
	c.t.Helper()
	c.readDeadline()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: got %q, %v", s, err)
	}
	return s
}

// Reply reads one WHATSAT reply: its lines through the blank line that ends it.
func (c *Conn) Reply() string {
	c.t.Helper()
	c.readDeadline()
	s, err := c.readReply()
	if err != nil {
		c.t.Fatalf("read WHATSAT reply: got %q, %v", s, err)
	}
	return s
}

func (c *Conn) readReply() (string, error) {
	var b strings.Builder
	for {
		s, err := c.r.ReadString('\n')
		b.WriteString(s)
		if err != nil || s == "\n" {
			return b.String(), err
		}
	}
}

// EOF checks that the server closes the connection with nothing more to read.
func (c *Conn) EOF() {
	c.t.Helper()
	if rest := c.ReadAll(); len(rest) > 0 {
		c.t.Fatalf("waiting for EOF: read %q", rest)
	}
}

// ReadAll reads until the server closes the connection. A reset after the data counts as the
// close: a server that closes with unread input in its socket makes the kernel send one.
func (c *Conn) ReadAll() string {
	c.t.Helper()
	s, err := c.ReadRest()
	if err != nil && !IsReset(err) {
		c.t.Fatalf("read to EOF: %v (read %q)", err, s)
	}
	return s
}

// ReadRest reads until the server closes the connection and returns what it read and the
// error that ended the read (nil for a clean end of stream, a reset included otherwise).
func (c *Conn) ReadRest() (string, error) {
	c.readDeadline()
	b, err := io.ReadAll(c.r)
	return string(b), err
}

// Ask sends line with a "\n" and returns its reply: one line, or for a WHATSAT everything
// through the blank line that ends it. It reports a failure with t.Errorf and returns what it
// read, so any goroutine may call it (one at a time on a Conn).
func (c *Conn) Ask(line string) string {
	c.TCP.SetDeadline(time.Now().Add(Patience))
	if _, err := io.WriteString(c.TCP, line+"\n"); err != nil {
		c.t.Errorf("write: %v", err)
		return ""
	}
	var s string
	var err error
	if strings.HasPrefix(line, "WHATSAT") {
		s, err = c.readReply()
	} else {
		s, err = c.r.ReadString('\n')
	}
	if err != nil {
		c.t.Errorf("read reply to %q: %v (got %q)", line, err, s)
	}
	return s
}
