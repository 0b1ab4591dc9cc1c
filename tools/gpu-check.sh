#!/usr/bin/env bash
# The whole GPU check in one call on a GPU machine (see DEVELOPERS.md and docs/gpu-log.md):
#   1. what the machine has (GPU, driver, toolkit, libraries, build dependencies);
#   2. a CUDA build for sm_90 there, or, when it lacks the build dependencies, the bundle built
#      here by scripts/gpu-bundle.sh and carried along (carry: ["gpu-bundle"]);
#   3. the whole test suite, GPU tests included;
#   4. compute-sanitizer memcheck on the GPU tests;
#   5. the benchmarks;
#   6. a summary table (last lines of the output) and full logs under $OUT.
# Usage (device tool): bash tools/gpu-check.sh          Locally: OUT=/tmp/x bash tools/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
JOBS=$(nproc)
t_start=$(date +%s)
declare -a rows
step() {  # step NAME STATUS SECONDS DETAIL
  rows+=("$(printf '| %-10s | %-6s | %5ss | %s |' "$1" "$2" "$3" "$4")")
}
now() { date +%s; }

# ---------------------------------------------------------------- 1. the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1)"
  echo "g++: $(g++ --version 2>/dev/null | head -1)"
  echo "ninja: $(ninja --version 2>/dev/null)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
  for h in fmt/core.h gtest/gtest.h CLI/CLI.hpp nlohmann/json.hpp; do
    if [ -e /usr/include/$h ] || [ -e /usr/local/include/$h ]; then echo "header $h: yes"; else echo "header $h: no"; fi
  done
  echo "cblas.h: $(ls /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h /usr/include/openblas/cblas.h /usr/include/cblas.h 2>/dev/null | head -1)"
  echo "libcublas: $(ldconfig -p | grep -m1 'libcublas.so' | awk '{print $NF}') $(ls /usr/local/cuda/lib64/libcublas.so* 2>/dev/null | head -1)"
  echo "libcudnn: $(ldconfig -p | grep -m1 'libcudnn.so' | awk '{print $NF}') $(ls /usr/local/cuda/lib*/libcudnn.so* 2>/dev/null | head -1)"
  echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)"
} > "$OUT/env.txt" 2>&1
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
step machine ok 0 "${gpu_name:-no GPU seen}; $(grep nvcc "$OUT/env.txt")"

# Where cuBLAS / cuDNN live, for binaries built here or carried.
libdirs=/usr/local/cuda/lib64:/usr/local/cuda/lib
for py in /opt/torch/.venv/bin/python3 python3; do
  d=$($py -c 'import nvidia.cublas, nvidia.cudnn, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib:" + os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null) && libdirs=$libdirs:$d && break
done
export LD_LIBRARY_PATH=$libdirs:${LD_LIBRARY_PATH:-}

# ---------------------------------------------------------------- 2. build
t=$(now)
BIN=""
can_build=yes
for h in fmt/core.h gtest/gtest.h CLI/CLI.hpp nlohmann/json.hpp; do
  [ -e /usr/include/$h ] || [ -e /usr/local/include/$h ] || can_build=no
done
if [ "$can_build" = yes ] && command -v nvcc >/dev/null && command -v cmake >/dev/null; then
  gen=""; command -v ninja >/dev/null && gen="-G Ninja"
  if cmake -S . -B build-gpu $gen -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
       -DATTN_WERROR=ON > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j "$JOBS" >> "$OUT/build.log" 2>&1; then
    BIN=build-gpu
    step build ok $(( $(now) - t )) "built here for sm_90 (warnings as errors)"
  else
    step build FAIL $(( $(now) - t )) "see build.log"
  fi
else
  echo "missing build dependencies here (see env.txt)" > "$OUT/build.log"
fi
if [ -z "$BIN" ] && [ -f gpu-bundle/bundle.tar.xz ]; then
  rm -rf /tmp/attn-bundle && mkdir -p /tmp/attn-bundle
  tar -xJf gpu-bundle/bundle.tar.xz -C /tmp/attn-bundle >> "$OUT/build.log" 2>&1
  BIN=/tmp/attn-bundle/bundle
  export LD_LIBRARY_PATH=$BIN/lib:$LD_LIBRARY_PATH
  step build ok $(( $(now) - t )) "carried bundle of commit $(cat $BIN/COMMIT | cut -c1-10)"
fi
if [ -z "$BIN" ]; then
  step build FAIL $(( $(now) - t )) "no build and no carried bundle"
  printf '%s\n' "${rows[@]}" | tee "$OUT/summary.md"
  exit 1
fi

# ---------------------------------------------------------------- 3. tests
t=$(now)
timeout 300 "$BIN/attn_tests" --gtest_output=xml:"$OUT/tests.xml" > "$OUT/tests.log" 2>&1
rc=$?
passed=$(grep -c '^\[       OK \]' "$OUT/tests.log")
failed=$(grep -c '^\[  FAILED  \].*(' "$OUT/tests.log")
skipped=$(grep -c '^\[  SKIPPED \].*(' "$OUT/tests.log")
step tests $([ $rc -eq 0 ] && echo ok || echo FAIL) $(( $(now) - t )) "passed $passed, failed $failed, skipped $skipped (rc $rc)"

# ---------------------------------------------------------------- 4. memcheck
t=$(now)
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$san" ]; then
  timeout 240 "$san" --tool memcheck --error-exitcode 99 "$BIN/attn_tests" \
    --gtest_filter='Ops/BackendParity*:Cuda*:FusedCuda*:*OnGpu*' > "$OUT/memcheck.log" 2>&1
  rc=$?
  verdict=$(grep -m1 'ERROR SUMMARY' "$OUT/memcheck.log")
  step memcheck $([ $rc -eq 0 ] && echo ok || echo FAIL) $(( $(now) - t )) "${verdict:-no summary} (rc $rc)"
else
  step memcheck skip 0 "compute-sanitizer not found"
fi

# ---------------------------------------------------------------- 5. benchmarks
t=$(now)
{
  timeout 150 "$BIN/attn" bench backend --device cuda
  echo
  timeout 60 "$BIN/attn" bench core
  if "$BIN/attn" bench --help 2>/dev/null | grep -q kernels; then
    echo
    timeout 200 "$BIN/attn" bench kernels --device cuda
  fi
  if "$BIN/attn" --help 2>/dev/null | grep -q demo; then
    echo
    # the translator end to end on the GPU (generated task: ../shared does not travel)
    timeout 90 "$BIN/attn" demo --synthetic --device cuda --time-limit 40 --out /tmp/attn-gpu-demo
  fi
} > "$OUT/bench.txt" 2>&1
rc=$?
copy=$(awk '$1 == "copy" {for (i = 1; i <= NF; i++) if ($i ~ /^GB\/s=/) print $i}' "$OUT/bench.txt" | head -1)
step bench $([ $rc -eq 0 ] && echo ok || echo FAIL) $(( $(now) - t )) "copy ${copy:-?}; full table in bench.txt"

# ---------------------------------------------------------------- 6. summary
{
  echo "| step       | status | time   | detail |"
  echo "|------------|--------|--------|--------|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "total $(( $(now) - t_start ))s; logs: env.txt build.log tests.log tests.xml memcheck.log bench.txt"
} > "$OUT/summary.md"
grep -E '^(gemm|copy|add|exp|tanh|sum_|max_|softmax|log_softmax|attention|lstm|softmax_nll)' "$OUT/bench.txt" | head -40
cat "$OUT/summary.md"
