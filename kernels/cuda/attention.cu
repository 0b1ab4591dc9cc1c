// CUDA fused attention (see core/ops/attention.cpp for the math).
//   forward, two kernels, so that every SM has many warps with loads in flight (one block per
//   query row left most of an H100 idle at B = 128):
//     scores : grid (B*T rows, ceil(S / 8)); one warp per source position s < len, lanes over the
//              feature dim (additive: v . tanh(q + k_s); dot: q . values_s), loads unrolled by 4;
//              the raw score goes to a (B*T, S) scratch.
//     context: grid (B*T rows, ceil(H / 256)); each block takes the row's max and sum of exp over
//              s < len from the scratch (block reductions), threads over h accumulate
//              sum_s w_s values[s, h] (coalesced, unrolled by 4); the first block of a row writes
//              the weights (exactly 0 for s >= len).
//   backward: one block per batch entry b (its T rows add into the same dkeys[b], dvalues[b]):
//             per row, d(weights) by warps over s, the softmax backward, then dvalues by
//             threads over (s, h), and the additive terms by threads over the feature dim,
//             each looping over s (dquery and dv in registers; dv summed over blocks with
//             atomics).
// Shapes: any B, T, D; S up to 8 * 65535 and H up to 256 * 65535 (grid limits, checked on the host).
#include <algorithm>
#include <cfloat>

#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename T>
__global__ void attention_scores_kernel(AttentionArgs a, bool additive) {
  using Acc = typename acc_type<T>::type;
  const int64_t r = blockIdx.x, b = r / a.T, n = a.lengths[b];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t s = static_cast<int64_t>(blockIdx.y) * kWarps + warp;
  if (s >= n) return;  // a whole warp leaves: no block-wide synchronization follows
  const T* q = static_cast<const T*>(a.query) + r * a.D;
  Acc acc = 0;
  if (additive) {
    const T* k = static_cast<const T*>(a.keys) + (b * a.S + s) * a.D;
    const T* v = static_cast<const T*>(a.v);
    T* cache = a.tanh_cache ? static_cast<T*>(a.tanh_cache) + (r * a.S + s) * a.D : nullptr;
#pragma unroll 4
    for (int64_t i = lane; i < a.D; i += 32) {
      const T th = tanh(q[i] + k[i]);
      if (cache) cache[i] = th;
      acc += static_cast<Acc>(v[i] * th);
    }
  } else {
    const T* e = static_cast<const T*>(a.values) + (b * a.S + s) * a.H;
#pragma unroll 4
    for (int64_t i = lane; i < a.D; i += 32) acc += static_cast<Acc>(q[i] * e[i]);
  }
  acc = warp_sum(acc);
  if (lane == 0) static_cast<T*>(a.scratch)[r * a.S + s] = static_cast<T>(acc);
}

template <typename T>
__global__ void attention_context_kernel(AttentionArgs a) {
  using Acc = typename acc_type<T>::type;
  __shared__ Acc red[32];
  __shared__ T redt[32];
  const int64_t r = blockIdx.x, b = r / a.T, n = a.lengths[b];
  const T* sc = static_cast<const T*>(a.scratch) + r * a.S;
  T mx = -INFINITY;
  for (int64_t s = threadIdx.x; s < n; s += blockDim.x) mx = fmax(mx, sc[s]);
  mx = block_max(mx, redt, static_cast<T>(-INFINITY));
  Acc total = 0;
  for (int64_t s = threadIdx.x; s < n; s += blockDim.x) total += static_cast<Acc>(exp(sc[s] - mx));
  total = block_sum(total, red);
  const T inv = static_cast<T>(Acc(1) / total);
  if (blockIdx.y == 0) {
    T* w = static_cast<T*>(a.weights) + r * a.S;
    for (int64_t s = threadIdx.x; s < a.S; s += blockDim.x) w[s] = s < n ? exp(sc[s] - mx) * inv : T(0);
  }
  const int64_t h = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (h >= a.H) return;
  const T* vals = static_cast<const T*>(a.values) + b * a.S * a.H + h;
  Acc acc = 0;
#pragma unroll 4
  for (int64_t s = 0; s < n; ++s) acc += static_cast<Acc>(exp(sc[s] - mx) * inv * vals[s * a.H]);
  static_cast<T*>(a.context)[r * a.H + h] = static_cast<T>(acc);
}

template <typename T>
__global__ void attention_backward_kernel(AttentionArgs a, bool additive) {
  using Acc = typename acc_type<T>::type;
  __shared__ Acc red[32];
  const int64_t b = blockIdx.x, n = a.lengths[b];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T* vals = static_cast<const T*>(a.values) + b * a.S * a.H;
  T* dvals = static_cast<T*>(a.dvalues) + b * a.S * a.H;
  T* dkeys = additive ? static_cast<T*>(a.dkeys) + b * a.S * a.D : nullptr;
  for (int64_t i = threadIdx.x; i < a.S * a.H; i += blockDim.x) dvals[i] = T(0);
  if (additive)
    for (int64_t i = threadIdx.x; i < a.S * a.D; i += blockDim.x) dkeys[i] = T(0);
  Acc dv_local[4] = {0, 0, 0, 0};  // this thread's features: threadIdx.x + k * blockDim.x
  __syncthreads();
  for (int64_t t = 0; t < a.T; ++t) {
    const int64_t r = b * a.T + t;
    const T* w = static_cast<const T*>(a.weights) + r * a.S;
    const T* dctx = static_cast<const T*>(a.d_context) + r * a.H;
    const T* dw = a.d_weights ? static_cast<const T*>(a.d_weights) + r * a.S : nullptr;
    const T* q = static_cast<const T*>(a.query) + r * a.D;
    double* ds = static_cast<double*>(a.scratch) + r * a.S;
    // d(weights)[s] = dctx . values[s] (+ the direct gradient)
    for (int64_t s = warp; s < n; s += kWarps) {
      Acc acc = 0;
      for (int64_t h = lane; h < a.H; h += 32) acc += static_cast<Acc>(dctx[h] * vals[s * a.H + h]);
      acc = warp_sum(acc);
      if (lane == 0) ds[s] = static_cast<double>(acc) + (dw ? static_cast<double>(dw[s]) : 0.0);
    }
    __syncthreads();
    Acc wsum = 0;
    for (int64_t s = threadIdx.x; s < n; s += blockDim.x) wsum += static_cast<Acc>(w[s] * ds[s]);
    wsum = block_sum(wsum, red);
    for (int64_t s = threadIdx.x; s < n; s += blockDim.x) ds[s] = static_cast<double>(w[s]) * (ds[s] - static_cast<double>(wsum));
    __syncthreads();
    // dvalues[s, h] += w_s dctx_h (+ dscore_s q_h for dot scoring)
    for (int64_t i = threadIdx.x; i < n * a.H; i += blockDim.x) {
      const int64_t s = i / a.H, h = i % a.H;
      T add = w[s] * dctx[h];
      if (!additive) add += static_cast<T>(ds[s]) * q[h];
      dvals[i] += add;
    }
    // query-side terms: each thread owns features i = threadIdx.x + k * blockDim.x
    T* dq = static_cast<T*>(a.dquery) + r * a.D;
    int k = 0;
    for (int64_t i = threadIdx.x; i < a.D; i += blockDim.x, ++k) {
      Acc dqi = 0;
      if (additive) {
        const T vi = static_cast<const T*>(a.v)[i];
        const T* keys = static_cast<const T*>(a.keys) + b * a.S * a.D;
        Acc dvi = 0;
        const T* cache = a.tanh_cache ? static_cast<const T*>(a.tanh_cache) + r * a.S * a.D : nullptr;
        for (int64_t s = 0; s < n; ++s) {
          const T th = cache ? cache[s * a.D + i] : tanh(q[i] + keys[s * a.D + i]);
          const T d = static_cast<T>(ds[s]);
          const T dpre = d * vi * (T(1) - th * th);
          dqi += dpre;
          dkeys[s * a.D + i] += dpre;
          dvi += static_cast<Acc>(d * th);
        }
        if (k < 4) dv_local[k] += dvi;
        else atomicAdd(static_cast<T*>(a.dv) + i, static_cast<T>(dvi));
      } else {
        for (int64_t s = 0; s < n; ++s) dqi += static_cast<Acc>(static_cast<T>(ds[s]) * vals[s * a.H + i]);
      }
      dq[i] = static_cast<T>(dqi);
    }
    __syncthreads();
  }
  if (additive) {
    int k = 0;
    for (int64_t i = threadIdx.x; i < a.D && k < 4; i += blockDim.x, ++k)
      atomicAdd(static_cast<T*>(a.dv) + i, static_cast<T>(dv_local[k]));
  }
}

}  // namespace

cudaError_t launch_attention_forward(DType dtype, const AttentionArgs& a, cudaStream_t stream) {
  if (a.B * a.T == 0) return cudaSuccess;
  const bool additive = a.keys != nullptr;
  const dim3 score_grid(static_cast<unsigned>(a.B * a.T), static_cast<unsigned>((a.S + kWarps - 1) / kWarps));
  // at least one block per row even when H == 0: it writes the weights
  const dim3 context_grid(static_cast<unsigned>(a.B * a.T),
                          static_cast<unsigned>(std::max<int64_t>(1, (a.H + kThreads - 1) / kThreads)));
  ATTN_CUDA_FLOAT_TYPES(dtype, attention_scores_kernel<T><<<score_grid, kThreads, 0, stream>>>(a, additive));
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  ATTN_CUDA_FLOAT_TYPES(dtype, attention_context_kernel<T><<<context_grid, kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

cudaError_t launch_attention_backward(DType dtype, const AttentionArgs& a, cudaStream_t stream) {
  // T == 0 still runs: the kernel writes the zero gradients of keys, values and v.
  if (a.B == 0) return cudaSuccess;
  const bool additive = a.keys != nullptr;
  if (additive && a.D > 0) {  // (no zero-byte memset of a possibly null dv)
    cudaError_t err = cudaMemsetAsync(a.dv, 0, static_cast<size_t>(a.D) * (dtype == DType::Float64 ? 8 : 4), stream);
    if (err != cudaSuccess) return err;
  }
  ATTN_CUDA_FLOAT_TYPES(dtype, attention_backward_kernel<T><<<static_cast<unsigned>(a.B), kThreads, 0, stream>>>(a, additive));
  return cudaGetLastError();
}

}  // namespace attn::cuda
