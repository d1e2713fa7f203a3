#!/usr/bin/env bash
# System packages (apt-get, idempotent) and node modules (npm ci when package-lock.json changed):
# what both README commands, `npm test` and `npm run example`, need before they run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.kiln-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  npm ci --no-fund --no-audit
  echo "$lock_hash" > node_modules/.kiln-lock-hash
fi
