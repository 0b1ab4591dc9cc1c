// Vectorized reductions over one contiguous row, shared by the CPU softmax and softmax + NLL
// kernels. Sums are taken in float over blocks (which vectorizes: a float to double conversion
// in the loop does not) and the block sums carried in double.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

template <typename T>
inline T row_max(const T* x, int64_t n) {
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  return mx;
}

// The index of the first largest element of x[0, n), n >= 1, or of the first NaN (NaN wins, as
// in PyTorch): the max and a NaN test in one vectorized pass, then the search for its first
// position (a branch per element made a whole-tensor max ~1 ns per element).
template <typename T>
inline int64_t row_argmax(const T* x, int64_t n) {
  T mx = -std::numeric_limits<T>::infinity();
  int nan = 0;
#pragma omp simd reduction(max : mx) reduction(| : nan)
  for (int64_t j = 0; j < n; ++j) {
    mx = x[j] > mx ? x[j] : mx;
    nan |= x[j] != x[j];
  }
  // the first position holding mx (or NaN): blocks tested with a vectorized any, then scanned
  auto hit = [&](T v) { return nan ? v != v : v == mx; };
  constexpr int64_t kBlock = 64;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t j1 = j0 + kBlock < n ? j0 + kBlock : n;
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t j = j0; j < j1; ++j) any |= hit(x[j]);
    if (any)
      for (int64_t j = j0; j < j1; ++j)
        if (hit(x[j])) return j;
  }
  return 0;  // not reached: x holds its max (or its NaN)
}

// log(sum_j exp(x[j])) = max + log_sum, kept in two parts: a float x[j] - lse loses the low bits of
// a large lse (logits near 1e5: errors of 0.03, PyTorch's and ours), where (x[j] - max) - log_sum
// is exact in its first step near the max. In one pass over memory, and sum_j x[j] too when
// `sum` is given.
// A row of the vocabulary (tens of KB) does not stay in L1: a max pass then a sum-of-exp pass
// read it twice from L2 or DRAM. Here each block of kBlock elements (4 KB of float) is read from
// memory once: its max, then its sum of exp(x - block max) from L1, merged into the running
// (max, sum) with one rescale per block (exp in double). A block of -inf contributes nothing
// (its shift is 0, not -inf - -inf); NaN propagates; +inf gives NaN, as log-sum-exp does.
template <typename Acc>
struct LogSumExp {
  Acc max;      // the row's largest element (-inf for a row of -inf)
  Acc log_sum;  // log(sum_j exp(x[j] - max))
  Acc value() const { return max + log_sum; }
};

template <typename T>
inline LogSumExp<acc_t<T>> row_logsumexp(const T* x, int64_t n, acc_t<T>* sum = nullptr) {
  using Acc = acc_t<T>;
  constexpr int64_t kBlock = 1024;
  Acc m = -std::numeric_limits<Acc>::infinity(), total = 0, plain = 0;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t len = j0 + kBlock < n ? kBlock : n - j0;
    const T* b = x + j0;
    const T bm = row_max(b, len);
    const T shift = bm == -std::numeric_limits<T>::infinity() ? T(0) : bm;
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (int64_t j = 0; j < len; ++j) part += exp_nonpositive_t(b[j] - shift);
    if (sum) {
      T p = 0;
#pragma omp simd reduction(+ : p)
      for (int64_t j = 0; j < len; ++j) p += b[j];
      plain += static_cast<Acc>(p);
    }
    if (part == T(0)) continue;  // every element -inf (or underflowed)
    const Acc bshift = static_cast<Acc>(shift);
    if (bshift > m) {
      total = total * std::exp(m - bshift) + static_cast<Acc>(part);
      m = bshift;
    } else {
      total += static_cast<Acc>(part) * std::exp(bshift - m);
    }
  }
  if (sum) *sum = plain;
  return {m, std::log(total)};
}

}  // namespace attn::cpu
