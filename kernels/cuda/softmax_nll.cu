// CUDA fused softmax + NLL over the vocabulary.
//   forward : one 256-thread block per row; one read of the row with an online max / sum-of-exp
//             per thread (rescaled when the max grows; in the element type, so float rows use
//             float exp), combined across the block in double; the row's
//             log-sum-exp is saved as (max, log_sum), the loss picked from logits[target]; with label smoothing
//             the row sum of logits is carried too.
//   backward: one thread per logit, grad * (exp((x - max) - log_sum) - q): one read of the logits, one
//             write of the gradient, nothing V-sized stored in between.
#include <cfloat>

#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;

// Merges two (max, sum of exp(x - max)) pairs. A pair is empty (nothing but -inf seen) when its
// max is -inf and its sum 0; a NaN sum with a -inf max (a NaN among -inf) is kept, so it spreads.
__device__ __forceinline__ void merge(double& m, double& s, double om, double os) {
  if (om == -INFINITY && os == 0) return;
  if (m == -INFINITY && s == 0) {
    m = om;
    s = os;
    return;
  }
  const double nm = fmax(m, om);
  s = s * exp(m - nm) + os * exp(om - nm);
  m = nm;
}

template <typename T>
__global__ void softmax_nll_forward_kernel(SoftmaxNllArgs a) {
  __shared__ double sm[32], ss[32], sx[32];
  const int64_t i = blockIdx.x;
  const T* row = static_cast<const T*>(a.logits) + i * a.V;
  // Each thread's running (max, sum of exp) in the element type: a float exp is a few
  // instructions where a double one is dozens, which made this memory-bound kernel
  // compute-bound. A thread sums V / 256 terms; threads and warps merge in double.
  T tm = -INFINITY, ts = 0;
  double xs = 0;
#pragma unroll 4
  for (int64_t j = threadIdx.x; j < a.V; j += blockDim.x) {
    const T x = row[j];
    xs += static_cast<double>(x);
    if (x > tm) {
      ts = ts * exp(tm - x) + T(1);
      tm = x;
    } else if (x != -INFINITY) {  // x == m == -inf would add exp(nan); a NaN x still propagates
      ts += exp(x - tm);
    }
  }
  double m = static_cast<double>(tm), s = static_cast<double>(ts);
  for (int o = 16; o > 0; o >>= 1) {
    const double om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    xs += __shfl_xor_sync(0xffffffffu, xs, o);
    merge(m, s, om, os);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    ss[warp] = s;
    sx[warp] = xs;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  m = sm[0];
  s = ss[0];
  xs = sx[0];
  for (int w = 1; w < nwarps; ++w) {
    merge(m, s, sm[w], ss[w]);
    xs += sx[w];
  }
  // a +inf logit makes log-sum-exp NaN, as on the CPU (row_logsumexp); here a thread holding
  // it alone would give (inf, 1), and inf
  const double log_sum = m == INFINITY ? NAN : log(s), lse = m + log_sum;
  static_cast<T*>(a.lse)[2 * i] = static_cast<T>(m);  // (max, log_sum): see kernels/cpu/row_math.h
  static_cast<T*>(a.lse)[2 * i + 1] = static_cast<T>(log_sum);
  const int64_t c = a.target[i * a.target_s];
  T* loss = static_cast<T*>(a.losses) + i;
  if (c == a.ignore_index) {
    *loss = T(0);
    return;
  }
  const double nll = lse - static_cast<double>(row[c]);
  *loss = static_cast<T>(a.smoothing == 0.0 ? nll : (1.0 - a.smoothing) * nll + a.smoothing * (lse - xs / static_cast<double>(a.V)));
}

template <typename T>
__global__ void softmax_nll_backward_kernel(SoftmaxNllArgs a) {
  const int64_t n = a.N * a.V;
  const T uniform = static_cast<T>(a.smoothing / static_cast<double>(a.V)), hit = static_cast<T>(1.0 - a.smoothing);
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / a.V, j = idx % a.V;
    const int64_t c = a.target[i * a.target_s];
    T* out = static_cast<T*>(a.grad_logits);
    if (c == a.ignore_index) {
      out[idx] = T(0);
      continue;
    }
    const T g = static_cast<const T*>(a.grad_losses)[i * a.grad_losses_s];
    const T* lse = static_cast<const T*>(a.lse) + 2 * i;
    const T p = exp((static_cast<const T*>(a.logits)[idx] - lse[0]) - lse[1]);
    out[idx] = g * (p - uniform - (j == c ? hit : T(0)));
  }
}

}  // namespace

cudaError_t launch_softmax_nll_forward(DType dtype, const SoftmaxNllArgs& a, cudaStream_t stream) {
  if (a.N == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, softmax_nll_forward_kernel<T><<<static_cast<unsigned>(a.N), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

cudaError_t launch_softmax_nll_backward(DType dtype, const SoftmaxNllArgs& a, cudaStream_t stream) {
  if (a.N * a.V == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, softmax_nll_backward_kernel<T><<<grid_for(a.N * a.V, kThreads), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

}  // namespace attn::cuda
