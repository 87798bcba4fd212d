// Package asyncio holds the Python asyncio baseline server, server.py, written after the
// design of the seed report, and the Go tests that run it: its protocol behaviour, flooding
// between two Python servers, and a mixed herd where Python and Go servers exchange updates
// over the shared AT-line peer protocol.
//
// Its flags --float-skew, --append-name and --one-line make it a server of the seed's design
// in the forms other Python herds take (a float time difference, names appended to its AT
// lines, one line read per connection), and the tests run a five-server herd with two such
// servers in each form, linked with the Go servers as plain peers.
//
// The package has no Go API. Run the server with Debian's Python 3.11 and aiohttp:
//
//	/usr/bin/python3 bench/asyncio/server.py [--config herd.toml] [--uvloop] [--no-log]
//	    [--float-skew] [--append-name] [--one-line] NAME
package asyncio
