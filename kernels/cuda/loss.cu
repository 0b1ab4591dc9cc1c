// CUDA negative log-likelihood: one thread per row picks -logp[i, target[i]]; the backward
// scatters -grad into the zeroed (N, C) gradient. Targets were validated by the host first.
#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void nll_kernel(NllArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.n) return;
  const int64_t c = a.target[i * a.ts];
  static_cast<T*>(a.vec)[i * a.vs] = c == a.ignore_index ? T(0) : -static_cast<const T*>(a.logp)[i * a.s0 + c * a.s1];
}

template <typename T>
__global__ void nll_backward_kernel(NllArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.n) return;
  const int64_t c = a.target[i * a.ts];
  if (c != a.ignore_index) static_cast<T*>(a.logp)[i * a.s0 + c * a.s1] = -static_cast<const T*>(a.vec)[i * a.vs];
}

}  // namespace

cudaError_t launch_nll(DType dtype, const NllArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, nll_kernel<T><<<static_cast<unsigned>((a.n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

cudaError_t launch_nll_backward(DType dtype, const NllArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, nll_backward_kernel<T><<<static_cast<unsigned>((a.n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

}  // namespace attn::cuda
