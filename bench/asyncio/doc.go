// Package asyncio holds the Python asyncio baseline servers, server.py, written after the
// design of the seed report, and best.py, the same protocol in the best asyncio design
// (persistent links with a writer task each and a resync on link-up), and the Go tests that
// run them: their protocol behaviour, flooding between Python servers, a best.py herd that
// converges and resyncs a restarted server, and a mixed herd where Python and Go servers
// exchange updates over the shared AT-line peer protocol.
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
//	/usr/bin/python3 bench/asyncio/best.py [--config herd.toml] [--uvloop] [--no-log] NAME
package asyncio
