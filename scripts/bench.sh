#!/usr/bin/env bash
# kiln benchmarks: `npm run bench [-- registry|tree|app|cache]` (all by default). Needs root (RUN isolation,
# buildah) and the packages scripts/setup-system.sh installs; nothing else is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
# The layer cache scenario (bench/cache.ts: cold / no-change / one-file change, kiln --cache-dir vs
# buildah --layers) runs on its own: `npm run bench -- cache`.
if [ "${1:-}" = "--" ]; then shift; fi
if [ "${1:-}" = "cache" ]; then exec node --import tsx bench/cache.ts; fi
exec node --import tsx bench/main.ts "$@"
