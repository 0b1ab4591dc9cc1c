// A float GEMM for a right-hand matrix used many times: C (M, N) = (or +=) A (M, K) @ B (K, N),
// with B packed once into column panels. Written for the LSTM recurrence, where the same
// W_hh multiplies a small batch (M = 32..128 rows) at every time step.
//
// Why not OpenBLAS: for these shapes it re-packs all of B at every call (1 MB for H = 256) and
// reached 100-120 GFLOP/s on the two Zen 4 cores (175 on large GEMMs); this kernel packs once
// and reached 185-195 on (32 x 256) @ (256 x 1024). `attn bench core` times the two side by
// side; tests/test_packed_gemm.cpp checks the values against OpenBLAS.
//
// Layout: B is cut into panels of kPanel columns (two vector registers wide); panel p holds
// B[k][p*kPanel + j] at [(p*K + k)*kPanel + j], zero padded. A micro-tile of kRows rows x kPanel
// columns keeps its 2*kRows accumulators in registers while k runs (one broadcast of A and two
// vector loads of B per 2*kRows FMAs), summing in k order like a plain dot product.
//   AVX-512: 8 rows x 32 columns (16 zmm accumulators); AVX2: 6 x 16; SSE2 / NEON: 6 x 8.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace attn::cpu {

// The engine uses this kernel (CpuBackend::prepare_rhs) only where the compiler emits fused
// multiply-adds, as OpenBLAS's kernels do. Without them (an SSE2-only build: -DATTN_NATIVE=OFF
// without ATTN_PORTABLE) its products round twice and differ from OpenBLAS's in the last bits, and
// results would depend on which path a product took: a layer's first call is unpacked, later
// ones packed, so a resumed run differed from an uninterrupted one, and beam 1 from greedy.
#if defined(__FMA__) || defined(__aarch64__)
inline constexpr bool kPackedGemmUsed = true;
#else
inline constexpr bool kPackedGemmUsed = false;
#endif

struct PackedPanels {
  int64_t K = 0, N = 0, panels = 0;
  // A float tensor for its storage: the CPU allocator's blocks are 64-byte aligned and cached
  // (a fresh 12 MB buffer from the system cost 5 ms of page faults, more than the packing).
  Tensor storage;
  const float* data() const { return storage.data<float>(); }
};

// Packs B (K, N), element (k, n) at b[k * row_stride + n * col_stride] (any strides: a
// transposed view packs as well as a row-major one).
PackedPanels pack_panels(const float* b, int64_t K, int64_t N, int64_t row_stride, int64_t col_stride);

// C (M, N) = A (M, K) @ B, or += when accumulate; A rows `lda` apart, C rows `ldc` apart, both
// with unit column stride. Splits the panels across OpenMP threads when the product is large.
void packed_gemm(int64_t M, const float* a, int64_t lda, const PackedPanels& b, float* c, int64_t ldc, bool accumulate);

}  // namespace attn::cpu
