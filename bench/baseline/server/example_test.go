package server_test

import (
	"fmt"
	"io"
	"net"

	"github.com/herd-project/herd/bench/baseline/server"
	"github.com/herd-project/herd/herd"
)

// A one-server herd on a free loopback port, with the offline Places provider and no log.
func Example() {
	cfg, err := herd.ParseConfig([]byte(`
[places]
provider = "offline"
[log]
dir = "off"
[[server]]
name = "Hill"
addr = "127.0.0.1:0"
`), "example.toml")
	if err != nil {
		panic(err)
	}
	prov, err := herd.NewProvider(cfg.Places)
	if err != nil {
		panic(err)
	}
	s, err := server.New(cfg, "Hill", prov, nil)
	if err != nil {
		panic(err)
	}
	if err := s.Listen(cfg.Server("Hill").Addr); err != nil {
		panic(err)
	}
	s.Start()
	defer s.Close()

	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprint(c, "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\nHELLO\n")
	reply, _ := io.ReadAll(c)
	// The skew changes with the clock: show the fields around it.
	var at, name, skew, client, loc, t, invalid, line string
	fmt.Sscan(string(reply), &at, &name, &skew, &client, &loc, &t, &invalid, &line)
	fmt.Println(at, name, skew[:1], client, loc, t)
	fmt.Println(invalid, line)
	// Output:
	// AT Hill + kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503
	// ? HELLO
}
