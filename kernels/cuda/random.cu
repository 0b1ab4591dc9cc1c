// CUDA random kernels over contiguous outputs. Element i takes Philox word (offset + i) of the
// seed (normal: Box-Muller on the pair 2*floor(i/2), +1, in double), exactly the computation of
// kernels/cpu/random.cpp, so one seed gives the same numbers (and dropout masks) on both devices.
#include "core/philox.h"
#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;
constexpr double kTwoPi = 6.283185307179586476925286766559;

#define ATTN_GRID_STRIDE(i, n)                                                            \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, T low, T span) {
  ATTN_GRID_STRIDE(i, n) {
    out[i] = philox::affine(low, span, static_cast<T>(philox::to_unit_float(philox::word(seed, offset + static_cast<uint64_t>(i)))));
  }
}

template <typename T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double stddev) {
  ATTN_GRID_STRIDE(i, n) {
    const uint64_t pair = offset + static_cast<uint64_t>(i & ~int64_t{1});
    const double u1 = 1.0 - static_cast<double>(philox::to_unit_float(philox::word(seed, pair)));
    const double u2 = static_cast<double>(philox::to_unit_float(philox::word(seed, pair + 1)));
    const double r = sqrt(-2.0 * log(u1));
    const double theta = kTwoPi * u2;
    const double z = (i & 1) ? r * sin(theta) : r * cos(theta);
    out[i] = static_cast<T>(philox::affine(mean, stddev, z));
  }
}

template <typename T>
__global__ void dropout_kernel(T* mask, int64_t n, uint64_t seed, uint64_t offset, float p, T scale) {
  ATTN_GRID_STRIDE(i, n) {
    mask[i] = philox::to_unit_float(philox::word(seed, offset + static_cast<uint64_t>(i))) >= p ? scale : T(0);
  }
}

}  // namespace

cudaError_t launch_uniform(DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high,
                           cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, uniform_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                   static_cast<T*>(out), n, seed, offset, static_cast<T>(low), static_cast<T>(high - low)));
  return cudaGetLastError();
}

cudaError_t launch_normal(DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double mean,
                          double stddev, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, normal_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                   static_cast<T*>(out), n, seed, offset, mean, stddev));
  return cudaGetLastError();
}

cudaError_t launch_dropout_mask(DType dtype, void* mask, int64_t n, uint64_t seed, uint64_t offset, double p,
                                cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, dropout_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                   static_cast<T*>(mask), n, seed, offset, static_cast<float>(p), static_cast<T>(1.0 / (1.0 - p))));
  return cudaGetLastError();
}

}  // namespace attn::cuda
