#!/usr/bin/env bash
# Builds a static herd binary (CGO_ENABLED=0) stamped with its version, commit and build date,
# which `herd version` prints. Run from anywhere inside the repository; the Dockerfile runs it
# too, where there is no git checkout: there VERSION and COMMIT come from --build-arg.
#
#   OUT=bin/herd  VERSION=$(git describe --tags --always --dirty)  COMMIT=$(git rev-parse HEAD)
#   DATE=now in UTC (or SOURCE_DATE_EPOCH, for a reproducible build)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-bin/herd}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || true)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}
if [ -z "${DATE:-}" ]; then
  if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    DATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  else
    DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  fi
fi

ldflags="-s -w -X main.buildDate=$DATE"
[ -n "$version" ] && ldflags="$ldflags -X main.buildVersion=$version"
[ -n "$commit" ] && ldflags="$ldflags -X main.buildCommit=$commit"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/herd
echo "built $out: $version ${commit:0:12} $DATE"
