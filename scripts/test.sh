#!/usr/bin/env bash
# The project's test command: static checks, every test under the race detector,
# and a short run of every fuzz target. Run from anywhere inside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
# The multi-host tests run each server in a network namespace of its own: they need root.
if [ "$(id -u)" -eq 0 ]; then
  export HERD_NETNS=1
else
  echo "not root: the network namespace tests (internal/netns, cmd/herd TestNetns*) will skip"
fi
go test -race -count=1 -timeout 20m ./...

echo "== deploy/ (a module of its own, so that k8s.io/api stays out of the main go.mod)"
(cd deploy && go vet ./... && go test -race -count=1 ./...)

# A count of inputs, not a duration: with a duration, Go 1.26's fuzzing coordinator can report
# "context deadline exceeded" as a failure when the time runs out on a loaded machine
# (go.dev/issue/75804, fixed in Go 1.27). A real finding still fails, with its input written
# to testdata/fuzz. FUZZTIME=30s (or any -fuzztime value) fuzzes longer.
echo "== fuzz (${FUZZTIME:=3000x} each)"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
echo "== all checks passed"
