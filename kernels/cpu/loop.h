// Strided N-d loops for the CPU kernels, over the plans of kernels/iter.h.
//
// for_each_row() walks a flat range of an iteration space one inner row at a time; elementwise() runs a functor over it, with a unit-stride fast path the compiler
// vectorizes, split across OpenMP threads when the tensor is large enough to pay for it.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <tuple>
#include <utility>

#include "core/tensor.h"
#include "kernels/iter.h"

namespace attn::cpu {

using kernels::kMaxOperands;
using kernels::make_iter;
using kernels::make_rows;
using kernels::RowSpace;
using kernels::StridedIter;

// Below this many elements a kernel runs on one thread: waking the OpenMP team costs more.
inline constexpr int64_t kParallelGrain = 32768;

// fn(begin, end) over [0, n), split across threads when n >= grain.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (n < grain || omp_in_parallel() || omp_get_max_threads() == 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (n + nt - 1) / nt;
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  }
}

// Calls row(ptrs, inner_strides, count) for each inner row of the flat range [begin, end).
template <typename Row>
void for_each_row(const StridedIter& it, int64_t begin, int64_t end, Row&& row) {
  const int nops = it.nops;
  char* ptrs[kMaxOperands];
  int64_t inner_strides[kMaxOperands];
  if (it.ndim == 0) {  // a single element
    for (int k = 0; k < nops; ++k) {
      ptrs[k] = it.base[k];
      inner_strides[k] = 0;
    }
    if (begin < end) row(ptrs, inner_strides, int64_t{1});
    return;
  }
  const int nd = it.ndim;
  const int64_t inner = it.sizes[nd - 1];
  for (int k = 0; k < nops; ++k) inner_strides[k] = it.strides[k][nd - 1];
  // nd index of `begin`
  int64_t idx[16];
  SmallVector<int64_t, 8> idx_heap;
  int64_t* index = idx;
  if (nd > 16) {
    idx_heap.resize(nd);
    index = idx_heap.data();
  }
  int64_t rem = begin;
  for (int d = nd - 1; d >= 0; --d) {
    index[d] = rem % it.sizes[d];
    rem /= it.sizes[d];
  }
  int64_t pos = begin;
  while (pos < end) {
    for (int k = 0; k < nops; ++k) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += index[d] * it.strides[k][d];
      ptrs[k] = it.base[k] + off;
    }
    int64_t count = std::min(inner - index[nd - 1], end - pos);
    row(ptrs, inner_strides, count);
    pos += count;
    index[nd - 1] += count;
    for (int d = nd - 1; d > 0 && index[d] >= it.sizes[d]; --d) {
      index[d] = 0;
      ++index[d - 1];
    }
  }
}

namespace detail {
template <typename Out, typename... In, typename F, size_t... I>
inline void row_loop(char** p, const int64_t* s, int64_t n, F& f, std::index_sequence<I...>) {
  constexpr int64_t out_size = sizeof(Out);
  const bool contiguous = s[0] == out_size && ((s[I + 1] == int64_t(sizeof(In))) && ...);
  if (contiguous) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    std::tuple<const In*...> in{reinterpret_cast<const In*>(p[I + 1])...};
    for (int64_t i = 0; i < n; ++i) o[i] = f(std::get<I>(in)[i]...);
    return;
  }
  // One broadcast scalar operand next to contiguous ones is common (x * bias-like rows).
  for (int64_t i = 0; i < n; ++i) {
    *reinterpret_cast<Out*>(p[0] + i * s[0]) =
        f(*reinterpret_cast<const In*>(p[I + 1] + i * s[I + 1])...);
  }
}
}  // namespace detail

// out[i] = f(in_0[i], ..., in_k[i]) over an iterator made from (out, in_0, ..., in_k).
template <typename Out, typename... In, typename F>
void elementwise(const StridedIter& it, F f) {
  parallel_for(it.numel, kParallelGrain, [&](int64_t b, int64_t e) {
    for_each_row(it, b, e, [&](char** p, const int64_t* s, int64_t n) {
      detail::row_loop<Out, In...>(p, s, n, f, std::index_sequence_for<In...>{});
    });
  });
}

// Accumulator type: sums of float are carried in double.
template <typename T>
struct acc_type {
  using type = T;
};
template <>
struct acc_type<float> {
  using type = double;
};
template <typename T>
using acc_t = typename acc_type<T>::type;

}  // namespace attn::cpu

