// CPU negative log-likelihood: pick -logp[i, target[i]] per row, and its scatter backward.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

void CpuBackend::nll_loss(const Tensor& losses, const Tensor& logp, const Tensor& target,
                          int64_t ignore_index) {
  const int64_t N = logp.size(0), C = logp.size(1);
  const int64_t* t = target.data<int64_t>();
  const int64_t st = target.stride(0);
  for (int64_t i = 0; i < N; ++i) {
    int64_t c = t[i * st];
    ATTN_CHECK(c == ignore_index || (c >= 0 && c < C), IndexError,
               "nll_loss: target {} at position {} is out of range for {} classes", c, i, C);
  }
  dispatch_float(logp.dtype(), "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    const T* lp = logp.data<T>();
    T* out = losses.data<T>();
    const int64_t s0 = logp.stride(0), s1 = logp.stride(1), so = losses.stride(0);
    for (int64_t i = 0; i < N; ++i) {
      int64_t c = t[i * st];
      out[i * so] = c == ignore_index ? T(0) : -lp[i * s0 + c * s1];
    }
  });
}

void CpuBackend::nll_loss_backward(const Tensor& grad_logp, const Tensor& grad_losses,
                                   const Tensor& target, int64_t ignore_index) {
  const int64_t N = grad_logp.size(0);
  const int64_t* t = target.data<int64_t>();
  const int64_t st = target.stride(0);
  dispatch_float(grad_logp.dtype(), "nll_loss backward", [&](auto tag) {
    using T = decltype(tag);
    T* g = grad_logp.data<T>();
    const T* gl = grad_losses.data<T>();
    const int64_t s0 = grad_logp.stride(0), s1 = grad_logp.stride(1), sl = grad_losses.stride(0);
    for (int64_t i = 0; i < N; ++i) {
      int64_t c = t[i * st];
      if (c != ignore_index) g[i * s0 + c * s1] = -gl[i * sl];
    }
  });
}

}  // namespace attn::cpu
