package reactor_test

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/herd-project/herd/reactor"
)

func ExampleLoop_CallSoon() {
	l := reactor.New(reactor.Options{})
	if err := l.Start(); err != nil {
		panic(err)
	}
	_ = l.CallSoonThreadsafe(func() { // now on the loop
		l.CallLater(20*time.Millisecond, func() { fmt.Println("later, 20ms"); l.Stop() })
		l.CallLater(10*time.Millisecond, func() { fmt.Println("later, 10ms") })
		l.CallSoon(func() {
			fmt.Println("soon 1")
			l.CallSoon(func() { fmt.Println("soon 3, queued by soon 1: next pass") })
		})
		l.CallSoon(func() { fmt.Println("soon 2") })
		fmt.Println("now")
	})
	_ = l.Wait()
	// Output:
	// now
	// soon 1
	// soon 2
	// soon 3, queued by soon 1: next pass
	// later, 10ms
	// later, 20ms
}

// A callback that is never cancelled needs no Handle: CallSoonFunc queues it without
// allocating, in the same FIFO order as CallSoon.
func ExampleLoop_CallSoonFunc() {
	l := reactor.New(reactor.Options{})
	if err := l.Start(); err != nil {
		panic(err)
	}
	n := 0
	tick := func() { n++ } // bound once, reused: no allocation per call
	_ = l.CallSoonThreadsafe(func() {
		for range 3 {
			l.CallSoonFunc(tick)
		}
		l.CallSoon(func() { fmt.Println("ticks:", n) })
		l.CallSoonFunc(l.Stop)
	})
	_ = l.Wait()
	// Output:
	// ticks: 3
}

// lineEcho sends back whatever it receives.
type lineEcho struct{ t *reactor.Transport }

func (e *lineEcho) ConnectionMade(t *reactor.Transport) { e.t = t }
func (e *lineEcho) DataReceived(data []byte)            { e.t.Write(data) } // Write copies what it keeps
func (e *lineEcho) EOFReceived() bool                   { return false }    // close when the client does
func (e *lineEcho) ConnectionLost(err error)            {}

// startEcho starts a loop that serves lineEcho on a loopback port.
func startEcho() *reactor.Loop {
	l := reactor.New(reactor.Options{})
	if err := l.Listen("127.0.0.1:0", func() reactor.Protocol { return &lineEcho{} }); err != nil {
		panic(err)
	}
	if err := l.Start(); err != nil {
		panic(err)
	}
	return l
}

func Example_echoServer() {
	l := startEcho()
	defer func() { l.Stop(); _ = l.Wait() }()

	c, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hello, reactor\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("%q %v\n", line, err)
	// Output: "hello, reactor\n" <nil>
}

func ExampleLoop_CloseListeners() {
	l := startEcho()
	defer func() { l.Stop(); _ = l.Wait() }()
	addr := l.Addrs()[0].String()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "served\n") // once answered, the connection is surely accepted
	line, _ := r.ReadString('\n')
	fmt.Print(line)

	if err := l.CloseListeners(); err != nil { // graceful shutdown, step one
		panic(err)
	}
	_, err = net.Dial("tcp", addr)
	fmt.Println("new connection refused:", err != nil)
	fmt.Fprintf(c, "still served\n")
	line, _ = r.ReadString('\n')
	fmt.Print(line)
	// Output:
	// served
	// new connection refused: true
	// still served
}
