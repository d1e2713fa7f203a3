#!/usr/bin/env bash
# The main job (README): system packages, node modules, then a real build of example/ pushed to a
# local registry and checked with skopeo and umoci.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
exec node --import tsx scripts/example.ts
