// CPU optimizer updates, one fused pass per parameter, with PyTorch's formulas
// (torch.optim.SGD and torch.optim.Adam / AdamW, foreach=False).
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

void CpuBackend::sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                          const kernels::SgdConfig& cfg) {
  dispatch_float(param.dtype(), "sgd", [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* buf = cfg.momentum != 0.0 ? momentum_buffer.data<T>() : nullptr;
    const T lr = static_cast<T>(cfg.lr), wd = static_cast<T>(cfg.weight_decay);
    const T mom = static_cast<T>(cfg.momentum), damp = static_cast<T>(1.0 - cfg.dampening);
    parallel_for(param.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T d = g[i];
        if (wd != T(0)) d += wd * p[i];
        if (buf) {
          buf[i] = cfg.first_step ? d : mom * buf[i] + damp * d;
          d = cfg.nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= lr * d;
      }
    });
  });
}

void CpuBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                           const Tensor& exp_avg_sq, const kernels::AdamConfig& cfg) {
  dispatch_float(param.dtype(), "adam", [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    const double bc1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(cfg.step));
    const double bc2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(cfg.step));
    const T step_size = static_cast<T>(cfg.lr / bc1);
    const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T b1 = static_cast<T>(cfg.beta1), b2 = static_cast<T>(cfg.beta2);
    const T eps = static_cast<T>(cfg.eps), wd = static_cast<T>(cfg.weight_decay);
    const T decay = static_cast<T>(1.0 - cfg.lr * cfg.weight_decay);
    parallel_for(param.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T d = g[i];
        if (cfg.decoupled_weight_decay) {
          p[i] *= decay;
        } else if (wd != T(0)) {
          d += wd * p[i];
        }
        m[i] = b1 * m[i] + (T(1) - b1) * d;
        v[i] = b2 * v[i] + (T(1) - b2) * d * d;
        const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
      }
    });
  });
}

}  // namespace attn::cpu
