// The Places path of a WHATSAT alone, in Node.js, the way a Node program walks it: a legacy
// Nearby Search through the built-in http module with one keep-alive Agent (at most -c
// sockets), the body gathered whole, parsed with JSON.parse, "results" cut to the bound, and
// written back with JSON.stringify(data, null, 3), which re-serializes the body (Google's
// bytes are not kept). It keeps -c requests in flight against a Places API (the fake,
// bench/fakeplaces) for -warmup and then -d, and prints the same JSON as the Go client
// (bench/placespath/main.go): replies per second, latency percentiles from the send to the
// cut body, errors, and its own CPU time (process.cpuUsage).
//
//   node bench/placespath/client.mjs -url http://127.0.0.1:8099 [-c 200] [-d 3s]
//       [-warmup 1s] [-bound 5] [-radius 10] [-locations 1000] [-timeout 5s] [-body FILE]
//
// Node.js 18 or later, no npm package. Durations are Go's, of one unit (500ms, 3s, 1m).

import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const WARMUP = 0, WINDOW = 1, DONE = 2;

class UsageError extends Error {}

// duration reads a Go duration of one unit, in seconds.
function duration(name, text) {
  const m = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|ms|s|m|h)$/.exec(text);
  if (!m) throw new UsageError(`-${name}: bad duration ${JSON.stringify(text)} (want 500ms, 3s, 1m)`);
  const scale = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }[m[2]];
  return Number(m[1]) * scale;
}

function number(name, text) {
  const v = Number(text);
  if (text === '' || !Number.isFinite(v)) throw new UsageError(`-${name}: bad number ${JSON.stringify(text)}`);
  return v;
}

// parseArgs takes Go's flag syntax: -name value, -name=value, one or two dashes.
function parseArgs(argv) {
  const a = { url: '', c: 200, d: 3, warmup: 1, bound: 5, radius: 10, locations: 1000, timeout: 5, body: '' };
  const kinds = {
    url: String, body: String, c: number, bound: number, radius: number, locations: number,
    d: duration, warmup: duration, timeout: duration,
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([a-z]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!m || !(m[1] in kinds)) throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}`);
    let v = m[2];
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`-${m[1]} needs a value`);
      v = argv[++i];
    }
    a[m[1]] = kinds[m[1]] === String ? v : kinds[m[1]](m[1], v);
  }
  if (a.url === '') throw new UsageError('-url is required');
  if (!Number.isInteger(a.c) || a.c < 1 || a.d <= 0 || a.timeout <= 0 || !Number.isInteger(a.bound) ||
      a.bound < 1 || a.bound > 20 || !(a.radius > 0 && a.radius <= 50) || !Number.isInteger(a.locations) || a.locations < 1) {
    throw new UsageError('want -c >= 1, -d > 0, -timeout > 0, -bound 1..20, 0 < -radius <= 50, -locations >= 1');
  }
  return a;
}

// location is the i-th location, as the load generator's near UCLA (no "+", as the herd sends it).
function location(i) {
  return `${(34.0 + (i % 1000) * 0.0007).toFixed(6)},${(-118.5 + (Math.floor(i / 1000) % 1000) * 0.0007).toFixed(6)}`;
}

// percentiles summarizes latencies (microseconds) by nearest rank, as the Go client does.
function percentiles(us) {
  const n = us.length;
  if (n === 0) return { count: 0, mean_us: 0, p50_us: 0, p90_us: 0, p99_us: 0, p999_us: 0, max_us: 0 };
  us.sort((x, y) => x - y);
  const rank = (p) => us[Math.min(Math.max(Math.ceil(n * p / 100) - 1, 0), n - 1)];
  const sum = us.reduce((s, v) => s + v, 0);
  return { count: n, mean_us: sum / n, p50_us: rank(50), p90_us: rank(90), p99_us: rank(99), p999_us: rank(99.9), max_us: us[n - 1] };
}

class Failure extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

// get asks url and resolves with the whole body; it rejects with a Failure.
function get(url, agent, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Failure('http', `HTTP ${res.statusCode}`));
        else resolve(Buffer.concat(chunks).toString('utf8'));
      });
      res.on('error', (e) => reject(new Failure('transport', e.message)));
    });
    req.on('timeout', () => req.destroy(new Failure('timeout', `no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof Failure ? e : new Failure('transport', e.message)));
  });
}

async function main(argv) {
  const a = parseArgs(argv);
  const started = performance.now();
  const base = `${a.url.replace(/\/+$/, '')}/maps/api/place/nearbysearch/json`;
  const radiusM = String(a.radius * 1000);
  const agent = new http.Agent({ keepAlive: true, maxSockets: a.c });
  const st = { phase: WARMUP, next: 0, sent: 0, sentAll: 0, replies: 0, latencies: [], errors: {}, samples: [], last: null };

  const fail = (kind, message) => {
    st.errors[kind] = (st.errors[kind] || 0) + 1;
    const text = `${kind}: ${message}`;
    if (st.samples.length < 5 && !st.samples.includes(text)) st.samples.push(text);
  };

  async function worker() {
    while (st.phase !== DONE) {
      const url = `${base}?location=${location(st.next++ % a.locations)}&radius=${radiusM}&key=bench`;
      st.sentAll++;
      if (st.phase === WINDOW) st.sent++;
      const start = performance.now();
      let out, kind, message;
      try {
        const data = JSON.parse(await get(url, agent, a.timeout * 1000));
        if (data === null || typeof data !== 'object' || !Array.isArray(data.results)) {
          throw new Failure('bad body', 'no results array');
        }
        data.results = data.results.slice(0, a.bound);
        out = JSON.stringify(data, null, 3);
      } catch (e) {
        kind = e instanceof Failure ? e.kind : 'bad body';
        message = e.message;
      }
      const took = performance.now() - start;
      if (st.phase !== WINDOW) continue;
      if (kind !== undefined) {
        fail(kind, message);
        continue;
      }
      st.replies++;
      st.latencies.push(took * 1e3);
      st.last = out;
    }
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(ms, 0)));
  const workers = Array.from({ length: a.c }, worker);
  await sleep(started + a.warmup * 1000 - performance.now());
  const cpu0 = process.cpuUsage();
  const win0 = performance.now();
  st.phase = WINDOW;
  await sleep(win0 + a.d * 1000 - performance.now());
  const used = process.cpuUsage(cpu0);
  const win = (performance.now() - win0) / 1000;
  st.phase = DONE;
  await Promise.all(workers);
  agent.destroy();

  if (a.body !== '') {
    if (st.last === null) throw new Error('no body was cut in the window');
    writeFileSync(a.body, st.last);
  }
  const all = process.cpuUsage();
  const r = {
    scenario: 'placespath',
    targets: [a.url],
    conns: a.c,
    seconds: win,
    warmup_seconds: (win0 - started) / 1000,
    requests: st.sent,
    requests_all: st.sentAll,
    replies: st.replies,
    throughput: win > 0 ? st.replies / win : 0,
    errors: Object.values(st.errors).reduce((s, n) => s + n, 0),
    error_kinds: st.errors,
    error_samples: st.samples,
    latency: percentiles(st.latencies),
    cpu: {
      user_s: all.user / 1e6,
      system_s: all.system / 1e6,
      per_request_us: st.replies > 0 ? (used.user + used.system) / st.replies : 0,
    },
    wall_seconds: (performance.now() - started) / 1000,
  };
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`client.mjs: ${e.message}\n`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
