// One vector register of float for the CPU loops vectorized by hand (GCC / Clang vector
// extensions), at the width of the instruction set compiled for. Where GCC's auto-vectorizer
// does well (elementwise loops) the kernels leave it to GCC; these are for what it does badly:
// sums kept in registers across an outer loop (it keeps arrays of partial sums on the stack),
// and horizontal sums (an `omp simd reduction` ends in 15 dependent scalar adds through memory).
#pragma once

#include <cstdint>
#include <cstddef>
#include <utility>

namespace attn::cpu::simd {

#if defined(__AVX512F__)
inline constexpr int64_t kLanes = 16;
#elif defined(__AVX__)
inline constexpr int64_t kLanes = 8;
#else
inline constexpr int64_t kLanes = 4;  // SSE2, NEON
#endif

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// The same vector at float alignment, allowed to alias floats: unaligned loads and stores that
// leave the accumulators in registers (a memcpy through their address kept them on the stack).
typedef float UnalignedVec __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float)), may_alias));

inline Vec load(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
inline void store(float* p, Vec v) { *reinterpret_cast<UnalignedVec*>(p) = v; }

// v with lanes [w, w + kLanes) mod kLanes moved to [0, kLanes): one permute.
template <int64_t w, size_t... lane>
inline Vec rotated(Vec v, std::index_sequence<lane...>) {
  return __builtin_shufflevector(v, v, static_cast<int>((lane + w) % kLanes)...);
}

// The sum of the lanes by halves: log2(kLanes) permutes and adds.
template <int64_t w = kLanes / 2>
inline float sum(Vec v) {
  v += rotated<w>(v, std::make_index_sequence<kLanes>{});
  if constexpr (w > 1) return sum<w / 2>(v);
  else return v[0];
}

}  // namespace attn::cpu::simd
