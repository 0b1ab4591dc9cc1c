// CPU fused softmax + NLL: one pass over the row for the log-sum-exp (row_logsumexp), one pick; the
// backward writes grad * (softmax - q) row by row from the logits and the saved log-sum-exp,
// kept as (max, log_sum) per row (see LogSumExp).
// Rows run in parallel; the vocabulary is the vectorized inner loop (fast exp for float).
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/loop.h"
#include "kernels/cpu/row_math.h"

namespace attn::cpu {

void CpuBackend::softmax_nll_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                                     const Tensor& losses, const Tensor& lse) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const int64_t* t = target.data<int64_t>();
  const int64_t ts = target.stride(0);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t c = t[i * ts];
    ATTN_CHECK(c == ignore_index || (c >= 0 && c < V), IndexError,
               "softmax_nll: target {} at position {} is out of range for {} classes", c, i, V);
  }
  dispatch_float(logits.dtype(), "softmax_nll", [&](auto tag) {
    using T = decltype(tag);
    using Acc = acc_t<T>;
    const T* x = logits.data<T>();
    T* lp = losses.data<T>();
    T* lsep = lse.data<T>();
    parallel_for(N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(4 * V, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = x + i * V;
        Acc row_total = 0;
        const auto lse_parts = row_logsumexp(row, V, smoothing == 0.0 ? nullptr : &row_total);
        const Acc l = lse_parts.value();
        lsep[2 * i] = static_cast<T>(lse_parts.max);
        lsep[2 * i + 1] = static_cast<T>(lse_parts.log_sum);
        const int64_t c = t[i * ts];
        if (c == ignore_index) {
          lp[i] = T(0);
          continue;
        }
        const Acc nll = l - static_cast<Acc>(row[c]);
        lp[i] = static_cast<T>(smoothing == 0.0 ? nll : (1.0 - smoothing) * nll + smoothing * (l - row_total / static_cast<Acc>(V)));
      }
    });
  });
}

void CpuBackend::softmax_nll_backward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                      double smoothing, const Tensor& lse, const Tensor& grad_losses,
                                      const Tensor& grad_logits) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const int64_t* t = target.data<int64_t>();
  const int64_t ts = target.stride(0);
  dispatch_float(logits.dtype(), "softmax_nll backward", [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.data<T>();
    const T* lsep = lse.data<T>();
    const T* gl = grad_losses.data<T>();
    const int64_t gs = grad_losses.stride(0);
    T* gx = grad_logits.data<T>();
    const T uniform = static_cast<T>(smoothing / static_cast<double>(V));
    const T hit = static_cast<T>(1.0 - smoothing);
    parallel_for(N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(2 * V, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = x + i * V;
        T* out = gx + i * V;
        const int64_t c = t[i * ts];
        if (c == ignore_index) {
          for (int64_t j = 0; j < V; ++j) out[j] = T(0);
          continue;
        }
        const T g = gl[i * gs], mx = lsep[2 * i], log_sum = lsep[2 * i + 1];
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) out[j] = g * (exp_nonpositive_t((row[j] - mx) - log_sum) - uniform);
        out[c] -= g * hit;
      }
    });
  });
}

}  // namespace attn::cpu
