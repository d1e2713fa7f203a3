#!/usr/bin/env bash
# The main job (README): system packages, node modules, then a real build of example/ pushed to a
# local registry and checked with skopeo and umoci.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.kiln-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  npm ci --no-fund --no-audit
  echo "$lock_hash" > node_modules/.kiln-lock-hash
fi
exec node --import tsx scripts/example.ts
