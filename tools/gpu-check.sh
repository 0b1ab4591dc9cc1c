#!/usr/bin/env bash
# The whole GPU check in one device call (see docs/gpu-log.md and the README), most wanted
# results first, inside a time budget (BUDGET_S, default 480 s: one call may run 600 s):
#   1. what the machine has (GPU, driver, toolkit, libraries, build dependencies);
#   2. the binaries: the bundle built here by scripts/gpu-bundle.sh and carried along (carry:
#      ["gpu-bundle"]), else a CUDA build for sm_90 there when it has the build dependencies;
#   3. the GPU tests (op parity, fused kernels, cuDNN, allocator, optimizers);
#   4. the benchmarks (bandwidth / GEMM vs cuBLAS; the fused kernels vs composed and cuDNN), and
#      an Nsight Compute profile of the fused kernels at shape L;
#   5. compute-sanitizer memcheck on a subset of the GPU tests;
#   6. the translator trained on the GPU for a few seconds (attn demo);
#   7. the rest of the test suite (the CPU tests), with what time is left.
# Every step has a time cap from what is left of the budget; $OUT/summary.md is rewritten after
# each step, so a run cut short still says how far it got. Full logs are under $OUT, at most 8
# files (the device tool brings back no more): env.txt (with ldd), build.log (only when built
# there), tests-gpu.log, bench.txt (with the demo), ncu.txt, memcheck.log, tests-cpu.log,
# summary.md. The exit status is 1 when a step failed or the bundle is stale.
# Usage (device tool): bash tools/gpu-check.sh
# Dry run here (no GPU; every step runs, the GPU tests skip), after bash scripts/gpu-bundle.sh (without
# the bundle it builds, which takes ~15 minutes on 2 cores): OUT=/tmp/x ALLOW_NO_GPU=1 BUDGET_S=200 bash tools/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
JOBS=$(nproc)
t_start=$(date +%s)
DEADLINE=$((t_start + ${BUDGET_S:-480}))
GPU_TESTS='Ops/BackendParity.*:Cuda.*:FusedCuda.*:LstmModule.Cudnn*:Errors.*'
MEMCHECK_OURS='Cuda.*:FusedCuda.AttentionMatchesCpu:FusedCuda.SoftmaxNllMatchesCpu:FusedCuda.LstmMatchesCpu:Ops/BackendParity.CudaMatchesCpu/softmax*'
MEMCHECK_VENDOR='LstmModule.Cudnn*:Ops/BackendParity.CudaMatchesCpu/matmul*'
declare -a rows
now() { date +%s; }
# cap N: N seconds, or what is left of the budget (less a margin) when that is less.
cap() {
  local left=$((DEADLINE - $(now) - 10))
  if ((left < $1)); then echo $((left > 5 ? left : 5)); else echo "$1"; fi
}
left() { echo $((DEADLINE - $(now))); }
write_summary() {
  {
    echo "| step       | status | time   | detail |"
    echo "|------------|--------|--------|--------|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "total $(($(now) - t_start))s of a ${BUDGET_S:-480}s budget; logs: env.txt build.log tests-gpu.log bench.txt ncu.txt memcheck.log tests-cpu.log"
  } > "$OUT/summary.md"
}
step() {  # step NAME STATUS SECONDS DETAIL
  rows+=("$(printf '| %-10s | %-6s | %5ss | %s |' "$1" "$2" "$3" "$4")")
  write_summary
}
trap 'write_summary; cat "$OUT/summary.md"' EXIT
# gtest counts of a log: "passed P, failed F, skipped S"
counts() {
  echo "passed $(grep -c '^\[       OK \]' "$1"), failed $(grep -c '^\[  FAILED  \].*(' "$1"), skipped $(grep -c '^\[  SKIPPED \].*(' "$1")"
}

# ---------------------------------------------------------------- 1. the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git describe --always --dirty --abbrev=40 2>/dev/null || echo unknown)"
  echo "sources: $(bash scripts/src-hash.sh)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1)"
  echo "g++: $(g++ --version 2>/dev/null | head -1)"
  echo "ninja: $(ninja --version 2>/dev/null)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
  for h in fmt/core.h gtest/gtest.h CLI/CLI.hpp nlohmann/json.hpp; do
    if [ -e /usr/include/$h ] || [ -e /usr/local/include/$h ]; then echo "header $h: yes"; else echo "header $h: no"; fi
  done
  echo "cblas.h: $(ls /usr/include/x86_64-linux-gnu/openblas*/cblas.h /usr/include/openblas/cblas.h /usr/include/cblas.h 2>/dev/null | head -1)"
  echo "libcublas (ldconfig): $(ldconfig -p | grep -m1 'libcublas.so' | awk '{print $NF}')"
  echo "libcudnn (ldconfig): $(ldconfig -p | grep -m1 'libcudnn.so' | awk '{print $NF}')"
  ls /usr/local/cuda/lib64/libcublas.so* /usr/local/cuda/lib*/libcudnn.so* 2>/dev/null | sed 's/^/toolkit lib: /'
  echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)"
} > "$OUT/env.txt" 2>&1
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
step machine ok 0 "${gpu_name:-no GPU seen}; $(grep nvcc "$OUT/env.txt")"

# Where cuBLAS / cuDNN live, for binaries built here or carried: the toolkit, else PyTorch's
# wheels (CUDA 13 wheels put cuBLAS and the runtime in nvidia/cu13/lib, cuDNN in nvidia/cudnn/lib).
libdirs=/usr/local/cuda/lib64:/usr/local/cuda/lib
for sp in /opt/torch/.venv/lib/python3*/site-packages /usr/local/lib/python3*/dist-packages /usr/lib/python3/dist-packages; do
  for d in "$sp"/nvidia/cu13/lib "$sp"/nvidia/cudnn/lib "$sp"/nvidia/cublas/lib "$sp"/nvidia/cuda_runtime/lib "$sp"/nvidia/cuda_nvrtc/lib; do
    [ -d "$d" ] && libdirs=$libdirs:$d
  done
done
export LD_LIBRARY_PATH=$libdirs:${LD_LIBRARY_PATH:-}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$OUT/env.txt"

# ---------------------------------------------------------------- 2. the binaries
t=$(now)
BIN=""
: > "$OUT/build.log"
if [ -f gpu-bundle/bundle.tar.xz ]; then
  rm -rf /tmp/attn-bundle && mkdir -p /tmp/attn-bundle
  # tar needs the xz program for .tar.xz, which minimal images may lack; Python's tarfile does not
  if { tar -xJf gpu-bundle/bundle.tar.xz -C /tmp/attn-bundle ||
       python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' gpu-bundle/bundle.tar.xz /tmp/attn-bundle; } \
       >> "$OUT/build.log" 2>&1 && [ -x /tmp/attn-bundle/bundle/attn_tests ]; then
    BIN=/tmp/attn-bundle/bundle
    export LD_LIBRARY_PATH=$BIN/lib:$LD_LIBRARY_PATH
    src=$(bash scripts/src-hash.sh)
    built=$(cat "$BIN/SRCHASH" 2>/dev/null || echo none)
    # a stale bundle still runs (its results say something), but the summary says so
    step binaries $([ "$src" = "$built" ] && echo ok || echo STALE) $(($(now) - t)) \
      "bundle of $(cut -c1-12 "$BIN/COMMIT"); sources $src, bundle built from $built"
  else
    step binaries FAIL $(($(now) - t)) "the carried bundle did not unpack (build.log)"
  fi
fi
if [ -z "$BIN" ]; then
  can_build=yes
  for h in fmt/core.h gtest/gtest.h CLI/CLI.hpp nlohmann/json.hpp; do
    [ -e /usr/include/$h ] || [ -e /usr/local/include/$h ] || can_build=no
  done
  if [ "$can_build" = yes ] && command -v nvcc >/dev/null && command -v cmake >/dev/null; then
    gen=""
    command -v ninja >/dev/null && gen="-G Ninja"
    if timeout -k 10 "$(cap 300)" cmake -S . -B build-gpu $gen -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON \
         -DCMAKE_CUDA_ARCHITECTURES=90 -DATTN_WERROR=ON >> "$OUT/build.log" 2>&1 &&
       timeout -k 10 "$(cap 300)" cmake --build build-gpu -j "$JOBS" >> "$OUT/build.log" 2>&1; then
      BIN=build-gpu
      step binaries ok $(($(now) - t)) "built here for sm_90 (warnings as errors)"
    else
      step binaries FAIL $(($(now) - t)) "build failed or timed out (build.log)"
    fi
  else
    step binaries FAIL $(($(now) - t)) "no carried bundle and no build dependencies here (env.txt)"
  fi
fi
[ -s "$OUT/build.log" ] || rm -f "$OUT/build.log"
[ -n "$BIN" ] || exit 1
ldd "$BIN/attn_tests" > /tmp/attn-ldd.txt 2>&1
{ echo "--- ldd attn_tests"; cat /tmp/attn-ldd.txt; } >> "$OUT/env.txt"
if grep -q 'not found' /tmp/attn-ldd.txt; then
  step libraries FAIL 0 "$(grep 'not found' /tmp/attn-ldd.txt | awk '{print $1}' | tr '\n' ' ')missing (env.txt)"
  exit 1
fi

# ---------------------------------------------------------------- 3. the GPU tests
t=$(now)
timeout -k 10 "$(cap 150)" "$BIN/attn_tests" --gtest_filter="$GPU_TESTS" > "$OUT/tests-gpu.log" 2>&1
rc=$?
# A GPU test skips only without a usable GPU (it says why): on the GPU machine that is a failure.
skipped=$(grep -c '^\[  SKIPPED \].*(' "$OUT/tests-gpu.log")
passed=$(grep -c '^\[       OK \]' "$OUT/tests-gpu.log")
step gpu-tests $([ $rc -eq 0 ] && [ "$skipped" -eq 0 ] && echo ok || echo FAIL) $(($(now) - t)) \
  "$(counts "$OUT/tests-gpu.log") (rc $rc) $(grep -m1 -o 'no GPU: .*' "$OUT/tests-gpu.log")"
if ((skipped > 0 && passed < 10)) && [ -z "${ALLOW_NO_GPU:-}" ]; then  # ALLOW_NO_GPU=1: a dry run here
  step stop FAIL 0 "no usable GPU: the later steps cannot work"
  exit 1
fi

# ---------------------------------------------------------------- 4. the benchmarks
t=$(now)
brc=0
{
  timeout -k 10 "$(cap 60)" "$BIN/attn" bench backend --device cuda || brc=$?
  echo
  timeout -k 10 "$(cap 60)" "$BIN/attn" bench kernels --device cuda --shape T1 --shape T2 || brc=$?
  echo
  timeout -k 10 "$(cap 120)" "$BIN/attn" bench kernels --device cuda --shape L || brc=$?
} > "$OUT/bench.txt" 2>&1
copy=$(awk '$1 == "copy" {for (i = 1; i <= NF; i++) if ($i ~ /^GB\/s=/) print $i}' "$OUT/bench.txt" | head -1)
step bench $([ $brc -eq 0 ] && echo ok || echo FAIL) $(($(now) - t)) "copy ${copy:-?}; rc $brc; tables in bench.txt"

# ---------------------------------------------------------------- 4b. a hardware profile of the fused kernels
# Nsight Compute on the fused attention / softmax+NLL / LSTM cell kernels at shape L: achieved
# bandwidth, occupancy and stall reasons, for the next round of kernel work (no counters on
# gVisor machines: then it just says so).
t=$(now)
ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -z "$ncu_bin" ]; then
  step ncu skip 0 "ncu not found"
elif (($(left) < 150)); then
  step ncu skip 0 "not enough time left"
else
  # one run per kernel (--kernel matches by substring: attention_additive and attention_dot
  # apart): --launch-count counts the launches that pass the name filter, and one run over all
  # kernels saw only the first (additive attention's checks used them all)
  rc=0
  : > "$OUT/ncu.txt"
  for family in attention_additive:attention attention_dot:attention softmax_nll:softmax_nll lstm:lstm_; do
    (($(left) < 60)) && { echo "skipped (time): ${family%%:*}" >> "$OUT/ncu.txt"; break; }
    echo "=== ncu ${family%%:*}" >> "$OUT/ncu.txt"
    timeout -k 10 "$(cap 20)" "$ncu_bin" --clock-control none --kernel-name "regex:${family#*:}" --launch-count 4 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats \
      "$BIN/attn" bench kernels --device cuda --kernel "${family%%:*}" --shape L --reps 1 --warmup 0 --min-time 0 \
      >> "$OUT/ncu.txt" 2>&1 || rc=$?
  done
  step ncu $([ $rc -eq 0 ] && echo ok || echo FAIL) $(($(now) - t)) "$(grep -c 'Memory Throughput' "$OUT/ncu.txt") kernel reports in ncu.txt (rc $rc)"
fi

# ---------------------------------------------------------------- 5. memcheck
t=$(now)
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ ! -x "$san" ]; then
  step memcheck skip 0 "compute-sanitizer not found"
elif (($(left) < 100)); then
  step memcheck skip 0 "not enough time left"
else
  # our kernels first; the tests that mostly run cuBLAS / cuDNN code (slow to instrument) after,
  # if time is left (gtest runs tests in its own order whatever the filter's)
  rc=0
  : > "$OUT/memcheck.log"  # (an earlier run into the same OUT left its verdicts)
  for filter in "$MEMCHECK_OURS" "$MEMCHECK_VENDOR"; do
    (($(left) < 60)) && { echo "skipped (time): $filter" >> "$OUT/memcheck.log"; break; }
    echo "=== memcheck $filter" >> "$OUT/memcheck.log"
    # exact-size device blocks, freed at once: an overrun into a cached block's slack is seen
    ATTN_CUDA_NO_CACHING=1 timeout -k 10 "$(cap 90)" "$san" --tool memcheck --error-exitcode 99 "$BIN/attn_tests" --gtest_filter="$filter" \
      >> "$OUT/memcheck.log" 2>&1 || rc=$?
  done
  verdict=$(grep 'ERROR SUMMARY' "$OUT/memcheck.log" | tr '\n' ' ')
  step memcheck $([ $rc -eq 0 ] && echo ok || echo FAIL) $(($(now) - t)) "${verdict:-no summary}; $(counts "$OUT/memcheck.log") (rc $rc)"
fi

# ---------------------------------------------------------------- 6. the translator on the GPU
t=$(now)
if (($(left) < 70)); then
  step demo skip 0 "not enough time left"
else
  # the generated task: ../shared does not travel
  timeout -k 10 "$(cap 60)" "$BIN/attn" demo --synthetic --device cuda --time-limit 30 --out /tmp/attn-gpu-demo > /tmp/attn-demo.txt 2>&1
  rc=$?
  { echo; echo "--- attn demo --synthetic --device cuda"; cat /tmp/attn-demo.txt; } >> "$OUT/bench.txt"
  step demo $([ $rc -eq 0 ] && echo ok || echo FAIL) $(($(now) - t)) "$(grep -m1 -iE 'exact|accuracy|BLEU' /tmp/attn-demo.txt) (rc $rc; in bench.txt)"
fi

# ---------------------------------------------------------------- 7. the CPU tests
t=$(now)
if (($(left) < 40)); then
  step cpu-tests skip 0 "not enough time left (CI runs them anyway)"
else
  timeout -k 10 "$(cap 600)" "$BIN/attn_tests" --gtest_filter="-$GPU_TESTS" > "$OUT/tests-cpu.log" 2>&1
  rc=$?
  step cpu-tests $([ $rc -eq 0 ] && echo ok || echo FAIL) $(($(now) - t)) "$(counts "$OUT/tests-cpu.log") (rc $rc$([ $rc -eq 124 ] && echo ', out of time'))"
fi

grep -E '^(gemm|copy|add|exp|tanh|sum_|max_|softmax|log_softmax|attention|lstm|softmax_nll)' "$OUT/bench.txt" | head -60
! grep -qE '^\| [a-z-]+ +\| (FAIL|STALE) ' "$OUT/summary.md"
