package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Request kinds. A line reply answers kindLine (IAMAT, raw); a reply that ends with a blank
// line answers kindMulti (WHATSAT).
const (
	kindIAMAT uint8 = iota
	kindWHATSAT
	kindRaw
	numKinds
)

var kindNames = [numKinds]string{"iamat", "whatsat", "raw"}

// multi reports whether replies to requests of kind k end with "\n\n" rather than "\n".
func multi(k uint8) bool { return k == kindWHATSAT }

// corpus holds every request byte that can be built before the run, shared read-only by all
// connections: per client, the IAMAT line up to its time field, the whole WHATSAT line and the
// whole raw line.
type corpus struct {
	scenario string
	clients  int
	iamat    [][]byte // "IAMAT <id> <loc> "
	whatsat  [][]byte // "WHATSAT <id> <radius> <bound>\n"
	raw      [][]byte // template with %d replaced, plus "\n"
	secs     []byte   // "<unix seconds>." of the run's start: IAMAT times are secs + a 9-digit counter
	mix      float64  // fraction of WHATSAT in the mixed scenario
	propID   []byte   // propagation: "IAMAT <prefix>x" before the sequence number
	propLoc  []byte   // propagation: " <loc> "
}

// location gives client i a distinct ISO 6709 location near UCLA.
func location(i int) string {
	lat := 34.0 + float64(i%1000)*0.0007
	lng := -118.5 + float64((i/1000)%1000)*0.0007
	return fmt.Sprintf("%+.6f%+.6f", lat, lng)
}

func newCorpus(o *options, unixSec int64) (*corpus, error) {
	c := &corpus{scenario: o.scenario, clients: o.clients, mix: o.mix}
	c.secs = strconv.AppendInt(nil, unixSec, 10)
	c.secs = append(c.secs, '.')
	switch o.scenario {
	case "raw":
		if !strings.Contains(o.template, "%d") {
			return nil, fmt.Errorf("loadgen: -template %q has no %%d", o.template)
		}
		for i := range o.clients {
			line := strings.Replace(o.template, "%d", strconv.Itoa(i), 1)
			c.raw = append(c.raw, []byte(line+"\n"))
		}
		return c, nil
	case "propagation":
		c.propID = []byte("IAMAT " + o.prefix + "x")
		c.propLoc = []byte(" " + location(7) + " ")
		return c, nil
	}
	for i := range o.clients {
		id := o.prefix + strconv.Itoa(i)
		c.iamat = append(c.iamat, []byte("IAMAT "+id+" "+location(i)+" "))
		c.whatsat = append(c.whatsat, []byte("WHATSAT "+id+" "+o.radius+" "+strconv.Itoa(o.bound)+"\n"))
	}
	return c, nil
}

// stream produces one connection's requests. Connection conn of nconn owns clients conn,
// conn+nconn, conn+2*nconn, ... (below the number of clients), so with enough clients no two
// connections update the same client, and each IAMAT carries a later time than the last one
// for its client: every update is new and is flooded.
type stream struct {
	c       *corpus
	conn    int
	nconn   int
	cursor  int
	counter uint64  // IAMAT time fraction, in nanoseconds after c.secs
	acc     float64 // mixed: WHATSAT accumulator
}

func (s *stream) client() int {
	k := s.conn + s.nconn*s.cursor
	if k >= s.c.clients {
		s.cursor = 0
		k = s.conn % s.c.clients
	}
	s.cursor++
	return k
}

// owned returns the clients this stream uses, for the IAMAT that precedes WHATSAT load.
func (s *stream) owned() []int {
	var ks []int
	for k := s.conn; k < s.c.clients; k += s.nconn {
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		ks = append(ks, s.conn%s.c.clients)
	}
	return ks
}

// appendTime appends the next IAMAT time: the run's start second and a 9-digit fraction.
func (s *stream) appendTime(dst []byte) []byte {
	dst = append(dst, s.c.secs...)
	f := s.counter % 1e9
	s.counter++
	var d [9]byte
	for i := 8; i >= 0; i-- {
		d[i] = byte('0' + f%10)
		f /= 10
	}
	return append(dst, d[:]...)
}

// appendIAMAT appends an IAMAT for client k.
func (s *stream) appendIAMAT(dst []byte, k int) []byte {
	dst = append(dst, s.c.iamat[k]...)
	dst = s.appendTime(dst)
	return append(dst, '\n')
}

// next appends the next request to dst and returns its kind. seq is the request's number
// across the whole run (used only by the propagation scenario, whose client ids are unique).
func (s *stream) next(dst []byte, seq uint64) ([]byte, uint8) {
	switch s.c.scenario {
	case "raw":
		return append(dst, s.c.raw[s.client()]...), kindRaw
	case "whatsat":
		return append(dst, s.c.whatsat[s.client()]...), kindWHATSAT
	case "mixed":
		s.acc += s.c.mix
		if s.acc >= 1 {
			s.acc--
			return append(dst, s.c.whatsat[s.client()]...), kindWHATSAT
		}
		return s.appendIAMAT(dst, s.client()), kindIAMAT
	case "propagation":
		dst = append(dst, s.c.propID...)
		dst = strconv.AppendUint(dst, seq, 10)
		dst = append(dst, s.c.propLoc...)
		dst = s.appendTime(dst)
		return append(dst, '\n'), kindIAMAT
	}
	return s.appendIAMAT(dst, s.client()), kindIAMAT
}
