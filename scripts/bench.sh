#!/usr/bin/env bash
# kiln benchmarks: `npm run bench [-- registry|tree|app|cache|partial|restore|snapshot|attest|multi-platform]` (all by default). Needs root (RUN isolation,
# buildah) and the packages scripts/setup-system.sh installs; nothing else is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
# kiln runs from dist/, as users run it: bundle the current src first.
npm run --silent bundle >/dev/null
if [ "${1:-}" = "--" ]; then shift; fi
exec node --import tsx bench/main.ts "$@"
