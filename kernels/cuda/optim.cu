// CUDA optimizer updates: one fused elementwise pass per parameter, PyTorch's formulas (the
// same as kernels/cpu/optim.cpp).
#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdArgs a) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T d = g[i] * static_cast<T>(a.grad_scale);
    if (a.weight_decay != 0.0) d += static_cast<T>(a.weight_decay) * p[i];
    if (buf) {
      buf[i] = a.first_step ? d : static_cast<T>(a.momentum) * buf[i] + static_cast<T>(1.0 - a.dampening) * d;
      d = a.nesterov ? d + static_cast<T>(a.momentum) * buf[i] : buf[i];
    }
    p[i] -= static_cast<T>(a.lr) * d;
  }
}

template <typename T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, AdamArgs a) {
  const T b1 = static_cast<T>(a.beta1), b2 = static_cast<T>(a.beta2), eps = static_cast<T>(a.eps);
  const T step_size = static_cast<T>(a.lr / a.bias_correction1);
  const T bc2_sqrt = static_cast<T>(sqrt(a.bias_correction2));
  const T wd = static_cast<T>(a.weight_decay), decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T d = g[i] * static_cast<T>(a.grad_scale);
    if (a.decoupled)
      p[i] *= decay;
    else if (wd != T(0))
      d += wd * p[i];
    m[i] = b1 * m[i] + (T(1) - b1) * d;
    v[i] = b2 * v[i] + (T(1) - b2) * d * d;
    const T denom = sqrt(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * m[i] / denom;
  }
}

template <typename T>
__global__ void sum_squares_kernel(const T* x, int64_t n, double* total) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) atomicAdd(total, acc);
}

}  // namespace

cudaError_t launch_sum_squares(DType dtype, const void* x, int64_t n, double* total, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, sum_squares_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), n, total));
  return cudaGetLastError();
}

cudaError_t launch_sgd(DType dtype, void* p, const void* g, void* buf, int64_t n, const SgdArgs& a, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, sgd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                   static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(buf), n, a));
  return cudaGetLastError();
}

cudaError_t launch_adam(DType dtype, void* p, const void* g, void* m, void* v, int64_t n, const AdamArgs& a,
                        cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, adam_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                   static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(m), static_cast<T*>(v), n, a));
  return cudaGetLastError();
}

}  // namespace attn::cuda
