#!/usr/bin/env bash
# Builds, on this (CPU-only) machine, a self-contained CUDA build to carry to a GPU machine that
# cannot build the project itself (no fmt / GoogleTest / OpenBLAS development files there):
#   bash scripts/gpu-bundle.sh        -> gpu-bundle/ (attn, attn_tests, the few shared libraries
#                                        they need besides the GPU machine's own CUDA libraries)
# then call the device tool with carry: ["gpu-bundle"]; tools/gpu-check.sh uses it when present.
# The two binaries share most of their bytes (static OpenBLAS), so the folder travels as one
# xz archive: about 7 MB instead of 75.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-portable -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON -DATTN_PORTABLE=ON \
  -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90}
cmake --build build-portable -j "$(nproc)"
stage_root=$(mktemp -d)
trap 'rm -rf "$stage_root"' EXIT  # also when a step below fails
stage=$stage_root/bundle
mkdir -p "$stage/lib"
cp build-portable/attn build-portable/attn_tests "$stage/"
# Shared libraries the binaries need that are not part of the GPU machine's CUDA (cuBLAS and
# cuDNN come from there: they are hundreds of MB).
# The C++ runtime stays the GPU machine's: its cuBLAS may need a newer one than ours.
for lib in $(ldd "$stage/attn_tests" | awk '/=>/ {print $3}'); do
  case "$(basename "$lib")" in
    libcublas*|libcudnn*|libcuda.so*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
git describe --always --dirty --abbrev=40 > "$stage/COMMIT" 2>/dev/null || echo "not a git checkout" > "$stage/COMMIT"
bash scripts/src-hash.sh > "$stage/SRCHASH"  # tools/gpu-check.sh refuses to call a stale bundle current
rm -rf gpu-bundle && mkdir -p gpu-bundle
tar -cJf gpu-bundle/bundle.tar.xz -C "$stage_root" bundle
ls -la gpu-bundle
