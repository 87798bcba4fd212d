package reactor

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

func TestEchoNetClient(t *testing.T) {
	l := startLoop(t, Options{Debug: true}, func() Protocol { return &echo{} })
	nc, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	for i := range 100 {
		msg := strings.Repeat("x", i) + "\n"
		if _, err := nc.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("round %d: got %q, %v; want %q", i, got, err, msg)
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
	tr := recv(t, c.made, "ConnectionMade")
	onLoop(t, l, func() {
		if !tr.Outbound() {
			t.Error("dialed transport not outbound")
		}
		tr.Write([]byte(want))
	})
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("got %q want %q", s, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no echo")
	}
	if err := recv(t, lost, "ConnectionLost"); err != nil {
		t.Fatalf("ConnectionLost(%v), want nil", err)
	}
	select {
	case ev := <-offLoop:
		t.Fatalf("%s ran off the loop", ev)
	default:
	}
}
