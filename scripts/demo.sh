#!/usr/bin/env bash
# The main job on a fresh machine: set-up, build, then `attn demo` (train a translator for two
# minutes, translate, score, draw the attention). Extra arguments go to `attn demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
build_dir=${ATTN_BUILD_DIR:-build}
exec "$build_dir/attn" demo "$@"
