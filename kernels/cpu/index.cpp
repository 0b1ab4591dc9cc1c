// CPU gather / scatter-add of rows: the embedding lookup and its gradient.
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

namespace {
void check_indices(const Tensor& indices, int64_t rows, const char* op) {
  const int64_t* idx = indices.data<int64_t>();
  const int64_t n = indices.numel(), s = indices.dim() ? indices.stride(0) : 1;
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = idx[i * s];
    ATTN_CHECK(v >= 0 && v < rows, IndexError,
               "{}: index {} at position {} is out of range for {} rows", op, v, i, rows);
  }
}
}  // namespace

void CpuBackend::index_select(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  check_indices(indices, weight.size(0), "embedding");
  gather_rows(out, weight, indices);
}

void CpuBackend::gather_rows(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  const int64_t D = weight.size(1), N = indices.numel();
  const int64_t* idx = indices.data<int64_t>();
  const int64_t si = indices.dim() ? indices.stride(0) : 1;
  dispatch_all(weight.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.data<T>();
    T* o = out.data<T>();
    const int64_t ws0 = weight.stride(0), ws1 = weight.stride(1);
    const int64_t os0 = out.stride(0), os1 = out.stride(1);
    parallel_for(N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* src = w + idx[i * si] * ws0;
        T* dst = o + i * os0;
        if (ws1 == 1 && os1 == 1) {
          std::memcpy(dst, src, static_cast<size_t>(D) * sizeof(T));
        } else {
          for (int64_t j = 0; j < D; ++j) dst[j * os1] = src[j * ws1];
        }
      }
    });
  });
}

void CpuBackend::index_add(const Tensor& grad_weight, const Tensor& indices, const Tensor& grad) {
  const int64_t V = grad_weight.size(0), D = grad_weight.size(1), N = indices.numel();
  check_indices(indices, V, "embedding backward");
  const int64_t* idx = indices.data<int64_t>();
  const int64_t si = indices.dim() ? indices.stride(0) : 1;
  dispatch_float(grad.dtype(), "embedding backward", [&](auto tag) {
    using T = decltype(tag);
    T* gw = grad_weight.data<T>();
    const T* g = grad.data<T>();
    const int64_t gws0 = grad_weight.stride(0), gws1 = grad_weight.stride(1);
    const int64_t gs0 = grad.stride(0), gs1 = grad.stride(1);
    // Rows may repeat, so threads split the columns, never the rows.
    parallel_for(D, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(N, 1)), [&](int64_t b, int64_t e) {
      for (int64_t i = 0; i < N; ++i) {
        T* dst = gw + idx[i * si] * gws0;
        const T* src = g + i * gs0;
        for (int64_t j = b; j < e; ++j) dst[j * gws1] += src[j * gs1];
      }
    });
  });
}

}  // namespace attn::cpu
