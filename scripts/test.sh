#!/usr/bin/env bash
# The one test command (README, .ci/run): system packages, node modules, bundle check, lint,
# types, then the whole suite (unit + integration against a real registry it starts itself).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npx tsc --noEmit -p tsconfig.json
node scripts/check-layout.mjs
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --list-different .; exit 1; }
node scripts/run-tests.mjs "$@"
