// CPU random kernels: element i of the output takes Philox word (offset + i) of `seed` (normal:
// the pair of words 2*floor(i/2), +1), exactly as the CUDA kernels do.
#include <cmath>
#include <numbers>

#include "core/philox.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

namespace {

// fn(i, w) for i in [b, e) with w = philox::word(seed, offset + i), each block of four words
// computed once (word() per element computed the whole block for each of its four words:
// 9 ns per element of a dropout mask on two threads).
template <typename F>
inline void for_each_word(uint64_t seed, uint64_t offset, int64_t b, int64_t e, F&& fn) {
  int64_t i = b;
  while (i < e) {
    const uint64_t index = offset + static_cast<uint64_t>(i);
    const philox::U32x4 r = philox::block(seed, index >> 2);
    for (uint64_t lane = index & 3; lane < 4 && i < e; ++lane, ++i) fn(i, r.v[lane]);
  }
}

}  // namespace

void CpuBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low,
                                double high) {
  ATTN_ASSERT(out.is_contiguous(), "random output must be contiguous");
  dispatch_float(out.dtype(), "uniform", [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T lo = static_cast<T>(low), span = static_cast<T>(high - low);
    parallel_for(out.numel(), kParallelGrain / 8, [&](int64_t b, int64_t e) {
      for_each_word(seed, offset, b, e, [&](int64_t i, uint32_t w) {
        o[i] = philox::affine(lo, span, static_cast<T>(philox::to_unit_float(w)));
      });
    });
  });
}

void CpuBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean,
                               double stddev) {
  ATTN_ASSERT(out.is_contiguous(), "random output must be contiguous");
  dispatch_float(out.dtype(), "normal", [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    parallel_for(out.numel(), kParallelGrain / 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        // Box-Muller on the pair of words of this element's pair; in double so that both
        // devices round to the same float.
        const uint64_t pair = offset + static_cast<uint64_t>(i & ~int64_t{1});
        const double u1 = 1.0 - static_cast<double>(philox::to_unit_float(philox::word(seed, pair)));
        const double u2 = static_cast<double>(philox::to_unit_float(philox::word(seed, pair + 1)));
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double theta = 2.0 * std::numbers::pi * u2;
        const double z = (i & 1) ? r * std::sin(theta) : r * std::cos(theta);
        o[i] = static_cast<T>(philox::affine(mean, stddev, z));
      }
    });
  });
}

void CpuBackend::dropout_mask(const Tensor& mask, uint64_t seed, uint64_t offset, double p) {
  ATTN_ASSERT(mask.is_contiguous(), "dropout mask must be contiguous");
  dispatch_float(mask.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    T* m = mask.data<T>();
    const float pf = static_cast<float>(p);
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    parallel_for(mask.numel(), kParallelGrain / 8, [&](int64_t b, int64_t e) {
      for_each_word(seed, offset, b, e, [&](int64_t i, uint32_t w) { m[i] = philox::to_unit_float(w) >= pf ? scale : T(0); });
    });
  });
}

}  // namespace attn::cpu
