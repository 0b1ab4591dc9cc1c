// CPU fused attention, forward and backward (see core/ops/attention.cpp for the math).
//
// Forward: one (b, t) row per task: scores over s < len (additive: v . tanh(q + k_s), the tanh
// vectorized over A; dot: q . values_s), max-subtracted softmax, context = sum_s w_s values_s.
// Backward: one batch entry per task, because all T query rows of entry b add into the same
// dkeys[b] and dvalues[b]; dv is summed over the batch from per-thread partials.
#include <omp.h>

#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

namespace {

template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  acc_t<T> acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<acc_t<T>>(a[i] * b[i]);
  return static_cast<T>(acc);
}

// v . tanh(q + k), also storing the tanh values in `cache` when given.
template <typename T>
inline T additive_score(const T* q, const T* k, const T* v, int64_t n, T* cache) {
  acc_t<T> acc = 0;
  if (cache) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) {
      const T th = tanh_t(q[i] + k[i]);
      cache[i] = th;
      acc += static_cast<acc_t<T>>(v[i] * th);
    }
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += static_cast<acc_t<T>>(v[i] * tanh_t(q[i] + k[i]));
  }
  return static_cast<T>(acc);
}

}  // namespace

void CpuBackend::attention_forward(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                                   const Tensor& lengths, const Tensor& context, const Tensor& weights,
                                   const Tensor& tanh_cache) {
  const int64_t B = query.size(0), T = query.size(1), D = query.size(2);
  const int64_t S = values.size(1), H = values.size(2);
  const bool additive = keys.defined();
  const int64_t* len = lengths.data<int64_t>();
  dispatch_float(query.dtype(), "attention", [&](auto tag) {
    using Tt = decltype(tag);
    const Tt* qp = query.data<Tt>();
    const Tt* kp = additive ? keys.data<Tt>() : nullptr;
    const Tt* vp = additive ? v.data<Tt>() : nullptr;
    const Tt* ep = values.data<Tt>();
    Tt* cp = context.data<Tt>();
    Tt* wp = weights.data<Tt>();
    Tt* cache = tanh_cache.defined() ? tanh_cache.data<Tt>() : nullptr;
    const int64_t work = S * (additive ? D : 0) + S * H;
    parallel_for(B * T, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / T, n = len[b];
        const Tt* q = qp + r * D;
        const Tt* e = ep + b * S * H;
        Tt* w = wp + r * S;
        Tt mx = -std::numeric_limits<Tt>::infinity();
        for (int64_t s = 0; s < n; ++s) {
          w[s] = additive ? additive_score(q, kp + (b * S + s) * D, vp, D, cache ? cache + (r * S + s) * D : nullptr)
                          : dot(q, e + s * H, H);
          mx = std::max(mx, w[s]);
        }
        acc_t<Tt> total = 0;
        for (int64_t s = 0; s < n; ++s) {
          w[s] = exp_t(w[s] - mx);
          total += w[s];
        }
        const Tt inv = static_cast<Tt>(1.0 / static_cast<double>(total));
        for (int64_t s = 0; s < n; ++s) w[s] *= inv;
        for (int64_t s = n; s < S; ++s) w[s] = Tt(0);
        Tt* c = cp + r * H;
        for (int64_t h = 0; h < H; ++h) c[h] = Tt(0);
        for (int64_t s = 0; s < n; ++s) {
          const Tt ws = w[s];
          const Tt* es = e + s * H;
#pragma omp simd
          for (int64_t h = 0; h < H; ++h) c[h] += ws * es[h];
        }
      }
    });
  });
}

void CpuBackend::attention_backward(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                                    const Tensor& lengths, const Tensor& weights, const Tensor& tanh_cache,
                                    const Tensor& d_context, const Tensor& d_weights, const Tensor& dquery,
                                    const Tensor& dkeys, const Tensor& dv, const Tensor& dvalues) {
  const int64_t B = query.size(0), T = query.size(1), D = query.size(2);
  const int64_t S = values.size(1), H = values.size(2);
  const bool additive = keys.defined();
  const int64_t* len = lengths.data<int64_t>();
  dispatch_float(query.dtype(), "attention backward", [&](auto tag) {
    using Tt = decltype(tag);
    const Tt* qp = query.data<Tt>();
    const Tt* kp = additive ? keys.data<Tt>() : nullptr;
    const Tt* vp = additive ? v.data<Tt>() : nullptr;
    const Tt* ep = values.data<Tt>();
    const Tt* wp = weights.data<Tt>();
    const Tt* dcp = d_context.data<Tt>();
    const Tt* dwp = d_weights.defined() ? d_weights.data<Tt>() : nullptr;
    Tt* dqp = dquery.data<Tt>();
    Tt* dkp = additive ? dkeys.data<Tt>() : nullptr;
    Tt* dep = dvalues.data<Tt>();
    const Tt* cache = tanh_cache.defined() ? tanh_cache.data<Tt>() : nullptr;
    const int nthreads = omp_get_max_threads();
    std::vector<acc_t<Tt>> dv_partial(additive ? static_cast<size_t>(nthreads * D) : 0, 0);
    const int64_t work = T * S * (H + (additive ? 2 * D : D));
    parallel_for(B, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work, 1)), [&](int64_t b0, int64_t b1) {
      acc_t<Tt>* dv_partial_thread = additive ? dv_partial.data() + omp_get_thread_num() * D : nullptr;
      // dv of one batch entry is summed in the element type (vectorizes), then added in double.
      std::vector<Tt> dscore(static_cast<size_t>(S)), dv_entry(additive ? static_cast<size_t>(D) : 0);
      Tt* dv_local = dv_entry.data();
      for (int64_t b = b0; b < b1; ++b) {
        for (int64_t a = 0; a < (additive ? D : 0); ++a) dv_local[a] = Tt(0);
        const int64_t n = len[b];
        const Tt* e = ep + b * S * H;
        Tt* de = dep + b * S * H;
        for (int64_t i = 0; i < S * H; ++i) de[i] = Tt(0);
        if (additive)
          for (int64_t i = 0; i < S * D; ++i) dkp[b * S * D + i] = Tt(0);
        for (int64_t t = 0; t < T; ++t) {
          const int64_t r = b * T + t;
          const Tt* w = wp + r * S;
          const Tt* dc = dcp + r * H;
          const Tt* q = qp + r * D;
          Tt* dq = dqp + r * D;
          // d(weights) from the context plus any direct gradient, then through the softmax
          acc_t<Tt> wsum = 0;
          for (int64_t s = 0; s < n; ++s) {
            Tt dws = dot(dc, e + s * H, H) + (dwp ? dwp[r * S + s] : Tt(0));
            dscore[s] = dws;
            wsum += static_cast<acc_t<Tt>>(w[s] * dws);
          }
          for (int64_t s = 0; s < n; ++s) dscore[s] = w[s] * (dscore[s] - static_cast<Tt>(wsum));
          for (int64_t i = 0; i < D; ++i) dq[i] = Tt(0);
          for (int64_t s = 0; s < n; ++s) {
            const Tt ws = w[s], ds = dscore[s];
            Tt* des = de + s * H;
#pragma omp simd
            for (int64_t h = 0; h < H; ++h) des[h] += ws * dc[h];
            if (additive) {
              const Tt* ks = kp + (b * S + s) * D;
              Tt* dks = dkp + (b * S + s) * D;
              if (cache) {
                const Tt* ths = cache + (r * S + s) * D;
#pragma omp simd
                for (int64_t a = 0; a < D; ++a) {
                  const Tt th = ths[a];
                  const Tt dpre = ds * vp[a] * (Tt(1) - th * th);
                  dq[a] += dpre;
                  dks[a] += dpre;
                  dv_local[a] += ds * th;
                }
                continue;
              }
#pragma omp simd
              for (int64_t a = 0; a < D; ++a) {
                const Tt th = tanh_t(q[a] + ks[a]);
                const Tt dpre = ds * vp[a] * (Tt(1) - th * th);
                dq[a] += dpre;
                dks[a] += dpre;
                dv_local[a] += ds * th;
              }
            } else {
              const Tt* es = e + s * H;
#pragma omp simd
              for (int64_t h = 0; h < H; ++h) {
                dq[h] += ds * es[h];
                des[h] += ds * q[h];
              }
            }
          }
        }
        for (int64_t a = 0; a < (additive ? D : 0); ++a) dv_partial_thread[a] += static_cast<acc_t<Tt>>(dv_local[a]);
      }
    });
    if (additive) {
      Tt* dvp = dv.data<Tt>();
      for (int64_t a = 0; a < D; ++a) {
        acc_t<Tt> acc = 0;
        for (int th = 0; th < nthreads; ++th) acc += dv_partial[static_cast<size_t>(th * D + a)];
        dvp[a] = static_cast<Tt>(acc);
      }
    }
  });
}

}  // namespace attn::cpu
