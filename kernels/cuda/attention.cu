// CUDA fused attention (see core/ops/attention.cpp for the math).
//   forward : one block per (b, t) query row. Scores: one warp per source position s, lanes
//             over the feature dim (additive: v . tanh(q + k_s); dot: q . values_s), written to
//             the weights row; block max / sum for the masked softmax over s < len; context:
//             threads over h, sum_s w_s values[s, h] (coalesced).
//   backward: one block per batch entry b (its T rows add into the same dkeys[b], dvalues[b]):
//             per row, d(weights) by warps over s, the softmax backward, then dvalues by
//             threads over (s, h), and the additive terms by threads over the feature dim,
//             each looping over s (dquery and dv in registers; dv summed over blocks with
//             atomics).
// Shapes: any B, T, S, D, H; the query row is staged in shared memory (D values).
#include <cfloat>

#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename T>
__global__ void attention_forward_kernel(AttentionArgs a, bool additive) {
  using Acc = typename acc_type<T>::type;
  extern __shared__ unsigned char smem_raw[];
  T* q = reinterpret_cast<T*>(smem_raw);  // D values
  __shared__ Acc red[32];
  __shared__ T redt[32];
  const int64_t r = blockIdx.x, b = r / a.T, n = a.lengths[b];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T* qg = static_cast<const T*>(a.query) + r * a.D;
  for (int64_t i = threadIdx.x; i < a.D; i += blockDim.x) q[i] = qg[i];
  __syncthreads();
  const T* vals = static_cast<const T*>(a.values) + b * a.S * a.H;
  T* w = static_cast<T*>(a.weights) + r * a.S;
  for (int64_t s = warp; s < n; s += kWarps) {
    Acc acc = 0;
    if (additive) {
      const T* k = static_cast<const T*>(a.keys) + (b * a.S + s) * a.D;
      const T* v = static_cast<const T*>(a.v);
      T* cache = a.tanh_cache ? static_cast<T*>(a.tanh_cache) + (r * a.S + s) * a.D : nullptr;
      for (int64_t i = lane; i < a.D; i += 32) {
        const T th = tanh(q[i] + k[i]);
        if (cache) cache[i] = th;
        acc += static_cast<Acc>(v[i] * th);
      }
    } else {
      const T* e = vals + s * a.H;
      for (int64_t i = lane; i < a.D; i += 32) acc += static_cast<Acc>(q[i] * e[i]);
    }
    acc = warp_sum(acc);
    if (lane == 0) w[s] = static_cast<T>(acc);
  }
  __syncthreads();
  T mx = -INFINITY;
  for (int64_t s = threadIdx.x; s < n; s += blockDim.x) mx = fmax(mx, w[s]);
  mx = block_max(mx, redt, static_cast<T>(-INFINITY));
  Acc total = 0;
  for (int64_t s = threadIdx.x; s < n; s += blockDim.x) {
    const T e = exp(w[s] - mx);
    w[s] = e;
    total += e;
  }
  total = block_sum(total, red);  // synchronizes: every w[s] is written
  const T inv = static_cast<T>(Acc(1) / total);
  for (int64_t s = threadIdx.x; s < a.S; s += blockDim.x) w[s] = s < n ? w[s] * inv : T(0);
  __syncthreads();
  T* ctx = static_cast<T*>(a.context) + r * a.H;
  for (int64_t h = threadIdx.x; h < a.H; h += blockDim.x) {
    Acc acc = 0;
    for (int64_t s = 0; s < n; ++s) acc += static_cast<Acc>(w[s] * vals[s * a.H + h]);
    ctx[h] = static_cast<T>(acc);
  }
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
  ATTN_CUDA_FLOAT_TYPES(dtype, attention_forward_kernel<T><<<static_cast<unsigned>(a.B * a.T), kThreads,
                                                             static_cast<size_t>(a.D) * sizeof(T), stream>>>(a, additive));
  return cudaGetLastError();
}

cudaError_t launch_attention_backward(DType dtype, const AttentionArgs& a, cudaStream_t stream) {
  // T == 0 still runs: the kernel writes the zero gradients of keys, values and v.
  if (a.B == 0) return cudaSuccess;
  const bool additive = a.keys != nullptr;
  if (additive) {
    cudaError_t err = cudaMemsetAsync(a.dv, 0, static_cast<size_t>(a.D) * (dtype == DType::Float64 ? 8 : 4), stream);
    if (err != cudaSuccess) return err;
  }
  ATTN_CUDA_FLOAT_TYPES(dtype, attention_backward_kernel<T><<<static_cast<unsigned>(a.B), kThreads, 0, stream>>>(a, additive));
  return cudaGetLastError();
}

}  // namespace attn::cuda
