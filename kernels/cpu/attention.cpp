// CPU fused attention, forward and backward (see core/ops/attention.cpp for the math).
//
// Forward: one (b, t) row per task: scores over s < len (additive: v . tanh(q + k_s), the tanh
// vectorized over A, from exp(2q) exp(2k_s) when the keys come prepared; dot: q . values_s),
// max-subtracted softmax, context = sum_s w_s values_s.
// Backward: one batch entry per task, because all T query rows of entry b add into the same
// dkeys[b] and dvalues[b]; dv is summed over the batch from per-thread partials.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/loop.h"
#include "kernels/cpu/simd.h"

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

// float: the four sums in vector registers, each added up once by simd::sum (GCC's reduction
// epilogue for the loop above is 15 dependent scalar adds per row, through the stack).
inline void dots(const float* x, const float* rows, int64_t stride, int64_t n, int64_t len, float* out) {
  using simd::kLanes, simd::load, simd::Vec;
  int64_t s = 0;
  for (; s + 4 <= n; s += 4) {
    const float *r0 = rows + s * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
    Vec a0{}, a1{}, a2{}, a3{};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) {
      const Vec xv = load(x + i);
      a0 += xv * load(r0 + i);
      a1 += xv * load(r1 + i);
      a2 += xv * load(r2 + i);
      a3 += xv * load(r3 + i);
    }
    float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    for (; i < len; ++i) {
      t0 += x[i] * r0[i];
      t1 += x[i] * r1[i];
      t2 += x[i] * r2[i];
      t3 += x[i] * r3[i];
    }
    out[s] = simd::sum(a0) + t0;
    out[s + 1] = simd::sum(a1) + t1;
    out[s + 2] = simd::sum(a2) + t2;
    out[s + 3] = simd::sum(a3) + t3;
  }
  for (; s < n; ++s) {
    const float* r = rows + s * stride;
    Vec a{};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) a += load(x + i) * load(r + i);
    float t = 0;
    for (; i < len; ++i) t += x[i] * r[i];
    out[s] = simd::sum(a) + t;
  }
}

// v . th(i) over i < n, also storing the th(i) in `cache` when given, where th(i) is
// tanh(q[i] + k[i]) computed by the caller's functor (capturing its pointers by value: through
// references GCC reloads them after every store to the cache).
template <typename T, typename TanhOf>
inline T additive_score(TanhOf th_of, const T* v, int64_t n, T* cache) {
  T acc = 0;
  if (cache) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) {
      const T th = th_of(i);
      cache[i] = th;
      acc += v[i] * th;
    }
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += v[i] * th_of(i);
  }
  return acc;
}

// tanh(q + k) from exponentials, qe = exp(2q) and ke = exp(2k) (AdditiveKeys in
// core/ops/fused.h): 1 - 2 / (1 + qe ke), a multiply, an add and a divide where the rational
// tanh_t takes ~15 operations. Both factors are finite (|q|, |k| <= 40), so the product is
// finite or inf (tanh 1) or 0 (tanh -1), never NaN.
template <typename T>
inline T tanh_from_exps(T qe, T ke) {
  return T(1) - T(2) / (T(1) + qe * ke);
}

// The row functors of additive_score: tanh(q[i] + k[i]) by the rational tanh_t, or from
// exponentials.
template <typename T>
inline auto tanh_of_sum(const T* q, const T* k) {
  return [q, k](int64_t i) { return tanh_t(q[i] + k[i]); };
}
template <typename T>
inline auto tanh_of_exps(const T* qe, const T* ke) {
  return [qe, ke](int64_t i) { return tanh_from_exps(qe[i], ke[i]); };
}

// v . tanh(q + k) from exponentials (qe = exp(2q), ke = exp(2k)), storing the tanh values in
// `cache` when given: the generic form, and float with the sums in vector registers (two
// chains, for the FMA latency) added up once.
template <typename T>
inline T additive_score_exps(const T* qe, const T* ke, const T* v, int64_t n, T* cache) {
  return additive_score(tanh_of_exps(qe, ke), v, n, cache);
}
inline float additive_score_exps(const float* qe, const float* ke, const float* v, int64_t n, float* cache) {
  using simd::kLanes, simd::load, simd::Vec;
  Vec a0{}, a1{};
  int64_t i = 0;
  const auto th = [&](int64_t j) { return 1.0f - 2.0f / (1.0f + load(qe + j) * load(ke + j)); };
  if (cache) {
    for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
      const Vec t0 = th(i), t1 = th(i + kLanes);
      simd::store(cache + i, t0);
      simd::store(cache + i + kLanes, t1);
      a0 += load(v + i) * t0;
      a1 += load(v + i + kLanes) * t1;
    }
  } else {
    for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
      a0 += load(v + i) * th(i);
      a1 += load(v + i + kLanes) * th(i + kLanes);
    }
  }
  const float rest = additive_score(tanh_of_exps(qe + i, ke + i), v + i, n - i, cache ? cache + i : nullptr);
  return simd::sum(a0 + a1) + rest;
}

// exp(2q) into qe when every |q[i]| <= 40 (the bound of the keys in AdditiveKeys); false if not.
template <typename T>
inline bool query_exp2(const T* q, int64_t n, T* qe) {
  T largest = 0;
#pragma omp simd reduction(max : largest)
  for (int64_t i = 0; i < n; ++i) largest = std::max(largest, std::abs(q[i]));
  if (!(largest <= T(40))) return false;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) qe[i] = exp_t(T(2) * q[i]);
  return true;
}

// out (H) = sum_{s < n} w[s] rows[s] (rows `stride` apart): the context of one query row.
template <typename T>
inline void weighted_sum(const T* w, const T* rows, int64_t stride, int64_t n, int64_t H, T* out) {
  for (int64_t h = 0; h < H; ++h) out[h] = T(0);
  for (int64_t s = 0; s < n; ++s) {
    const T ws = w[s];
    const T* rs = rows + s * stride;
#pragma omp simd
    for (int64_t h = 0; h < H; ++h) out[h] += ws * rs[h];
  }
}
// float: eight vectors of features at a time, their sums in registers while the positions stream
// past (one store per feature, where a load, an FMA and a store per position and feature made
// the store port the forward's bottleneck).
inline void weighted_sum(const float* w, const float* rows, int64_t stride, int64_t n, int64_t H, float* out) {
  using simd::kLanes, simd::load, simd::Vec;
  int64_t h = 0;
  for (; h + 8 * kLanes <= H; h += 8 * kLanes) {
    Vec a[8] = {};
    for (int64_t s = 0; s < n; ++s) {
      const float ws = w[s];
      const float* rs = rows + s * stride + h;
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) a[j] += ws * load(rs + j * kLanes);
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) simd::store(out + h + j * kLanes, a[j]);
  }
  for (; h + kLanes <= H; h += kLanes) {
    Vec a{};
    for (int64_t s = 0; s < n; ++s) a += w[s] * load(rows + s * stride + h);
    simd::store(out + h, a);
  }
  if (h < H) weighted_sum<float>(w, rows + h, stride, n, H - h, out + h);
}

// Source positions are summed in the element type over blocks of kBlock positions (vectorizes)
// and between blocks in double (S can be in the thousands).
inline constexpr int64_t kBlock = 64;

// Features per chunk of the backward: the chunk's sums over source positions stay in registers
// (two AVX-512 or four AVX2 vectors of float) while the positions stream past.
inline constexpr int64_t kChunk = 32;

// Where the backward gets th = tanh(q + k_s) of additive scoring: the forward's cache, the
// rational tanh of q + k_s, or 1 - 2 / (1 + qe ke_s) from exp(2q) and exp(2 keys) (then `q` and
// `k` point at those exponentials).
enum class Th { kCache, kRational, kExp };

// The gradient of one query row r over the feature chunk [a0, a0 + width) for all positions
// s < n, where ds[s] = d(score[s]):
//   additive (tanh th = tanh(q + k_s), see Th):
//     dpre = ds * v * (1 - th^2);  dq += sum_s dpre;  dkeys[s] (+)= dpre;  dv += sum_s ds * th
//   dot (k_s = values_s; v, cache unused):
//     dq += sum_s ds * values_s;   dvalues[s] (+)= ds * q + w[s] * dc   (the context's term too)
// `kFirst`: the entry's first query row writes dkeys / dvalues, later ones add. dq is written;
// dv (additive) is added to the caller's double sums.
template <bool kAdditive, Th kTh, bool kFirst, int64_t kWidth, typename T>
inline void grad_chunk(int64_t width_rt, int64_t n, int64_t stride, const T* ds, const T* w, const T* q, const T* k,
                       const T* th_rows, const T* v, const T* dc, T* dq, T* dk, acc_t<T>* dv_sum) {
  const int64_t width = kWidth > 0 ? kWidth : width_rt;
  T dq_blk[kChunk], dv_blk[kChunk];
  acc_t<T> dq_sum[kChunk];
  for (int64_t i = 0; i < width; ++i) dq_sum[i] = 0;
  for (int64_t s0 = 0; s0 < n; s0 += kBlock) {
    for (int64_t i = 0; i < width; ++i) dq_blk[i] = dv_blk[i] = T(0);
    const int64_t s1 = std::min(n, s0 + kBlock);
    for (int64_t s = s0; s < s1; ++s) {
      const T d = ds[s];
      const T* ks = k + s * stride;
      T* dks = dk + s * stride;
      if constexpr (kAdditive) {
        const T* ths = kTh == Th::kCache ? th_rows + s * stride : nullptr;
#pragma omp simd
        for (int64_t i = 0; i < width; ++i) {
          T th;
          if constexpr (kTh == Th::kCache) th = ths[i];
          // (the values, not the row functors: a lambda made here kept GCC from vectorizing)
          else if constexpr (kTh == Th::kExp) th = tanh_from_exps(q[i], ks[i]);
          else th = tanh_t(q[i] + ks[i]);
          const T dpre = d * v[i] * (T(1) - th * th);
          dq_blk[i] += dpre;
          if constexpr (kFirst) dks[i] = dpre;
          else dks[i] += dpre;
          dv_blk[i] += d * th;
        }
      } else {
        const T ws = w[s];
#pragma omp simd
        for (int64_t i = 0; i < width; ++i) {
          dq_blk[i] += d * ks[i];
          if constexpr (kFirst) dks[i] = d * q[i] + ws * dc[i];
          else dks[i] += d * q[i] + ws * dc[i];
        }
      }
    }
    for (int64_t i = 0; i < width; ++i) {
      dq_sum[i] += static_cast<acc_t<T>>(dq_blk[i]);
      if constexpr (kAdditive) dv_sum[i] += static_cast<acc_t<T>>(dv_blk[i]);
    }
  }
  for (int64_t i = 0; i < width; ++i) dq[i] = static_cast<T>(dq_sum[i]);
}

// grad_chunk over all features [0, D): full chunks with a compile-time width, then the rest.
template <bool kAdditive, Th kTh, bool kFirst, typename T>
inline void grad_row(int64_t D, int64_t n, const T* ds, const T* w, const T* q, const T* k, const T* th_rows,
                     const T* v, const T* dc, T* dq, T* dk, acc_t<T>* dv_sum) {
  int64_t a0 = 0;
  for (; a0 + kChunk <= D; a0 += kChunk)
    grad_chunk<kAdditive, kTh, kFirst, kChunk>(kChunk, n, D, ds, w, q + a0, k + a0, th_rows ? th_rows + a0 : nullptr,
                                                   v ? v + a0 : nullptr, dc ? dc + a0 : nullptr, dq + a0, dk + a0,
                                                   dv_sum ? dv_sum + a0 : nullptr);
  if (a0 < D)
    grad_chunk<kAdditive, kTh, kFirst, 0>(D - a0, n, D, ds, w, q + a0, k + a0, th_rows ? th_rows + a0 : nullptr,
                                              v ? v + a0 : nullptr, dc ? dc + a0 : nullptr, dq + a0, dk + a0,
                                              dv_sum ? dv_sum + a0 : nullptr);
}

}  // namespace

void CpuBackend::attention_forward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                                   const Tensor& values, const Tensor& lengths, const Tensor& context,
                                   const Tensor& weights, const Tensor& tanh_cache) {
  const int64_t B = query.size(0), T = query.size(1), D = query.size(2);
  const int64_t S = values.size(1), H = values.size(2);
  const bool additive = keys.defined();
  const int64_t* len = lengths.data<int64_t>();
  dispatch_float(query.dtype(), "attention", [&](auto tag) {
    using Tt = decltype(tag);
    const Tt* qp = query.data<Tt>();
    const Tt* kp = additive ? keys.data<Tt>() : nullptr;
    const Tt* kep = additive && keys_exp2.defined() ? keys_exp2.data<Tt>() : nullptr;
    const Tt* vp = additive ? v.data<Tt>() : nullptr;
    const Tt* ep = values.data<Tt>();
    Tt* cp = context.data<Tt>();
    Tt* wp = weights.data<Tt>();
    Tt* cache = tanh_cache.defined() ? tanh_cache.data<Tt>() : nullptr;
    const int64_t work = S * (additive ? D : 0) + S * H;
    parallel_for(B * T, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<Tt> qe(kep ? static_cast<size_t>(D) : 0);  // exp(2 query) of the row
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / T, n = len[b];
        const Tt* q = qp + r * D;
        const Tt* e = ep + b * S * H;
        Tt* w = wp + r * S;
        Tt mx = -std::numeric_limits<Tt>::infinity();
        if (kep && query_exp2(q, D, qe.data())) {
          for (int64_t s = 0; s < n; ++s)
            w[s] = additive_score_exps(qe.data(), kep + (b * S + s) * D, vp, D, cache ? cache + (r * S + s) * D : nullptr);
        } else if (additive) {
          for (int64_t s = 0; s < n; ++s)
            w[s] = additive_score(tanh_of_sum(q, kp + (b * S + s) * D), vp, D, cache ? cache + (r * S + s) * D : nullptr);
        } else {
          dots(q, e, H, n, H, w);
        }
        for (int64_t s = 0; s < n; ++s) mx = std::max(mx, w[s]);
        acc_t<Tt> total = 0;
        for (int64_t s = 0; s < n; ++s) {
          w[s] = exp_nonpositive_t(w[s] - mx);
          total += w[s];
        }
        const Tt inv = static_cast<Tt>(1.0 / static_cast<double>(total));
        for (int64_t s = 0; s < n; ++s) w[s] *= inv;
        for (int64_t s = n; s < S; ++s) w[s] = Tt(0);
        weighted_sum(w, e, H, n, H, cp + r * H);
      }
    });
  });
}

Tensor CpuBackend::additive_keys_exp2(const Tensor& keys) {
  Tensor out = empty(keys.shape(), {keys.dtype(), keys.device()});
  bool bounded = true;
  dispatch_float(keys.dtype(), "additive_keys_exp2", [&](auto tag) {
    using Tt = decltype(tag);
    const Tt* keys_p = keys.data<Tt>();
    Tt* out_p = out.data<Tt>();
    const int64_t n = keys.numel();
    constexpr int64_t kBlock = 4096;
    std::vector<char> block_ok(static_cast<size_t>((n + kBlock - 1) / kBlock), 1);
    parallel_for((n + kBlock - 1) / kBlock, std::max<int64_t>(1, kParallelGrain / kBlock), [&](int64_t b0, int64_t b1) {
      // local copies: through the captured references GCC reloads the pointers in every
      // iteration (the stores to o might change them), with gathers
      const Tt* const k = keys_p;
      Tt* const o = out_p;
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * kBlock, i1 = std::min(n, i0 + kBlock);
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) o[i] = exp_t(Tt(2) * k[i]);
        // the bound, on the block just read (from L1); k - k is 0 but for NaN and inf, which
        // the max ignores (a count or a flag compiled to a scalar loop through the stack)
        Tt largest = 0, nonfinite = 0;
#pragma omp simd reduction(max : largest) reduction(+ : nonfinite)
        for (int64_t i = i0; i < i1; ++i) {
          largest = std::max(largest, std::abs(k[i]));
          nonfinite += k[i] - k[i];
        }
        block_ok[static_cast<size_t>(blk)] = largest <= Tt(40) && nonfinite == Tt(0);
      }
    });
    for (char ok : block_ok) bounded = bounded && ok;
  });
  return bounded ? out : Tensor();
}

void CpuBackend::attention_backward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                                    const Tensor& values, const Tensor& lengths, const Tensor& weights,
                                    const Tensor& tanh_cache,
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
    const Tt* kep = additive && keys_exp2.defined() ? keys_exp2.data<Tt>() : nullptr;
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
    // Inside another parallel region parallel_for runs on the calling thread alone, whose
    // omp_get_thread_num() is its rank in the outer team (possibly >= nthreads).
    const bool nested = omp_in_parallel();
    parallel_for(B, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work, 1)), [&](int64_t b0, int64_t b1) {
      const int tid = nested ? 0 : omp_get_thread_num();
      acc_t<Tt>* dv_sum = additive ? dv_partial.data() + tid * D : nullptr;
      std::vector<Tt> dscore(static_cast<size_t>(S));
      std::vector<Tt> qe(kep ? static_cast<size_t>(D) : 0);  // exp(2 query) of the row
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
          const Tt* ds = dscore.data();
          if (additive) {
            // d(values) = w[s] * d(context): an outer product
            for (int64_t s = 0; s < n; ++s) {
              const Tt ws = w[s];
              Tt* des = de + s * H;
              if (first) {
#pragma omp simd
                for (int64_t h = 0; h < H; ++h) des[h] = ws * dc[h];
              } else {
#pragma omp simd
                for (int64_t h = 0; h < H; ++h) des[h] += ws * dc[h];
              }
            }
            const Tt* kb = kp + b * S * D;
            const Tt* ths = cache ? cache + r * S * D : nullptr;
            if (cache && first) grad_row<true, Th::kCache, true>(D, n, ds, w, q, kb, ths, vp, dc, dq, dkb, dv_sum);
            else if (cache) grad_row<true, Th::kCache, false>(D, n, ds, w, q, kb, ths, vp, dc, dq, dkb, dv_sum);
            else if (kep && query_exp2(q, D, qe.data())) {
              const Tt* keb = kep + b * S * D;
              if (first) grad_row<true, Th::kExp, true>(D, n, ds, w, qe.data(), keb, ths, vp, dc, dq, dkb, dv_sum);
              else grad_row<true, Th::kExp, false>(D, n, ds, w, qe.data(), keb, ths, vp, dc, dq, dkb, dv_sum);
            } else if (first) grad_row<true, Th::kRational, true>(D, n, ds, w, q, kb, ths, vp, dc, dq, dkb, dv_sum);
            else grad_row<true, Th::kRational, false>(D, n, ds, w, q, kb, ths, vp, dc, dq, dkb, dv_sum);
          } else {
            // dot: dquery = sum_s ds values_s; d(values_s) = ds q + w[s] d(context), in one pass
            if (first) grad_row<false, Th::kRational, true>(D, n, ds, w, q, e, static_cast<const Tt*>(nullptr), static_cast<const Tt*>(nullptr), dc, dq, de, static_cast<acc_t<Tt>*>(nullptr));
            else grad_row<false, Th::kRational, false>(D, n, ds, w, q, e, static_cast<const Tt*>(nullptr), static_cast<const Tt*>(nullptr), dc, dq, de, static_cast<acc_t<Tt>*>(nullptr));
          }
        }
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
