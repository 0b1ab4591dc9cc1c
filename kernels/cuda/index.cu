// CUDA gather / scatter-add of rows (embedding forward and backward) and index validation.
//   index_select : one thread per output element (n x d), coalesced along d;
//   index_add    : one thread per gradient element, atomicAdd into the table (repeated ids
//                  collide only on the same row);
//   find_bad     : one pass over the ids, atomicMin of the first position out of range, so the
//                  host can name it in the error before any gather runs.
#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void find_bad_index(const int64_t* idx, int64_t s, int64_t n, int64_t rows, bool use_ignore, int64_t ignore,
                               unsigned long long* bad) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t v = idx[i * s];
    if (!(use_ignore && v == ignore) && (v < 0 || v >= rows)) atomicMin(bad, static_cast<unsigned long long>(i));
  }
}

template <typename T>
__global__ void index_select_kernel(GatherArgs a) {
  const int64_t total = a.n * a.d;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / a.d, j = e % a.d;
    const int64_t row = a.idx[i * a.idx_stride];
    static_cast<T*>(a.vec)[i * a.vec_s0 + j * a.vec_s1] = static_cast<const T*>(a.rows)[row * a.rows_s0 + j * a.rows_s1];
  }
}

template <typename T>
__global__ void index_add_kernel(GatherArgs a) {
  const int64_t total = a.n * a.d;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / a.d, j = e % a.d;
    const int64_t row = a.idx[i * a.idx_stride];
    atomicAdd(static_cast<T*>(a.rows) + row * a.rows_s0 + j * a.rows_s1, static_cast<const T*>(a.vec)[i * a.vec_s0 + j * a.vec_s1]);
  }
}

}  // namespace

cudaError_t launch_find_bad_index(const int64_t* idx, int64_t idx_stride, int64_t n, int64_t rows, bool use_ignore,
                                  int64_t ignore, int64_t* bad, cudaStream_t stream) {
  // `bad` starts at the largest value; the host reads it back and treats >= n as "none".
  cudaError_t err = cudaMemsetAsync(bad, 0xff, sizeof(int64_t), stream);
  if (err != cudaSuccess) return err;
  if (n > 0)
    find_bad_index<<<grid_for(n, kThreads), kThreads, 0, stream>>>(idx, idx_stride, n, rows, use_ignore, ignore,
                                                                   reinterpret_cast<unsigned long long*>(bad));
  return cudaGetLastError();
}

cudaError_t launch_index_select(DType dtype, const GatherArgs& a, cudaStream_t stream) {
  if (a.n * a.d == 0) return cudaSuccess;
  const int grid = grid_for(a.n * a.d, kThreads);
  switch (dtype) {  // a row copy: any element type
    case DType::Float32: index_select_kernel<float><<<grid, kThreads, 0, stream>>>(a); break;
    case DType::Float64: index_select_kernel<double><<<grid, kThreads, 0, stream>>>(a); break;
    case DType::Int64: index_select_kernel<int64_t><<<grid, kThreads, 0, stream>>>(a); break;
    case DType::Bool: index_select_kernel<bool><<<grid, kThreads, 0, stream>>>(a); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_index_add(DType dtype, const GatherArgs& a, cudaStream_t stream) {
  if (a.n * a.d == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, index_add_kernel<T><<<grid_for(a.n * a.d, kThreads), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

}  // namespace attn::cuda
