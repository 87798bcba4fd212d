// Package asyncio holds the Python asyncio baseline server, server.py, written after the
// design of the seed report, and the Go tests that run it: its protocol behaviour, flooding
// between two Python servers, and a mixed herd where Python and Go servers exchange updates
// over the shared AT-line peer protocol.
//
// The package has no Go API. Run the server with Debian's Python 3.11 and aiohttp:
//
//	/usr/bin/python3 bench/asyncio/server.py [--config herd.toml] [--uvloop] [--no-log] NAME
package asyncio
