// Vectorized reductions over one contiguous row, shared by the CPU softmax, softmax + NLL and
// attention kernels. Sums are taken in float over blocks of 256 (which vectorizes: a float to
// double conversion in the loop does not) and the block sums carried in double.
#pragma once

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

// sum_j exp(x[j] - shift)
template <typename T>
inline acc_t<T> row_sum_exp(const T* x, int64_t n, T shift) {
  constexpr int64_t kBlock = 256;
  acc_t<T> total = 0;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t j1 = j0 + kBlock < n ? j0 + kBlock : n;
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (int64_t j = j0; j < j1; ++j) part += exp_t(x[j] - shift);
    total += static_cast<acc_t<T>>(part);
  }
  return total;
}

// sum_j x[j]
template <typename T>
inline acc_t<T> row_sum(const T* x, int64_t n) {
  constexpr int64_t kBlock = 256;
  acc_t<T> total = 0;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t j1 = j0 + kBlock < n ? j0 + kBlock : n;
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (int64_t j = j0; j < j1; ++j) part += x[j];
    total += static_cast<acc_t<T>>(part);
  }
  return total;
}

}  // namespace attn::cpu
