package herd_test

import (
	"fmt"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd"
)

func ExampleTable_Apply() {
	tab := herd.NewTable()
	for _, line := range []string{
		"AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503",
		"AT Smith +0.100000000 kiwi.cs.ucla.edu +34.1-118.4 1621464820", // older: dropped
		"AT Smith +0.100000000 kiwi.cs.ucla.edu +34.1-118.4 1621464830", // newer: stored
		"AT Smith +0.100000000 kiwi.cs.ucla.edu +34.1-118.4 1621464830", // the same again: dropped
	} {
		m, err := codec.ParseLine([]byte(line))
		if err != nil {
			panic(err)
		}
		fmt.Println(tab.Apply(&m, []byte(line)))
	}
	r := tab.Get([]byte("kiwi.cs.ucla.edu"))
	fmt.Printf("%s %s %s\n", r.Line, r.Lat, r.Lng)
	// Output:
	// true
	// false
	// true
	// false
	// AT Smith +0.100000000 kiwi.cs.ucla.edu +34.1-118.4 1621464830 +34.1 -118.4
}

func ExampleParseConfig() {
	cfg, err := herd.ParseConfig([]byte(`
[places]
provider = "offline"

[[server]]
name = "A"
addr = "127.0.0.1:12000"
peers = ["B"]

[[server]]
name = "B"
addr = "127.0.0.1:12001"
`), "herd.toml")
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.Server("B").Peers, cfg.Limits.MaxLine, cfg.Limits.BackoffBase)

	_, err = herd.ParseConfig([]byte("[[server]]\nname = \"A\"\naddr = \"127.0.0.1:1\"\npeers = [\"A\"]\n"), "bad.toml")
	fmt.Println(err)
	// Output:
	// [A] 4096 100ms
	// herd: config bad.toml:4: server[0].peers: server "A" names itself as a peer
}
