#!/usr/bin/env bash
# The full benchmark run: builds every server implementation, runs every scenario a few times
# and regenerates BENCHMARKS.md and bench/charts/*.png from scratch (the hand-written section of
# BENCHMARKS.md is kept). Takes about 10 minutes on two cores (9.7 measured, builds included); run it on
# an otherwise idle machine: the report flags runs that shared the cores with other processes.
#
#   bash scripts/bench.sh                 everything
#   bash scripts/bench.sh -smoke          seconds: start every implementation and check its replies
#   bash scripts/bench.sh -only p16,p1    some scenarios (see: go run ./bench/harness -h)
#   bash scripts/bench.sh -herd-procs     Go herds as one process per server (default: herd run, one process)
#
# Needs Go, redis-server and /usr/bin/python3 with aiohttp and uvloop (scripts/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && [ -f scripts/deps.sh ]; then
  bash scripts/deps.sh
fi
exec go run ./bench/harness "$@"
