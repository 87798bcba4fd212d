#!/usr/bin/env bash
# The full benchmark run: builds every server implementation, runs every scenario a few times
# and regenerates BENCHMARKS.md and bench/charts/*.png from scratch (the hand-written sections of
# BENCHMARKS.md are kept). It took about 10 minutes on two cores before the Python best design,
# the cost-growth scenarios (preloads of up to a million records) and the instruction counts
# (the servers run slowly under callgrind) were added; expect well over twice that. Run it on an
# otherwise idle machine: the report flags runs that shared the cores with other processes.
#
#   bash scripts/bench.sh                      everything
#   bash scripts/bench.sh -smoke               seconds: start every implementation and check its replies
#   bash scripts/bench.sh -only p16,p1         some scenarios (see: go run ./bench/harness -h)
#   bash scripts/bench.sh -only records,resync,chain    how cost grows
#   bash scripts/bench.sh -only instructions   instruction counts alone (valgrind)
#   bash scripts/bench.sh -ports 20000-29999   take every port from a range (beside other services)
#   bash scripts/bench.sh -herd-procs          Go herds as one process per server (default: herd run, one process)
#
# Needs Go, redis-server, /usr/bin/python3 with aiohttp and uvloop, and valgrind for the
# instruction counts (scripts/deps.sh bench installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && [ -f scripts/deps.sh ]; then
  bash scripts/deps.sh bench
fi
exec go run ./bench/harness "$@"
