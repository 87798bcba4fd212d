package reactor

import (
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

func TestEchoNetClient(t *testing.T) {
	l := startLoop(t, Options{Debug: true}, func() Protocol { return &echo{} })
	c := testutil.Dial(t, l.Addrs()[0].String())
	for i := range 100 {
		msg := strings.Repeat("x", i) + "\n"
		c.Send(msg)
		if got := c.Line(); got != msg {
			t.Fatalf("round %d: got %q, want %q", i, got, msg)
		}
	}
}

func TestEchoDialSameLoop(t *testing.T) {
	offLoop := make(chan string, 100)
	l := startLoopWith(t, Options{Debug: true}, func(l *Loop) []ProtocolFactory {
		return []ProtocolFactory{func() Protocol { return &echo{l: l, offLoop: offLoop} }}
	})
	want := "hello reactor\n"
	got := make(chan string, 1)
	lost := make(chan error, 1)
	c := &collector{l: l, offLoop: offLoop, lost: lost}
	c.onData = func(c *collector) {
		if c.buf.Len() >= len(want) {
			got <- c.buf.String()
			c.t.Close()
		}
	}
	c.made = make(chan *Transport, 1)
	l.Dial(l.Addrs()[0].String(), func() Protocol { return c }, time.Second, func(err error) { t.Errorf("dial: %v", err) })
	tr := testutil.Recv(t, c.made, "ConnectionMade")
	onLoop(t, l, func() {
		if !tr.Outbound() {
			t.Error("dialed transport not outbound")
		}
		tr.Write([]byte(want))
	})
	if s := testutil.Recv(t, got, "the echo"); s != want {
		t.Fatalf("got %q want %q", s, want)
	}
	if err := testutil.Recv(t, lost, "ConnectionLost"); err != nil {
		t.Fatalf("ConnectionLost(%v), want nil", err)
	}
	select {
	case ev := <-offLoop:
		t.Fatalf("%s ran off the loop", ev)
	default:
	}
}
