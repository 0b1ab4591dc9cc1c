#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, build, then every test through ctest.
# GPU tests skip (and say why) where no GPU answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
build_dir=${ATTN_BUILD_DIR:-build}
cd "$build_dir"
ctest --output-on-failure -j "${ATTN_JOBS:-$(nproc)}" "$@"
