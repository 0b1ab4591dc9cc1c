#!/usr/bin/env bash
# A hash of the sources a build is made from (CMake files, C++ and CUDA sources, tests): the GPU
# bundle records it, and tools/gpu-check.sh compares it with the sources it was sent, so that a
# stale bundle cannot pass for the current code (.git may not travel to the GPU machine).
#   bash scripts/src-hash.sh   -> 16 hex digits
set -euo pipefail
cd "$(dirname "$0")/.."
find CMakeLists.txt core kernels models tools tests -type f \
  \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.txt' -o -name '*.cmake' \) -print0 2>/dev/null |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
