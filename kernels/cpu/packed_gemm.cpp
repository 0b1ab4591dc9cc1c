#include "kernels/cpu/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu/loop.h"
#include "kernels/cpu/simd.h"

namespace attn::cpu {

namespace {

// Rows per tile: its 2 * kRows accumulators (simd::Vec, the width of the instruction set
// compiled for) and the two B vectors must fit the vector registers.
using simd::kLanes, simd::load, simd::Vec;
#if defined(__AVX512F__)
constexpr int kRows = 8;
#else
constexpr int kRows = 6;  // AVX2: 6 x 2 of the 16 ymm registers; SSE2, NEON
#endif
constexpr int64_t kPanel = 2 * kLanes;

// C rows [0, R) x panel columns [0, ncols) from A rows [0, R) and one packed panel.
template <int R>
inline void micro_tile(int64_t K, const float* a, int64_t lda, const float* panel, float* c, int64_t ldc,
                       int64_t ncols, bool accumulate) {
  Vec lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = Vec{};
  for (int64_t k = 0; k < K; ++k) {
    const Vec b0 = load(panel + k * kPanel), b1 = load(panel + k * kPanel + kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float av = a[r * lda + k];
      lo[r] += av * b0;
      hi[r] += av * b1;
    }
  }
  for (int r = 0; r < R; ++r) {
    float row[kPanel];
    simd::store(row, lo[r]);
    simd::store(row + kLanes, hi[r]);
    float* cr = c + r * ldc;
    if (accumulate) {
      for (int64_t j = 0; j < ncols; ++j) cr[j] += row[j];
    } else {
      for (int64_t j = 0; j < ncols; ++j) cr[j] = row[j];
    }
  }
}

// The last M % kRows rows: a tile of exactly that height.
template <int R = kRows - 1>
inline void tail_tile(int rows, int64_t K, const float* a, int64_t lda, const float* panel, float* c, int64_t ldc,
                      int64_t ncols, bool accumulate) {
  if constexpr (R > 0) {
    if (rows == R) return micro_tile<R>(K, a, lda, panel, c, ldc, ncols, accumulate);
    return tail_tile<R - 1>(rows, K, a, lda, panel, c, ldc, ncols, accumulate);
  }
}

// Two-vector shuffle of 8 lanes (indices 8-15 pick from b), for GCC and Clang.
#if defined(__clang__)
#define ATTN_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define ATTN_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, I8{i0, i1, i2, i3, i4, i5, i6, i7})
#endif

// out[k * ldo + j] = in[j * ldi + k] for j, k < 8: eight rows of 8 floats transposed with
// three rounds of two-vector shuffles (unpack pairs, then pairs of pairs, then halves).
inline void transpose8x8(const float* in, int64_t ldi, float* out, int64_t ldo) {
  typedef float V8 __attribute__((vector_size(32)));
  [[maybe_unused]] typedef int I8 __attribute__((vector_size(32)));
  V8 r[8], t[8], u[8];
  for (int j = 0; j < 8; ++j) std::memcpy(&r[j], in + j * ldi, sizeof(V8));
  for (int j = 0; j < 8; j += 2) {
    t[j] = ATTN_SHUFFLE8(r[j], r[j + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[j + 1] = ATTN_SHUFFLE8(r[j], r[j + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int j = 0; j < 8; j += 4) {
    u[j] = ATTN_SHUFFLE8(t[j], t[j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[j + 1] = ATTN_SHUFFLE8(t[j], t[j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[j + 2] = ATTN_SHUFFLE8(t[j + 1], t[j + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[j + 3] = ATTN_SHUFFLE8(t[j + 1], t[j + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int k = 0; k < 4; ++k) {  // u[k] holds k and k + 4 of rows 0-3, u[k + 4] of rows 4-7
    const V8 lo = ATTN_SHUFFLE8(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    const V8 hi = ATTN_SHUFFLE8(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    std::memcpy(out + k * ldo, &lo, sizeof(V8));
    std::memcpy(out + (k + 4) * ldo, &hi, sizeof(V8));
  }
}

}  // namespace

PackedPanels pack_panels(const float* b, int64_t K, int64_t N, int64_t row_stride, int64_t col_stride) {
  PackedPanels p;
  p.K = K;
  p.N = N;
  p.panels = (N + kPanel - 1) / kPanel;
  p.storage = empty(Shape{p.panels * K * kPanel}, {DType::Float32, kCPU});
  float* out = p.storage.data<float>();
  parallel_for(p.panels, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(K * kPanel, 1)), [&](int64_t p0, int64_t p1) {
    const float* const src = b;  // local copies: GCC reloads captured references after each store
    float* const packed = out;
    for (int64_t q = p0; q < p1; ++q) {
      float* const dst = packed + q * K * kPanel;
      const int64_t n0 = q * kPanel, ncols = std::min<int64_t>(kPanel, N - n0);
      if (ncols < kPanel) std::memset(dst, 0, static_cast<size_t>(K * kPanel) * sizeof(float));  // the padding
      if (col_stride < row_stride) {  // rows of B are contiguous-ish: read along n
        for (int64_t k = 0; k < K; ++k) {
          const float* s = src + k * row_stride + n0 * col_stride;
          for (int64_t j = 0; j < ncols; ++j) dst[k * kPanel + j] = s[j * col_stride];
        }
      } else {
        // Columns of B are contiguous (the transpose of a weight): 8 x 8 blocks transposed in
        // registers where the columns are unit-stride and whole, then the rest element by element
        // in blocks of 16 values of a column, so that the panel rows written stay in L1. (Column
        // by column over all of K touched a new cache line per element: 1.7 ns per element.)
        int64_t k_done = 0;
        if (row_stride == 1 && ncols == kPanel) {
          k_done = K / 8 * 8;
          for (int64_t k0 = 0; k0 < k_done; k0 += 8)
            for (int64_t j0 = 0; j0 < kPanel; j0 += 8)
              transpose8x8(src + (n0 + j0) * col_stride + k0, col_stride, dst + k0 * kPanel + j0, kPanel);
        }
        constexpr int64_t kBlock = 16;
        for (int64_t k0 = k_done; k0 < K; k0 += kBlock) {
          const int64_t k1 = std::min(K, k0 + kBlock);
          for (int64_t j = 0; j < ncols; ++j) {
            const float* s = src + (n0 + j) * col_stride;
            for (int64_t k = k0; k < k1; ++k) dst[k * kPanel + j] = s[k * row_stride];
          }
        }
      }
    }
  });
  return p;
}

void packed_gemm(int64_t M, const float* a, int64_t lda, const PackedPanels& b, float* c, int64_t ldc, bool accumulate) {
  const int64_t K = b.K, N = b.N;
  if (M == 0 || N == 0) return;
  const float* packed = b.data();
  // Threads take panels; with fewer panels than threads (a narrow product: I / 32 panels for an
  // LSTM's dx), each panel's rows are cut into parts too, so that no thread idles.
  const int64_t row_tiles = (M + kRows - 1) / kRows;
  const int64_t parts = std::clamp<int64_t>((omp_get_max_threads() + b.panels - 1) / b.panels, 1, row_tiles);
  const int64_t part_rows = (row_tiles + parts - 1) / parts * kRows;
  // about 2^18 multiply-adds per thread before a second one pays for waking it
  const int64_t per_task = std::max<int64_t>(1, std::min(M, part_rows) * K * kPanel);
  parallel_for(b.panels * parts, std::max<int64_t>(1, (int64_t{1} << 18) / per_task), [&](int64_t t0, int64_t t1) {
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t q = task / parts, m0 = task % parts * part_rows, m1 = std::min(M, m0 + part_rows);
      const float* panel = packed + q * K * kPanel;
      const int64_t n0 = q * kPanel, ncols = std::min<int64_t>(kPanel, N - n0);
      int64_t m = m0;
      for (; m + kRows <= m1; m += kRows) micro_tile<kRows>(K, a + m * lda, lda, panel, c + m * ldc + n0, ldc, ncols, accumulate);
      if (m < m1) tail_tile(static_cast<int>(m1 - m), K, a + m * lda, lda, panel, c + m * ldc + n0, ldc, ncols, accumulate);
    }
  });
}

}  // namespace attn::cpu
