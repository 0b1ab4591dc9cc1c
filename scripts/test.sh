#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, build, then every test through ctest.
# GPU tests skip (and say why) where no GPU answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
build_dir=${ATTN_BUILD_DIR:-build}
cd "$build_dir"
# ctest shows a skipped test as "***Skipped" without its reason: say once why GPU tests skip.
./attn_tests --gtest_filter='Cuda.CopiesRoundTripEveryDtype' 2>&1 | grep -m1 '^no GPU' | sed 's/^/GPU tests: /' || true
ctest --output-on-failure -j "${ATTN_JOBS:-$(nproc)}" "$@"
