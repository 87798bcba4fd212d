#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond Go: Redis (the reference reactor),
# Debian's Python with aiohttp and uvloop (the asyncio baseline), Chromium (the status
# page test, headless; without it that test is skipped, except as root in CI),
# systemd-analyze and logrotate (the deploy/ tests check the unit and the logrotate snippet
# with them; without them those checks are skipped), lsof (the grading flow's test kills
# a server as the course's grader does, kill $(lsof -ti:PORT)), and iproute2's ip (the
# multi-host tests put each server in a network namespace of its own), and Node.js (the
# Places-path client in bench/placespath; without it, as a user other than root, that client's
# test is skipped). Safe to run again.
# With the argument "bench" (scripts/bench.sh passes it) also valgrind, whose callgrind the
# benchmark harness counts instructions per request with.
set -euo pipefail

need=()
if [ "${1:-}" = bench ] && ! command -v valgrind >/dev/null 2>&1; then
  need+=(valgrind)
fi
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v lsof >/dev/null 2>&1 || need+=(lsof)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 -c 'import aiohttp' >/dev/null 2>&1 || need+=(python3-aiohttp)
  /usr/bin/python3 -c 'import uvloop' >/dev/null 2>&1 || need+=(python3-uvloop)
else
  need+=(python3 python3-aiohttp python3-uvloop)
fi

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    need+=(chromium fonts-dejavu-core)
  else
    echo "deps: no chromium: the status page test will be skipped (install Debian's chromium to run it)" >&2
  fi
fi

if ! command -v node >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    need+=(nodejs)
  else
    echo "deps: no node: the Node.js Places-path client's test will be skipped (install Debian's nodejs)" >&2
  fi
fi

for tool in systemd-analyze:systemd logrotate:logrotate; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1 && [ ! -x "/usr/sbin/${tool%%:*}" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      need+=("${tool##*:}")
    else
      echo "deps: no ${tool%%:*}: the deploy/ tests will skip that check (install Debian's ${tool##*:})" >&2
    fi
  fi
done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
