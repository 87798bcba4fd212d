// Package ephemeral knows where the kernel takes the local ports of outgoing connections,
// so that the tests and the benchmark harness can give servers ports that no dial can take
// between the moment a port is found free and the moment a server listens on it.
package ephemeral

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Low returns the first port of the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), or 32768, Linux's default, if it cannot be read.
// Any goroutine may call it.
func Low() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// Ports hands out loopback ports of a range that were free a moment ago (the caller closes
// its probe at once, so a server can be told its port before it binds it). They go in turn
// from a random start, each once per round of the range, so that two servers of one run never
// get one port and successive runs rarely reuse the ports the last is still releasing. A nil
// *Ports lets the kernel choose. Any goroutine may call its methods.
type Ports struct {
	mu     sync.Mutex
	lo, hi int
	next   int
}

// NewPorts returns the Ports of lo-hi, both included.
func NewPorts(lo, hi int) *Ports { return &Ports{lo: lo, hi: hi} }

// Below returns the Ports from 10000 up to the ephemeral range (Low), where no outgoing
// connection can take a port in between; nil when that leaves fewer than 1,000 ports.
func Below() *Ports {
	lo, hi := 10000, Low()-1
	if hi-lo+1 < 1000 {
		return nil
	}
	return NewPorts(lo, hi)
}

// String returns the range as "LO-HI".
func (p *Ports) String() string { return fmt.Sprintf("%d-%d", p.lo, p.hi) }

// Next returns the next port of the range on which nothing listens.
func (p *Ports) Next() (int, error) {
	if p == nil {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next < p.lo || p.next > p.hi {
		p.next = p.lo + rand.IntN(p.hi-p.lo+1)
	}
	for range p.hi - p.lo + 1 {
		port := p.next
		if p.next++; p.next > p.hi {
			p.next = p.lo
		}
		if ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in %s", p)
}
