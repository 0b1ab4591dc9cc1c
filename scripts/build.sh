#!/usr/bin/env bash
# Configures and builds the engine, the `attn` tool and the tests into $ATTN_BUILD_DIR (build/).
# CUDA is compiled in when nvcc is found (ATTN_CUDA=AUTO|ON|OFF overrides). CI=true turns
# compiler warnings into errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

build_dir=${ATTN_BUILD_DIR:-build}
args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${ATTN_BUILD_TYPE:-Release})
# Only when asked: passing AUTO every time overwrote an earlier ATTN_CUDA=OFF in the build's
# cache, and the next plain run rebuilt everything with CUDA (CMake's default is AUTO).
if [ -n "${ATTN_CUDA:-}" ]; then
  args+=(-DATTN_CUDA="$ATTN_CUDA")
fi
if [ "${CI:-}" = "true" ]; then
  args+=(-DATTN_WERROR=ON)
fi
if command -v ninja >/dev/null 2>&1 && [ ! -f "$build_dir/Makefile" ]; then
  args+=(-G Ninja)
fi
cmake "${args[@]}" ${ATTN_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "${ATTN_JOBS:-$(nproc)}"
