#!/usr/bin/python3
"""The proxy herd server in the best asyncio design we know, beside the seed's (server.py).

server.py keeps the seed report's design, so that its numbers say what that design costs. This
file is what asyncio can do with the same protocol, so that a comparison with the Go servers is
fair to asyncio as well. It differs from the seed where the seed's design, not Python, costs:

- Clients are served by an asyncio.Protocol, not by streams: each read's lines are handled in a
  loop, and the replies that are ready are gathered into one write. A WHATSAT waits on Places in
  a task of its own while later lines go on; replies leave in the order of their requests (a
  queue of reply slots per connection). Reading pauses while a client has 1,024 WHATSATs
  waiting, or while its transport is over its high-water mark (pause_writing): a client that
  does not read cannot grow the server's memory.
- One persistent connection to each neighbour (dialled at its client address, as the seed's
  floods were), kept by a task of its own that redials with exponential backoff and full jitter
  (limits.backoff_base, limits.backoff_cap) and writes what is queued: every flood queued during
  one loop pass goes out in one write. Floods are written before the replies of the read that
  caused them (the replies wait for the next callback of the loop, after the link tasks'), so a
  client that has read its AT reply finds its update at every neighbour whose link is up, as
  with the Go servers. Past limits.max_link_unsent (default 8 MiB) of unsent floods the link is
  dropped and redialled.
- On link-up a full resync: every record held is sent to the neighbour, in chunks of 64 KiB,
  each written only while the transport is below its high-water mark, so a resync never trips
  max_link_unsent. Floods queued meanwhile go out between the chunks (order does not matter:
  newer wins). The Go servers send a digest first and only what differs; a full resync is what
  they send a plain neighbour, and what this design can do without a protocol of its own.
- The links speak the herd's plain peer protocol: bare AT lines, no hello. A server of this
  design can share a herd with the Go servers as a plain peer (link = "plain"), like server.py.
  An AT line is not flooded back to the server it names (it holds it already).
- Places requests may use as many connections as [places] max_conns allows the Go servers.
- Logging writes the same records as the seed (every line in and out, connections, links), but
  formatted by hand, stamped once per loop pass, and written with one os.write per pass.

The protocol itself (validation, exact times, the newer rule, Places) is server.py's: this
module imports it from there.

    /usr/bin/python3 bench/asyncio/best.py [--config herd.toml] [--uvloop] [--no-log] NAME
"""

import asyncio
import collections
import os
import random
import re
import time

import server as seed

RESYNC_CHUNK = 64 << 10
MAX_PENDING = 1024
DEFAULT_MAX_LINK_UNSENT = 8 << 20
DEFAULT_PLACES_CONNS = 64  # as the Go servers' [places] max_conns

SIZE_RE = re.compile(r"\s*([0-9]+)\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB)?\s*")
SIZE_UNITS = {None: 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20,
              "MB": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30}


def parse_size(text, default):
    """A size with its unit ("8MiB", "512KiB") in bytes, as the Go config writes it."""
    if text is None:
        return default
    if isinstance(text, int):
        return text
    m = SIZE_RE.fullmatch(text)
    if not m:
        raise ValueError(f"bad size {text!r}")
    return int(m.group(1)) * SIZE_UNITS[m.group(2)]


class Log:
    """A server's log: records are gathered during one loop pass and written in one write.

    Every record of a pass carries the time read when the pass's first record was made. With
    no file, nothing is kept.
    """

    def __init__(self, path):
        self.fd = None if path is None else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.parts = []
        self.stamp = ""

    @property
    def on(self):
        return self.fd is not None

    def rec(self, text):
        """Add one record: text is what follows its time, without the newline."""
        if self.fd is None:
            return
        if not self.parts:
            asyncio.get_running_loop().call_soon(self.flush)
            t = time.time()
            self.stamp = time.strftime("time=%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ " % (int(t * 1000) % 1000)
        self.parts.append(self.stamp)
        self.parts.append(text)
        self.parts.append("\n")

    def info(self, fmt, *args):
        """What server.py's code logs through the logging module's interface."""
        if self.fd is not None:
            self.rec("level=INFO msg=" + repr(fmt % args))

    def flush(self):
        if self.parts:
            data = "".join(self.parts).encode("utf-8", "backslashreplace")
            self.parts.clear()
            try:
                os.write(self.fd, data)
            except OSError:
                pass  # a full disk must not stop the server

    def close(self):
        if self.fd is not None:
            self.flush()
            os.close(self.fd)
            self.fd = None


def q(line):
    """A line as a log field value."""
    return '"' + line.decode("utf-8", "backslashreplace").replace("\\", "\\\\").replace('"', '\\"') + '"'


class LinkProtocol(asyncio.Protocol):
    """The transport side of a link: its state for the link's task."""

    def __init__(self, link):
        self.link = link
        self.transport = None
        self.paused = False
        self.lost = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        pass  # a plain neighbour sends its updates on a connection of its own

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost = True
        self.link.wake.set()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.link.wake.set()


class Link:
    """The persistent connection to one neighbour and the task that keeps it and writes to it."""

    def __init__(self, server, name, addr):
        self.server = server
        self.name = name
        self.addr = addr
        self.queue = []  # AT lines with "\n", queued while the link is up
        self.queued = 0
        self.proto = None  # while up
        self.wake = asyncio.Event()
        self.task = None

    def send(self, data):
        """Queue one flood; dropped while the link is down (the next resync makes up for it)."""
        p = self.proto
        if p is None or p.lost:
            return
        self.queue.append(data)
        self.queued += len(data)
        if self.queued + p.transport.get_write_buffer_size() > self.server.max_link_unsent:
            self.server.log.rec(f"level=WARN msg=\"link over its output limit: closing it\" peer={self.name}")
            self.queue.clear()
            self.queued = 0
            p.transport.abort()
            return
        self.wake.set()

    async def run(self):
        s = self.server
        loop = asyncio.get_running_loop()
        backoff = s.backoff_base
        while True:
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: LinkProtocol(self), self.addr[0], self.addr[1]),
                    s.dial_timeout)
            except (OSError, asyncio.TimeoutError) as e:
                s.log.rec(f"level=INFO msg=\"link dial failed\" peer={self.name} err={q(str(e).encode())}")
                await asyncio.sleep(random.uniform(0, backoff) + 0.001)
                backoff = min(2 * backoff, s.backoff_cap)
                continue
            backoff = s.backoff_base
            up = time.monotonic()
            self.proto = proto
            s.log.rec(f"level=INFO msg=\"link up\" peer={self.name} records={len(s.records)}")
            try:
                await self.serve(proto)
            finally:
                self.proto = None
                self.queue.clear()
                self.queued = 0
                proto.transport.abort()
            s.log.rec(f"level=INFO msg=\"link down\" peer={self.name}")
            # A link that went down at once waits before the redial, as after a failed dial.
            if time.monotonic() - up < s.backoff_cap:
                await asyncio.sleep(random.uniform(0, backoff) + 0.001)
                backoff = min(2 * backoff, s.backoff_cap)

    async def serve(self, proto):
        """Resync, then write floods, until the connection is lost."""
        s = self.server
        t = proto.transport
        # The records as they are now; those that change later reach the neighbour by flood.
        snapshot = [line for _, line in s.records.values()]
        at, start = 0, time.monotonic()
        resyncing = True
        while not proto.lost:
            if self.queue:
                data = b"".join(self.queue)
                self.queue.clear()
                self.queued = 0
                t.write(data)
            if resyncing and not proto.paused:
                chunk, size = [], 0
                while at < len(snapshot) and size < RESYNC_CHUNK:
                    line = snapshot[at]
                    chunk.append(line)
                    size += len(line) + 1
                    at += 1
                if chunk:
                    chunk.append(b"")
                    t.write(b"\n".join(chunk))
                if at < len(snapshot):
                    # Let clients be served between chunks.
                    await asyncio.sleep(0)
                    continue
                resyncing, snapshot = False, None
                s.log.rec(f"level=INFO msg=\"resync done\" peer={self.name} sent={at} "
                          f"took={(time.monotonic() - start) * 1000:.3f}ms")
            if proto.lost:
                break
            self.wake.clear()
            if not self.queue:
                await self.wake.wait()


class ClientProtocol(asyncio.Protocol):
    """One client connection (or a neighbour's link, which sends AT lines on it)."""

    def __init__(self, server):
        self.s = server
        self.buf = b""
        self.out = []  # replies ready, written at the end of the read
        self.slots = collections.deque()  # replies in order behind a WHATSAT: [bytes or None]
        self.flood_pending = False
        self.done = False  # an invalid line was read: nothing more is processed
        self.eof = False
        self.read_paused = False
        self.write_paused = False
        self.transport = None
        self.host = ""
        self.id = 0

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.host = peer[0] if peer else ""
        s = self.s
        s.conns += 1
        self.id = s.conns
        if s.log.on:
            s.log.rec(f"level=INFO msg=open conn={self.id} remote={peer[0]}:{peer[1]}" if peer else
                      f"level=INFO msg=open conn={self.id}")

    def connection_lost(self, exc):
        self.done = True
        self.slots.clear()
        if self.s.log.on:
            self.s.log.rec(f"level=INFO msg=close conn={self.id}")

    def data_received(self, data):
        if self.done:
            return
        buf = self.buf + data if self.buf else data
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        for raw in lines:
            if len(raw) > self.s.max_line:
                self.too_long(raw)
                break
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self.line(raw)
            if self.done:
                break
        if not self.done and len(self.buf) > self.s.max_line:
            self.too_long(self.buf)
        self.flush()

    def eof_received(self):
        if not self.done and self.buf:
            # A half-close: a last line without "\n" is still a line.
            raw, self.buf = self.buf, b""
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self.line(raw)
            self.flush()
        self.eof = True
        self.maybe_close()
        return True

    def pause_writing(self):
        self.write_paused = True
        self.reading()

    def resume_writing(self):
        self.write_paused = False
        self.reading()

    def reading(self):
        """Pause reading while the client does not read its replies or has too many waiting."""
        want = self.write_paused or len(self.slots) >= MAX_PENDING
        if want != self.read_paused and not self.transport.is_closing():
            self.read_paused = want
            if want:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def reply(self, data):
        if self.slots:
            self.slots.append([data])
        else:
            self.out.append(data)

    def line(self, line):
        s = self.s
        fields = line.split()
        try:
            if not fields:
                raise seed.Invalid("empty line")
            cmd = fields[0]
            if cmd == b"IAMAT":
                out = s.iamat(fields)
                self.reply(out)
                if s.log.on:
                    s.log.rec(f"level=INFO msg=reply conn={self.id} in={q(line)} out={q(out[:-1])}")
            elif cmd == b"WHATSAT":
                self.whatsat(fields, line)
            elif cmd == b"AT" and self.host in s.neighbour_hosts:
                if s.log.on:
                    s.log.rec(f"level=INFO msg=in conn={self.id} in={q(line)}")
                s.at(fields, line)
            else:
                raise seed.Invalid("unknown command")
        except seed.Invalid as e:
            if s.log.on:
                s.log.rec(f"level=INFO msg=invalid conn={self.id} in={q(line)} why={q(str(e).encode())}")
            self.reply(b"? " + line + b"\n")
            self.done = True
        if s.flooded:
            s.flooded = False
            self.flood_pending = True

    def too_long(self, line):
        held = line[:seed.TOO_LONG_ECHO]
        self.buf = b""
        if self.s.log.on:
            self.s.log.rec(f"level=INFO msg=\"line too long\" conn={self.id}")
        self.reply(b"? " + held + b"\n")
        self.done = True

    def whatsat(self, fields, line):
        s = self.s
        if len(fields) != 4:
            raise seed.Invalid("WHATSAT wants 3 fields")
        _, client, radius, bound = fields
        seed.check_client_id(client)
        if not seed.RADIUS_RE.fullmatch(radius) or not seed.BOUND_RE.fullmatch(bound):
            raise seed.Invalid("bad radius or bound")
        km = seed.Decimal(radius.decode())
        n = int(bound)
        if not (0 < km <= 50) or not (1 <= n <= 20):
            raise seed.Invalid("radius or bound out of range")
        rec = s.records.get(client)
        if rec is None:
            raise seed.Invalid("unknown client")
        if s.log.on:
            s.log.rec(f"level=INFO msg=in conn={self.id} in={q(line)}")
        at = rec[1]
        lat, lng = seed.parse_location(at.split()[4])
        slot = [None]
        self.slots.append(slot)
        s.spawn(self.answer(slot, at, lat.decode().lstrip("+"), lng.decode().lstrip("+"),
                            seed.radius_metres(radius), n))
        self.reading()

    async def answer(self, slot, at, lat, lng, radius_m, n):
        body = await self.s.places(lat, lng, radius_m, n)
        if self.transport.is_closing():
            return
        slot[0] = at + b"\n" + body
        if self.s.log.on:
            self.s.log.rec(f"level=INFO msg=out conn={self.id} out={q(at)} bytes={len(slot[0])}")
        while self.slots and self.slots[0][0] is not None:
            self.out.append(self.slots.popleft()[0])
        self.flush()
        self.reading()

    def flush(self):
        """Write the replies that are ready: after the links' floods if this read made any."""
        if self.flood_pending:
            self.flood_pending = False
            asyncio.get_running_loop().call_soon(self.write_out)
        else:
            self.write_out()

    def write_out(self):
        if self.out and not self.transport.is_closing():
            self.transport.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
        self.out.clear()
        self.maybe_close()

    def maybe_close(self):
        if (self.done or self.eof) and not self.slots and not self.out and not self.transport.is_closing():
            self.transport.close()


class Server(seed.Server):
    """A herd server of this design: server.py's protocol, served by protocols and link tasks."""

    def __init__(self, name, cfg, log):
        super().__init__(name, cfg, log)
        limits = cfg.get("limits", {})
        self.backoff_base = seed.parse_duration(limits.get("backoff_base"), 0.1)
        self.backoff_cap = max(seed.parse_duration(limits.get("backoff_cap"), 5.0), self.backoff_base)
        self.dial_timeout = seed.parse_duration(limits.get("dial_timeout"), 2.0)
        self.max_link_unsent = parse_size(limits.get("max_link_unsent"), DEFAULT_MAX_LINK_UNSENT)
        self.places_conns = int(cfg.get("places", {}).get("max_conns", DEFAULT_PLACES_CONNS))
        self.links = []
        self.conns = 0
        self.flooded = False  # set by store, taken by the connection whose line flooded

    async def start(self):
        if self.provider != "offline":
            import aiohttp

            # As many connections to Places as the config allows the Go servers ([places]
            # max_conns), not aiohttp's default of 100.
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=self.places_conns),
            )
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: ClientProtocol(self), self.addr[0], self.addr[1])
        for sock in self.server.sockets:
            host, port = sock.getsockname()[:2]
            print(f"{self.name} listening on {host}:{port}", flush=True)
        self.log.rec(f"level=INFO msg=listening server={self.name} addr={self.addr[0]}:{self.addr[1]}")
        for peer, addr in self.neighbours:
            link = Link(self, peer, addr)
            link.task = asyncio.create_task(link.run())
            self.links.append(link)

    async def close(self):
        for link in self.links:
            link.task.cancel()
        self.server.close()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=1)
        if self.session is not None:
            await self.session.close()

    def store(self, client, t, line, names=()):
        # names: the servers an appended-name line passed through (server.py --append-name);
        # this design appends none and floods the bare AT line.
        if not seed.newer(t, line, self.records.get(client)):
            if self.log.on:
                self.log.rec(f"level=INFO msg=\"not newer, dropped\" line={q(line)}")
            return
        self.records[client] = (t, line)
        origin = line.split(b" ", 2)[1]
        data = line + b"\n"
        for link in self.links:
            if link.name.encode() != origin:
                link.send(data)
        self.flooded = True


async def amain(args):
    if args.float_skew or args.append_name or args.one_line:
        # They are forms of the seed's design that other Python herds take; this design has none.
        raise SystemExit("best.py: --float-skew, --append-name and --one-line are server.py's; use server.py")
    cfg = seed.load_config(args.config)
    log_cfg = cfg.get("log", {})
    path = None
    if not (args.no_log or log_cfg.get("dir") == "off" or log_cfg.get("level") == "off"):
        log_dir = log_cfg.get("dir") or "logs"
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, f"{args.name}.log")
    log = Log(path)
    await seed.serve(Server(args.name, cfg, log))
    log.close()


if __name__ == "__main__":
    seed.run(amain, "proxy herd server (the best asyncio design)")
