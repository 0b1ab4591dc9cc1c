// Checks for every CUDA, cuBLAS and cuDNN call: a failure throws BackendError (OutOfMemoryError
// for an allocation failure) naming the call, the library's error string, the file and the line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

namespace attn::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t st, const char* expr, const char* file, int line);

}  // namespace attn::cuda

#define ATTN_CUDA_CHECK(expr)                                                                   \
  do {                                                                                          \
    const cudaError_t attn_err_ = (expr);                                                       \
    if (attn_err_ != cudaSuccess) [[unlikely]]                                                  \
      ::attn::cuda::throw_cuda_error(attn_err_, #expr, __FILE__, __LINE__);                     \
  } while (0)

#define ATTN_CUBLAS_CHECK(expr)                                                                 \
  do {                                                                                          \
    const cublasStatus_t attn_st_ = (expr);                                                     \
    if (attn_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                         \
      ::attn::cuda::throw_cublas_error(attn_st_, #expr, __FILE__, __LINE__);                    \
  } while (0)

#define ATTN_CUDNN_CHECK(expr)                                                                  \
  do {                                                                                          \
    const cudnnStatus_t attn_st_ = (expr);                                                      \
    if (attn_st_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                          \
      ::attn::cuda::throw_cudnn_error(attn_st_, #expr, __FILE__, __LINE__);                     \
  } while (0)
