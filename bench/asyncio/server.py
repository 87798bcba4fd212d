#!/usr/bin/python3
"""A proxy herd server in Python asyncio, after the design of the seed report.

This is the baseline the Go reactor is measured against. It keeps the seed's design:

- one asyncio.start_server per server process, one coroutine per client connection;
- a dict holding the latest AT line per client;
- WHATSAT asks the Places legacy Nearby Search API with aiohttp, parses the JSON with the json
  module, cuts "results" to the bound and writes it back with json.dumps(indent=3) (so the body
  is NOT Google's bytes, unlike the Go servers), squeezes newlines and adds "\\n\\n";
- flooding opens a NEW connection (asyncio.open_connection) to each neighbour for each
  flooded message, writes the AT line and closes it;
- logging with the logging module to one file per server.

It speaks the herd's peer protocol exactly (one AT line per update), compares client times
exactly (integer nanoseconds, never float) and breaks ties by the whole AT line, like the Go
servers, so it can share a herd with them. It accepts AT lines on any connection from a
neighbour's host, so the Go servers' persistent links (with their resync) work into it.

Three flags make it behave as other servers of the seed's design do, for the tests of mixed
herds (the Go servers call such neighbours plain peers):

- --float-skew prints the time difference as the prototype did, a Python float with a sign
  when positive ("+0.001401662826538086", "+1.1e-05", "-3.0"), not an exact decimal;
- --append-name appends its name to the AT lines it floods, after the six fields, as some
  herds do to stop loops, and takes such lines from its neighbours: it stores the six fields,
  floods the line with its own name added after the others', and not to the servers named;
- --one-line reads one line from each connection, answers it, and closes the connection
  (a Go neighbour must then send it each line on a connection of its own:
  link = "plain-per-message").

Places provider "offline" is not implemented here: WHATSAT then answers with a Google-shaped
ZERO_RESULTS body. "google-v1" is treated as "google" (the legacy endpoint).

    /usr/bin/python3 bench/asyncio/server.py [--config herd.toml] [--uvloop] [--no-log]
        [--float-skew] [--append-name] [--one-line] NAME

Python 3.11 (tomllib), aiohttp; uvloop for --uvloop.
"""

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
import time
import tomllib
from decimal import Decimal

DEFAULT_MAX_LINE = 4096
TOO_LONG_ECHO = 64

DEFAULT_SERVERS = [
    {"name": "Hill", "addr": "127.0.0.1:12000", "peers": ["Jaquez", "Smith"]},
    {"name": "Jaquez", "addr": "127.0.0.1:12001", "peers": ["Hill", "Singleton"]},
    {"name": "Smith", "addr": "127.0.0.1:12002", "peers": ["Hill", "Singleton", "Campbell"]},
    {"name": "Singleton", "addr": "127.0.0.1:12003", "peers": ["Jaquez", "Smith", "Campbell"]},
    {"name": "Campbell", "addr": "127.0.0.1:12004", "peers": ["Singleton", "Smith"]},
]

# Names the [limits] table may use for the line limit (the first one present wins).
LINE_LIMIT_KEYS = ("max_line", "line", "line_length", "max_line_bytes", "line_bytes")

LOCATION_RE = re.compile(rb"([+-][0-9]{1,2}(?:\.[0-9]+)?)([+-][0-9]{1,3}(?:\.[0-9]+)?)")
TIME_RE = re.compile(rb"([+-]?)([0-9]+)(?:\.([0-9]{1,9}))?")
# A decimal, or a float as Python prints one (a neighbour with --float-skew).
SKEW_RE = re.compile(rb"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
RADIUS_RE = re.compile(rb"[0-9]+(?:\.[0-9]+)?")
BOUND_RE = re.compile(rb"[0-9]+")

# As codec.MaxTimeDigits: at most 18 significant integer digits.
MAX_TIME_SEC = 10**18

ZERO_RESULTS_BODY = (
    b'{\n   "html_attributions" : [],\n   "results" : [],\n   "status" : "ZERO_RESULTS"\n}\n'
)


class Invalid(Exception):
    """A line that is not a valid command; the reply is "? line"."""


# As herd.MaxClientIDLen.
MAX_CLIENT_ID = 256


def check_client_id(field):
    """Raise Invalid unless field is a client ID as herd.ValidClientID says: 1 to 256 bytes of
    UTF-8 without control characters (Unicode's category Cc: C0, DEL and C1)."""
    if not 0 < len(field) <= MAX_CLIENT_ID:
        raise Invalid("bad client id")
    try:
        text = field.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("bad client id") from None
    if any(ch < "\x20" or "\x7f" <= ch < "\xa0" for ch in text):
        raise Invalid("bad client id")


def parse_location(field):
    """Return (lat_text, lng_text) of an ISO 6709 field, or raise Invalid."""
    m = LOCATION_RE.fullmatch(field)
    if not m:
        raise Invalid("bad location")
    lat, lng = m.group(1), m.group(2)
    if abs(Decimal(lat.decode())) > 90 or abs(Decimal(lng.decode())) > 180:
        raise Invalid("location out of range")
    return lat, lng


def parse_time(field):
    """Return a POSIX time field as exact integer nanoseconds, or raise Invalid."""
    m = TIME_RE.fullmatch(field)
    if not m:
        raise Invalid("bad time")
    sec = int(m.group(2))
    if sec >= MAX_TIME_SEC:
        raise Invalid("time out of range")
    frac = (m.group(3) or b"").ljust(9, b"0")
    ns = sec * 1_000_000_000 + int(frac)
    return -ns if m.group(1) == b"-" else ns


def format_skew(ns):
    """Format a nanosecond difference as the AT line's skew: signed, 9 fraction digits."""
    sign = "-" if ns < 0 else "+"
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}".encode()


def format_float_skew(diff):
    """Format a difference in seconds as the seed's prototype did: str() of a float, with
    "+" before a positive one ("+1.1e-05", "+0.5", "-3.0", "0.0")."""
    return (("+" if diff > 0 else "") + str(diff)).encode()


def newer(t, line, old):
    """Report whether record (t, line) beats old, a (time, line) pair or None."""
    if old is None:
        return True
    old_t, old_line = old
    if t != old_t:
        return t > old_t
    return line > old_line


def strip_line(raw):
    """Drop the "\\n" and one "\\r" before it."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


def radius_metres(radius):
    """Kilometres as text to metres as text, exactly ("10" -> "10000", "0.0015" -> "1.5")."""
    m = Decimal(radius.decode()) * 1000
    text = format(m, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def google_error_body(status, message):
    """A legacy Places error body in Google's layout (keys sorted, " : ", 3 spaces)."""
    out = "{\n"
    if message:
        msg = json.dumps(message).replace("<", "\\u003c").replace(">", "\\u003e")
        out += f'   "error_message" : {msg},\n'
    out += f'   "html_attributions" : [],\n   "results" : [],\n   "status" : "{status}"\n}}\n'
    return out.encode()


def load_config(path):
    if path is None:
        return {
            "places": {"provider": "offline"},
            "log": {"dir": "logs"},
            "limits": {},
            "server": DEFAULT_SERVERS,
        }
    with open(path, "rb") as f:
        return tomllib.load(f)


def parse_duration(text, default):
    """A Go-style duration ("5s", "500ms", "1m") in seconds."""
    if text is None:
        return default
    if isinstance(text, (int, float)):
        return float(text)
    total, pos = 0.0, 0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for m in re.finditer(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"bad duration {text!r}")
    return total


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Server:
    def __init__(self, name, cfg, log, float_skew=False, append_name=False, one_line=False):
        servers = {s["name"]: s for s in cfg.get("server", [])}
        if name not in servers:
            raise SystemExit(f"server.py: no server named {name!r} in the config")
        me = servers[name]
        self.name = name
        self.name_b = name.encode()
        self.addr = split_addr(me["addr"])
        # Links are symmetric: a neighbour is anyone I name or anyone who names me.
        peers = set(me.get("peers", []))
        peers |= {s["name"] for s in servers.values() if name in s.get("peers", [])}
        peers.discard(name)
        for p in peers:
            if p not in servers:
                raise SystemExit(f"server.py: {name} names unknown neighbour {p!r}")
        self.neighbours = sorted((p, split_addr(servers[p]["addr"])) for p in peers)
        self.neighbour_hosts = {addr[0] for _, addr in self.neighbours}
        self.neighbour_hosts |= {socket.gethostbyname(h) for h in self.neighbour_hosts}
        places = cfg.get("places", {})
        self.key = places.get("key") or os.environ.get("GOOGLE_PLACES_API_KEY", "")
        # As the Go config: no provider means "google" with a key, else "offline".
        self.provider = places.get("provider") or ("google" if self.key else "offline")
        self.url = (places.get("url") or "https://maps.googleapis.com").rstrip("/")
        self.timeout = parse_duration(places.get("timeout"), 5.0)
        limits = cfg.get("limits", {})
        self.max_line = DEFAULT_MAX_LINE
        for k in LINE_LIMIT_KEYS:
            if k in limits:
                self.max_line = int(limits[k])
                break
        self.log = log
        self.float_skew = float_skew
        self.append_name = append_name
        self.one_line = one_line
        self.records = {}  # client id (bytes) -> (time ns, AT line without "\n")
        self.tasks = set()
        self.session = None

    async def start(self):
        if self.provider != "offline":
            import aiohttp  # only when used: it is most of the start-up time

            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        self.server = await asyncio.start_server(
            self.handle_client, self.addr[0], self.addr[1], limit=self.max_line
        )
        for sock in self.server.sockets:
            host, port = sock.getsockname()[:2]
            print(f"{self.name} listening on {host}:{port}", flush=True)
        self.log.info("%s listening on %s:%d", self.name, *self.addr)

    async def close(self):
        self.server.close()
        await self.server.wait_closed()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=1)
        if self.session is not None:
            await self.session.close()

    def spawn(self, coro):
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle_client(self, reader, writer):
        peer = writer.get_extra_info("peername")
        peer_host = peer[0] if peer else ""
        self.log.info("connection from %s", peer)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    # Half-close: a last line without "\n" is still a line.
                    if e.partial:
                        await self.handle_line(strip_line(e.partial), peer_host, writer)
                    break
                except asyncio.LimitOverrunError:
                    held = await reader.read(TOO_LONG_ECHO)
                    self.log.info("%s: line too long", peer)
                    held = held.split(b"\n", 1)[0]  # as codec.AppendTooLong
                    writer.write(b"? " + held + b"\n")
                    await writer.drain()
                    break
                if not await self.handle_line(strip_line(raw), peer_host, writer):
                    break
                if self.one_line:
                    break
        except (ConnectionError, OSError) as e:
            self.log.info("connection from %s lost: %s", peer, e)
        finally:
            self.log.info("closing connection from %s", peer)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def handle_line(self, line, peer_host, writer):
        """Answer one line; return False when the connection must close."""
        self.log.info("IN %r", line)
        fields = line.split()
        try:
            if not fields:
                raise Invalid("empty line")
            cmd = fields[0]
            if cmd == b"IAMAT":
                reply = self.iamat(fields)
            elif cmd == b"WHATSAT":
                reply = await self.whatsat(fields)
            elif cmd == b"AT" and peer_host in self.neighbour_hosts:
                self.at(fields, line)
                return True
            else:
                raise Invalid("unknown command")
        except Invalid as e:
            self.log.info("invalid (%s): %r", e, line)
            writer.write(b"? " + line + b"\n")
            await writer.drain()
            return False
        self.log.info("OUT %r", reply)
        writer.write(reply)
        await writer.drain()
        return True

    def iamat(self, fields):
        recv = time.time_ns()
        if len(fields) != 4:
            raise Invalid("IAMAT wants 3 fields")
        _, client, location, ctime = fields
        check_client_id(client)
        parse_location(location)
        t = parse_time(ctime)
        if self.float_skew:
            skew = format_float_skew(recv / 1e9 - float(ctime))
        else:
            skew = format_skew(recv - t)
        line = b" ".join((b"AT", self.name_b, skew, client, location, ctime))
        self.store(client, t, line)
        return line + b"\n"

    def at(self, fields, line):
        names = []
        if self.append_name and len(fields) > 6:
            names, fields = fields[6:], fields[:6]
            line = b" ".join(fields)
        if len(fields) != 6:
            raise Invalid("AT wants 5 fields")
        _, _, skew, client, location, ctime = fields
        if not SKEW_RE.fullmatch(skew):
            raise Invalid("bad skew")
        check_client_id(client)
        parse_location(location)
        t = parse_time(ctime)
        # Stored and flooded as received but for the white space around it, as the Go
        # servers do, so ties break the same way everywhere.
        self.store(client, t, line.strip(), names)

    def store(self, client, t, line, names=()):
        if not newer(t, line, self.records.get(client)):
            self.log.info("not newer, dropped: %r", line)
            return
        self.records[client] = (t, line)
        data = line
        if self.append_name:
            # The names of the servers the line passed through, this one last: a server
            # named there has had it.
            names = [*names, self.name_b]
            data = b" ".join((line, *names))
        for peer, addr in self.neighbours:
            if peer.encode() not in names:
                self.spawn(self.flood(peer, addr, data + b"\n"))

    async def flood(self, peer, addr, data):
        # The seed's design: one new connection per flooded message.
        try:
            _, writer = await asyncio.open_connection(addr[0], addr[1])
        except OSError as e:
            self.log.info("link to %s down: %s", peer, e)
            return
        try:
            writer.write(data)
            await writer.drain()
            self.log.info("FLOOD %s %r", peer, data)
        except OSError as e:
            self.log.info("flood to %s failed: %s", peer, e)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def whatsat(self, fields):
        if len(fields) != 4:
            raise Invalid("WHATSAT wants 3 fields")
        _, client, radius, bound = fields
        check_client_id(client)
        if not RADIUS_RE.fullmatch(radius) or not BOUND_RE.fullmatch(bound):
            raise Invalid("bad radius or bound")
        km = Decimal(radius.decode())
        n = int(bound)
        if not (0 < km <= 50) or not (1 <= n <= 20):
            raise Invalid("radius or bound out of range")
        rec = self.records.get(client)
        if rec is None:
            raise Invalid("unknown client")
        line = rec[1]
        location = line.split()[4]
        lat, lng = parse_location(location)
        body = await self.places(lat.decode().lstrip("+"), lng.decode().lstrip("+"),
                                 radius_metres(radius), n)
        return line + b"\n" + body

    async def places(self, lat, lng, radius_m, bound):
        """The JSON part of a WHATSAT reply, ending with the blank line."""
        if self.provider == "offline":
            body = ZERO_RESULTS_BODY
        else:
            body = await self.nearby(lat, lng, radius_m, bound)
        return re.sub(rb"\n+", b"\n", body).rstrip(b"\n") + b"\n\n"

    async def nearby(self, lat, lng, radius_m, bound):
        import aiohttp

        url = f"{self.url}/maps/api/place/nearbysearch/json"
        params = {"location": f"{lat},{lng}", "radius": radius_m, "key": self.key}
        try:
            async with self.session.get(url, params=params) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                data = json.loads(await resp.read())
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise ValueError("no results array")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            self.log.info("places: %s", e)
            return google_error_body("UNKNOWN_ERROR", f"places request failed: {e}")
        data["results"] = data["results"][:bound]
        return json.dumps(data, indent=3).encode()


async def amain(args):
    cfg = load_config(args.config)
    log = logging.getLogger("herd")
    log_cfg = cfg.get("log", {})
    if args.no_log or log_cfg.get("dir") == "off" or log_cfg.get("level") == "off":
        log.addHandler(logging.NullHandler())
        log.disabled = True
    else:
        log_dir = log_cfg.get("dir") or "logs"
        os.makedirs(log_dir, exist_ok=True)
        handler = logging.FileHandler(os.path.join(log_dir, f"{args.name}.log"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    await serve(Server(args.name, cfg, log, float_skew=args.float_skew,
                       append_name=args.append_name, one_line=args.one_line))


async def serve(server):
    """Start server (best.py's too), serve until SIGINT or SIGTERM, then close it."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main():
    run(amain, "proxy herd server (Python asyncio baseline)")


def run(amain, description):
    """Parse the command line (best.py's too) and run amain(args) on asyncio or uvloop."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", help="herd TOML config (default: the five-server herd)")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop")
    p.add_argument("--no-log", action="store_true", help="do not write a log file")
    p.add_argument("--float-skew", action="store_true",
                   help="print the time difference as a Python float, as the seed's prototype")
    p.add_argument("--append-name", action="store_true",
                   help="append this server's name to the AT lines it floods, and take such lines")
    p.add_argument("--one-line", action="store_true",
                   help="read one line from each connection, answer it and close the connection")
    p.add_argument("name", help="the server to run")
    args = p.parse_args()
    if args.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(amain(args))
    else:
        asyncio.run(amain(args))


if __name__ == "__main__":
    main()
