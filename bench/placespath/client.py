#!/usr/bin/python3
"""The Places path of a WHATSAT alone, in Python, as bench/asyncio/server.py walks it.

A legacy Nearby Search through one aiohttp ClientSession (keep-alive connections, at most -c
of them), the body read whole, parsed with json.loads, "results" cut to the bound, and written
back with json.dumps(indent=3): the way the seed's design and any Python program does it,
which re-serializes the body (Google's bytes are not kept). It keeps -c requests in flight
against a Places API (the fake, bench/fakeplaces) for -warmup and then -d, and prints the
same JSON as the Go client (bench/placespath/main.go): replies per second, latency
percentiles from the send to the cut body, errors, and its own CPU time (getrusage).

    /usr/bin/python3 bench/placespath/client.py -url http://127.0.0.1:8099 [-uvloop]
        [-c 200] [-d 3s] [-warmup 1s] [-bound 5] [-radius 10] [-locations 1000]
        [-timeout 5s] [-body FILE]

Debian's Python 3 with aiohttp; uvloop for -uvloop. Durations are Go's, of one unit
(500ms, 3s, 1m). server.py's newline squeeze is left out: json.dumps(indent=3) writes no
blank line, so it would change nothing.
"""

import argparse
import asyncio
import json
import math
import re
import resource
import sys
import time

WARMUP, WINDOW, DONE = 0, 1, 2


def duration(text):
    """A Go duration of one unit, in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|ms|s|m|h)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (want 500ms, 3s, 1m)")
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_args(argv):
    p = argparse.ArgumentParser(prog="client.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-url", required=True, help="base URL of the Places API (the fake)")
    p.add_argument("-uvloop", action="store_true", help="run on uvloop")
    p.add_argument("-c", type=int, default=200, help="requests in flight (and connections at most)")
    p.add_argument("-d", type=duration, default=3.0, help="measured window")
    p.add_argument("-warmup", type=duration, default=1.0, help="load before the window")
    p.add_argument("-bound", type=int, default=5, help="results kept in each body (1..20)")
    p.add_argument("-radius", type=float, default=10.0, help="radius asked, in kilometres")
    p.add_argument("-locations", type=int, default=1000, help="distinct locations asked about in turn")
    p.add_argument("-timeout", type=duration, default=5.0, help="per request")
    p.add_argument("-body", help="write the last cut body of the window to this file")
    a = p.parse_args(argv)
    if a.c < 1 or a.d <= 0 or a.timeout <= 0 or not 1 <= a.bound <= 20 \
            or not 0 < a.radius <= 50 or a.locations < 1:
        p.error("want -c >= 1, -d > 0, -timeout > 0, -bound 1..20, 0 < -radius <= 50, -locations >= 1")
    return a


def location(i):
    """The i-th location, as the load generator's near UCLA (no "+", as the herd sends it)."""
    return f"{34.0 + (i % 1000) * 0.0007:.6f},{-118.5 + ((i // 1000) % 1000) * 0.0007:.6f}"


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def percentiles(us):
    """Latencies (microseconds) by nearest rank, as the Go client computes them."""
    if not us:
        return {"count": 0, "mean_us": 0, "p50_us": 0, "p90_us": 0, "p99_us": 0, "p999_us": 0, "max_us": 0}
    us.sort()
    n = len(us)

    def rank(p):
        return us[min(max(math.ceil(n * p / 100) - 1, 0), n - 1)]

    return {"count": n, "mean_us": sum(us) / n, "p50_us": rank(50), "p90_us": rank(90),
            "p99_us": rank(99), "p999_us": rank(99.9), "max_us": us[-1]}


class Run:
    def __init__(self, a):
        self.a = a
        self.phase = WARMUP
        self.next = 0
        self.sent = self.sent_all = self.replies = 0
        self.latencies = []
        self.errors = {}
        self.samples = []
        self.last = None

    def fail(self, kind, err):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        text = f"{kind}: {err}"
        if len(self.samples) < 5 and text not in self.samples:
            self.samples.append(text)

    async def worker(self, session, url, radius_m):
        import aiohttp

        a = self.a
        while self.phase != DONE:
            params = {"location": location(self.next % a.locations), "radius": radius_m, "key": "bench"}
            self.next += 1
            self.sent_all += 1
            if self.phase == WINDOW:
                self.sent += 1
            start = time.perf_counter()
            kind = None
            try:
                async with session.get(url, params=params) as resp:
                    if resp.status != 200:
                        kind, err = "http", f"HTTP {resp.status}"
                    else:
                        data = json.loads(await resp.read())
                if kind is None:
                    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                        kind, err = "bad body", "no results array"
                    else:
                        data["results"] = data["results"][:a.bound]
                        out = json.dumps(data, indent=3).encode()
            except asyncio.TimeoutError as e:
                kind, err = "timeout", e
            except aiohttp.ClientError as e:
                kind, err = "transport", e
            except ValueError as e:
                kind, err = "bad body", e
            took = time.perf_counter() - start
            if self.phase != WINDOW:
                continue
            if kind is not None:
                self.fail(kind, err)
                continue
            self.replies += 1
            self.latencies.append(took * 1e6)
            self.last = out

    async def main(self):
        import aiohttp

        a = self.a
        started = time.monotonic()
        url = a.url.rstrip("/") + "/maps/api/place/nearbysearch/json"
        radius_m = f"{a.radius * 1000:g}"
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=a.c),
            timeout=aiohttp.ClientTimeout(total=a.timeout),
        ) as session:
            workers = [asyncio.create_task(self.worker(session, url, radius_m)) for _ in range(a.c)]
            await asyncio.sleep(max(started + a.warmup - time.monotonic(), 0))
            cpu0, win0 = cpu_seconds(), time.monotonic()
            self.phase = WINDOW
            await asyncio.sleep(max(win0 + a.d - time.monotonic(), 0))
            cpu1, win = cpu_seconds(), time.monotonic() - win0
            self.phase = DONE
            await asyncio.gather(*workers)
        used = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
        user, sys_ = cpu_seconds()
        return {
            "scenario": "placespath",
            "targets": [a.url],
            "conns": a.c,
            "seconds": win,
            "warmup_seconds": win0 - started,
            "requests": self.sent,
            "requests_all": self.sent_all,
            "replies": self.replies,
            "throughput": self.replies / win if win > 0 else 0,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "error_samples": self.samples,
            "latency": percentiles(self.latencies),
            "cpu": {"user_s": user, "system_s": sys_,
                    "per_request_us": used / self.replies * 1e6 if self.replies else 0},
            "wall_seconds": time.monotonic() - started,
        }


def main(argv):
    a = parse_args(argv)
    r = Run(a)
    factory = None
    if a.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        res = runner.run(r.main())
    if a.body is not None:
        if r.last is None:
            print("client.py: no body was cut in the window", file=sys.stderr)
            return 1
        with open(a.body, "wb") as f:
            f.write(r.last)
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
