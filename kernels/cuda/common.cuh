// Device helpers shared by the CUDA kernels: offset computation, warp and block reductions,
// and type dispatch on the element type.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/launch.h"

namespace attn::cuda {

// Offsets of linear index i for the first `nops` operands of calc.
__device__ __forceinline__ void offsets_of(const OffsetCalc& calc, int64_t i, int64_t* off) {
#pragma unroll
  for (int k = 0; k < kMaxOperands; ++k) off[k] = 0;
  for (int d = calc.ndim - 1; d >= 0; --d) {
    const int64_t size = calc.sizes[d];
    const int64_t q = i % size;
    i /= size;
#pragma unroll
    for (int k = 0; k < kMaxOperands; ++k) off[k] += q * calc.strides[k][d];
  }
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = (w > v || w != w) ? w : v;  // NaN wins
  }
  return v;
}

// Sum over the block; every thread gets the result. `scratch` holds 32 values.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : T(0);
  return warp_sum(v);
}

template <typename T>
__device__ __forceinline__ T block_max(T v, T* scratch, T lowest) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : lowest;
  return warp_max(v);
}

template <typename T>
struct acc_type {
  using type = T;
};
template <>
struct acc_type<float> {
  using type = double;
};

}  // namespace attn::cuda

// Calls the generic lambda with a value of the C++ type for float32 / float64 (other dtypes are
// refused by the host code before any launch).
#define ATTN_CUDA_FLOAT_TYPES(dtype, ...)          \
  switch (dtype) {                                 \
    case ::attn::DType::Float32: {                 \
      using T = float;                             \
      __VA_ARGS__;                                 \
      break;                                       \
    }                                              \
    case ::attn::DType::Float64: {                 \
      using T = double;                            \
      __VA_ARGS__;                                 \
      break;                                       \
    }                                              \
    default:                                       \
      return cudaErrorInvalidValue;                \
  }
