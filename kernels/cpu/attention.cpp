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

// The feature-dim sums (dot products, scores) accumulate in the element type: the vectorized
// reduction keeps 16 float partial sums (a relative error ~1e-7 over a few hundred terms, like
// the composed GEMM), where a double accumulator cost a convert and a latency-bound add chain
// per element (half the forward's time). Sums over source positions stay in double.
template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// out[s] = x . rows[s] for s < n (rows `stride` apart): four rows at a time, so that four
// independent accumulator chains hide the FMA latency a single dot product waits on.
template <typename T>
inline void dots(const T* x, const T* rows, int64_t stride, int64_t n, int64_t len, T* out) {
  int64_t s = 0;
  for (; s + 4 <= n; s += 4) {
    const T *r0 = rows + s * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t i = 0; i < len; ++i) {
      a0 += x[i] * r0[i];
      a1 += x[i] * r1[i];
      a2 += x[i] * r2[i];
      a3 += x[i] * r3[i];
    }
    out[s] = a0;
    out[s + 1] = a1;
    out[s + 2] = a2;
    out[s + 3] = a3;
  }
  for (; s < n; ++s) out[s] = dot(x, rows + s * stride, len);
}

// v . tanh(q + k), also storing the tanh values in `cache` when given.
template <typename T>
inline T additive_score(const T* q, const T* k, const T* v, int64_t n, T* cache) {
  T acc = 0;
  if (cache) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) {
      const T th = tanh_t(q[i] + k[i]);
      cache[i] = th;
      acc += v[i] * th;
    }
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += v[i] * tanh_t(q[i] + k[i]);
  }
  return acc;
}

// The additive score's terms for one (query row, source position) with d(score) = ds:
// dq += dpre, dkeys = dpre on the entry's first query row (+= on the next ones), dv += ds * tanh,
// where dpre = ds * v * (1 - tanh^2); the tanh read from the forward's cache or recomputed.
template <bool kCached, bool kFirst, typename T>
inline void additive_grad_terms(const T* q, const T* ks, const T* ths, const T* v, T ds, int64_t D, T* dq, T* dks,
                                T* dv) {
#pragma omp simd
  for (int64_t a = 0; a < D; ++a) {
    T th;
    if constexpr (kCached) th = ths[a];
    else th = tanh_t(q[a] + ks[a]);
    const T dpre = ds * v[a] * (T(1) - th * th);
    dq[a] += dpre;
    if constexpr (kFirst) dks[a] = dpre;
    else dks[a] += dpre;
    dv[a] += ds * th;
  }
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
        if (additive) {
          for (int64_t s = 0; s < n; ++s)
            w[s] = additive_score(q, kp + (b * S + s) * D, vp, D, cache ? cache + (r * S + s) * D : nullptr);
        } else {
          dots(q, e, H, n, H, w);
        }
        for (int64_t s = 0; s < n; ++s) mx = std::max(mx, w[s]);
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
      // dquery and dv are sums over source positions: over blocks of kBlock positions in the
      // element type (vectorizes), between blocks in double (S can be in the thousands).
      constexpr int64_t kBlock = 64;
      std::vector<Tt> dscore(static_cast<size_t>(S)), dq_blk(static_cast<size_t>(D)), dv_blk(additive ? static_cast<size_t>(D) : 0);
      std::vector<acc_t<Tt>> dq_acc(static_cast<size_t>(D));
      Tt* dv_local = dv_blk.data();
      for (int64_t a = 0; a < (additive ? D : 0); ++a) dv_local[a] = Tt(0);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = len[b];
        const Tt* e = ep + b * S * H;
        Tt* de = dep + b * S * H;
        Tt* dkb = additive ? dkp + b * S * D : nullptr;
        // Positions past the length get no gradient; the others are written by the first
        // query row (t == 0) and added to by the next ones: no zeroing pass over the rest.
        for (int64_t i = n * H; i < S * H; ++i) de[i] = Tt(0);
        if (additive)
          for (int64_t i = n * D; i < S * D; ++i) dkb[i] = Tt(0);
        if (T == 0) {
          for (int64_t i = 0; i < n * H; ++i) de[i] = Tt(0);
          if (additive)
            for (int64_t i = 0; i < n * D; ++i) dkb[i] = Tt(0);
        }
        for (int64_t t = 0; t < T; ++t) {
          const int64_t r = b * T + t;
          const bool first = t == 0;
          const Tt* w = wp + r * S;
          const Tt* dc = dcp + r * H;
          const Tt* q = qp + r * D;
          Tt* dq = dqp + r * D;
          // d(weights) from the context plus any direct gradient, then through the softmax
          dots(dc, e, H, n, H, dscore.data());
          acc_t<Tt> wsum = 0;
          for (int64_t s = 0; s < n; ++s) {
            if (dwp) dscore[s] += dwp[r * S + s];
            wsum += static_cast<acc_t<Tt>>(w[s] * dscore[s]);
          }
          // the difference in double: d(weights) and their weighted mean nearly cancel at large S
          for (int64_t s = 0; s < n; ++s)
            dscore[s] = static_cast<Tt>(static_cast<acc_t<Tt>>(w[s]) * (static_cast<acc_t<Tt>>(dscore[s]) - wsum));
          Tt* dq_local = dq_blk.data();
          for (int64_t i = 0; i < D; ++i) {
            dq_local[i] = Tt(0);
            dq_acc[static_cast<size_t>(i)] = 0;
          }
          for (int64_t s = 0; s < n; ++s) {
            if (s > 0 && s % kBlock == 0) {  // flush the block's float sums into double
              for (int64_t i = 0; i < D; ++i) {
                dq_acc[static_cast<size_t>(i)] += static_cast<acc_t<Tt>>(dq_local[i]);
                dq_local[i] = Tt(0);
              }
              for (int64_t a = 0; a < (additive ? D : 0); ++a) {
                dv_partial_thread[a] += static_cast<acc_t<Tt>>(dv_local[a]);
                dv_local[a] = Tt(0);
              }
            }
            const Tt ws = w[s], ds = dscore[s];
            Tt* des = de + s * H;
            if (first) {
#pragma omp simd
              for (int64_t h = 0; h < H; ++h) des[h] = ws * dc[h];
            } else {
#pragma omp simd
              for (int64_t h = 0; h < H; ++h) des[h] += ws * dc[h];
            }
            if (additive) {
              const Tt* ks = kp + (b * S + s) * D;
              const Tt* ths = cache ? cache + (r * S + s) * D : nullptr;
              Tt* dks = dkb + s * D;
              if (cache && first) additive_grad_terms<true, true>(q, ks, ths, vp, ds, D, dq_local, dks, dv_local);
              else if (cache) additive_grad_terms<true, false>(q, ks, ths, vp, ds, D, dq_local, dks, dv_local);
              else if (first) additive_grad_terms<false, true>(q, ks, ths, vp, ds, D, dq_local, dks, dv_local);
              else additive_grad_terms<false, false>(q, ks, ths, vp, ds, D, dq_local, dks, dv_local);
            } else {
              const Tt* es = e + s * H;
#pragma omp simd
              for (int64_t h = 0; h < H; ++h) {
                dq_local[h] += ds * es[h];
                des[h] += ds * q[h];
              }
            }
          }
          for (int64_t i = 0; i < D; ++i) dq[i] = static_cast<Tt>(dq_acc[static_cast<size_t>(i)] + static_cast<acc_t<Tt>>(dq_local[i]));
        }
      }
      for (int64_t a = 0; a < (additive ? D : 0); ++a) dv_partial_thread[a] += static_cast<acc_t<Tt>>(dv_local[a]);
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
