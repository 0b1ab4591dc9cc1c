// CUDA reductions: sum over any set of dims, max (with argmax) along a dim, softmax and
// log_softmax along a dim and their backward.
//
// sum variants (the host picks by shape):
//   thread-per-output : when neighbouring outputs read neighbouring inputs (reducing an outer
//                       dim, e.g. a bias gradient over the batch) or the reduction is short;
//   block-per-output  : 256 threads stride over the reduced elements, then warp shuffles;
//   split             : either of the above over `chunks` slices of the reduced range, partial
//                       sums (float64) in scratch, then one pass adds the slices, so that one
//                       long reduction still fills the GPU.
// Float sums accumulate in double, as on the CPU.
// Row kernels (max, softmax): one warp per row for rows up to 1024 elements, one 256-thread
// block per row beyond; rows may be strided (any dim).
#include <cfloat>
#include <cmath>

#include "kernels/cuda/common.cuh"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ void red_range(const SumArgs& a, int64_t chunk, int64_t& r0, int64_t& r1) {
  const int64_t per = (a.n_red + a.chunks - 1) / a.chunks;
  r0 = chunk * per;
  r1 = r0 + per < a.n_red ? r0 + per : a.n_red;
}

// One output (chunks == 1: the value itself, in its accumulator type, so int64 stays exact) or
// one chunk's partial sum (double; the host never splits int64 sums).
template <typename T, typename Acc>
__device__ __forceinline__ void finish(const SumArgs& a, int64_t o, int64_t chunk, Acc value, int64_t out_off) {
  if (a.chunks == 1)
    static_cast<T*>(a.out)[out_off] = static_cast<T>(value);
  else
    a.partial[chunk * a.n_out + o] = static_cast<double>(value);
}

template <typename T>
__global__ void sum_thread_per_output(SumArgs a) {
  using Acc = typename acc_type<T>::type;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= a.n_out) return;
  int64_t koff[kMaxOperands];
  offsets_of(a.kept, o, koff);
  int64_t r0, r1;
  red_range<T>(a, blockIdx.y, r0, r1);
  const T* x = static_cast<const T*>(a.x) + koff[0];
  Acc acc = 0;
  for (int64_t r = r0; r < r1; ++r) {
    int64_t roff[kMaxOperands];
    offsets_of(a.red, r, roff);
    acc += static_cast<Acc>(x[roff[0]]);
  }
  finish<T>(a, o, blockIdx.y, acc, koff[1]);
}

template <typename T>
__global__ void sum_block_per_output(SumArgs a) {
  using Acc = typename acc_type<T>::type;
  __shared__ Acc scratch[32];
  const int64_t o = blockIdx.x;
  int64_t koff[kMaxOperands];
  offsets_of(a.kept, o, koff);
  int64_t r0, r1;
  red_range<T>(a, blockIdx.y, r0, r1);
  const T* x = static_cast<const T*>(a.x) + koff[0];
  Acc acc = 0;
  if (a.red.ndim == 1) {  // one reduced dim: no divmod
    const int64_t s = a.red.strides[0][0];
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc += static_cast<Acc>(x[r * s]);
  } else {
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
      int64_t roff[kMaxOperands];
      offsets_of(a.red, r, roff);
      acc += static_cast<Acc>(x[roff[0]]);
    }
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) finish<T>(a, o, blockIdx.y, acc, koff[1]);
}

template <typename T>
__global__ void sum_partials(SumArgs a) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= a.n_out) return;
  double acc = 0;
  for (int64_t c = 0; c < a.chunks; ++c) acc += a.partial[c * a.n_out + o];
  int64_t koff[kMaxOperands];
  offsets_of(a.kept, o, koff);
  static_cast<T*>(a.out)[koff[1]] = static_cast<T>(acc);
}

template <typename T>
cudaError_t sum_typed(const SumArgs& a, cudaStream_t stream) {
  if (a.n_out == 0) return cudaSuccess;
  // (one block per output only while the outputs fit the grid: an expanded input can have 2^32)
  const bool per_thread = a.inner_kept_contiguous || a.n_red < 64 || a.n_out > kMaxGridX;
  if (per_thread) {
    dim3 grid(static_cast<unsigned>((a.n_out + kThreads - 1) / kThreads), static_cast<unsigned>(a.chunks));
    sum_thread_per_output<T><<<grid, kThreads, 0, stream>>>(a);
  } else {
    dim3 grid(static_cast<unsigned>(a.n_out), static_cast<unsigned>(a.chunks));
    sum_block_per_output<T><<<grid, kThreads, 0, stream>>>(a);
  }
  if (a.chunks > 1) {
    sum_partials<T><<<static_cast<unsigned>((a.n_out + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

// ---------------------------------------------------------------- rows

template <typename T>
__device__ __forceinline__ T lowest() {
  return -INFINITY;
}
template <>
__device__ __forceinline__ int64_t lowest<int64_t>() {
  return INT64_MIN;
}

// Threads of a group (a warp or a block) cooperate on one row.
struct Group {
  int lane, size;
};

template <typename T>
__device__ __forceinline__ T group_max(T v, bool block, T* scratch) {
  return block ? block_max(v, scratch, lowest<T>()) : warp_max(v);
}
template <typename T>
__device__ __forceinline__ T group_sum(T v, bool block, T* scratch) {
  return block ? block_sum(v, scratch) : warp_sum(v);
}

// Row r handled by this group, or -1. Warp mode: 8 rows per 256-thread block.
__device__ __forceinline__ int64_t my_row(bool block, int64_t rows, Group& g) {
  if (block) {
    g = {static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x)};
    return blockIdx.x < rows ? static_cast<int64_t>(blockIdx.x) : -1;
  }
  g = {static_cast<int>(threadIdx.x & 31), 32};
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  return r < rows ? r : -1;
}

template <typename T>
__global__ void max_rows(RowArgs a, bool block) {
  __shared__ T sv[32];
  __shared__ int64_t si[32];
  Group g;
  int64_t r = my_row(block, a.rows, g);
  if (block && r < 0) return;  // whole block idle (cannot happen: grid = rows)
  int64_t off[kMaxOperands] = {};
  if (r >= 0) offsets_of(a.calc, r, off);
  const T* x = static_cast<const T*>(a.ptr[0]) + off[0];
  T best = lowest<T>();
  int64_t arg = 0;
  bool first = true;
  if (r >= 0) {
    for (int64_t j = g.lane; j < a.len; j += g.size) {
      const T v = x[j * a.step[0]];
      if (first || v > best || (v != v && best == best)) {
        best = v;
        arg = j;
        first = false;
      }
      if (best != best) break;  // NaN: nothing beats it
    }
  }
  if (first) {
    best = lowest<T>();
    arg = a.len;  // empty lane: loses every comparison
  }
  // Combine (value, index) pairs: larger value wins, NaN wins, ties go to the smaller index.
  auto better = [](T v, int64_t i, T bv, int64_t bi) {
    const bool vn = v != v, bn = bv != bv;
    if (vn != bn) return vn;
    if (vn) return i < bi;
    return v > bv || (v == bv && i < bi);
  };
  for (int o = 16; o > 0; o >>= 1) {
    T ov = __shfl_xor_sync(0xffffffffu, best, o);
    int64_t oi = __shfl_xor_sync(0xffffffffu, arg, o);
    if (better(ov, oi, best, arg)) {
      best = ov;
      arg = oi;
    }
  }
  if (block) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    if (lane == 0) {
      sv[warp] = best;
      si[warp] = arg;
    }
    __syncthreads();
    if (warp == 0) {
      best = lane < nwarps ? sv[lane] : lowest<T>();
      arg = lane < nwarps ? si[lane] : a.len;
      for (int o = 16; o > 0; o >>= 1) {
        T ov = __shfl_xor_sync(0xffffffffu, best, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, arg, o);
        if (better(ov, oi, best, arg)) {
          best = ov;
          arg = oi;
        }
      }
    }
    if (threadIdx.x != 0) return;
  } else if (g.lane != 0 || r < 0) {
    return;
  }
  static_cast<T*>(a.ptr[1])[off[1]] = best;
  static_cast<int64_t*>(a.ptr[2])[off[2]] = arg;
}

template <typename T>
__global__ void softmax_rows(RowArgs a, bool block, bool log) {
  using Acc = typename acc_type<T>::type;
  __shared__ T smax[32];
  __shared__ Acc ssum[32];
  Group g;
  const int64_t r = my_row(block, a.rows, g);
  int64_t off[kMaxOperands] = {};
  if (r >= 0) offsets_of(a.calc, r, off);
  const T* x = static_cast<const T*>(a.ptr[0]) + off[0];
  T* y = static_cast<T*>(a.ptr[1]) + off[1];
  const int64_t sx = a.step[0], sy = a.step[1], len = r >= 0 ? a.len : 0;
  T mx = lowest<T>();
  for (int64_t j = g.lane; j < len; j += g.size) mx = fmax(mx, x[j * sx]);
  mx = group_max(mx, block, smax);
  if (isinf(mx) && mx < 0) mx = 0;  // a row of -inf
  Acc total = 0;
  for (int64_t j = g.lane; j < len; j += g.size) total += static_cast<Acc>(exp(x[j * sx] - mx));
  total = group_sum(total, block, ssum);
  if (log) {
    // (x - max) - log_sum: a float x - lse loses the low bits of a large lse (row_math.h)
    const T log_sum = static_cast<T>(::log(total));
    for (int64_t j = g.lane; j < len; j += g.size) y[j * sy] = (x[j * sx] - mx) - log_sum;
  } else {
    const Acc inv = Acc(1) / total;
    for (int64_t j = g.lane; j < len; j += g.size) y[j * sy] = static_cast<T>(exp(static_cast<Acc>(x[j * sx] - mx)) * inv);
  }
}

template <typename T>
__global__ void softmax_backward_rows(RowArgs a, bool block, bool log) {
  using Acc = typename acc_type<T>::type;
  __shared__ Acc ssum[32];
  Group g;
  const int64_t r = my_row(block, a.rows, g);
  int64_t off[kMaxOperands] = {};
  if (r >= 0) offsets_of(a.calc, r, off);
  T* gx = static_cast<T*>(a.ptr[0]) + off[0];
  const T* gy = static_cast<const T*>(a.ptr[1]) + off[1];
  const T* y = static_cast<const T*>(a.ptr[2]) + off[2];
  const int64_t s0 = a.step[0], s1 = a.step[1], s2 = a.step[2], len = r >= 0 ? a.len : 0;
  Acc dot = 0;
  for (int64_t j = g.lane; j < len; j += g.size)
    dot += log ? static_cast<Acc>(gy[j * s1]) : static_cast<Acc>(gy[j * s1]) * y[j * s2];
  dot = group_sum(dot, block, ssum);
  for (int64_t j = g.lane; j < len; j += g.size) {
    if (log)
      gx[j * s0] = static_cast<T>(gy[j * s1] - exp(y[j * s2]) * dot);
    else
      gx[j * s0] = static_cast<T>(y[j * s2] * (gy[j * s1] - dot));
  }
}

template <typename Kernel, typename... Extra>
cudaError_t launch_rows(Kernel kernel, const RowArgs& a, cudaStream_t stream, Extra... extra) {
  if (a.rows == 0 || a.len == 0) return cudaSuccess;
  // a block per row for long rows while the rows fit the grid (an expanded input can have 2^32);
  // the warp per row handles any length, more slowly
  const bool block = a.len > 1024 && a.rows <= kMaxGridX;
  if (block) {
    kernel<<<static_cast<unsigned>(a.rows), kThreads, 0, stream>>>(a, true, extra...);
  } else {
    const int64_t rows_per_block = kThreads / 32;
    kernel<<<static_cast<unsigned>((a.rows + rows_per_block - 1) / rows_per_block), kThreads, 0, stream>>>(a, false, extra...);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_sum(DType dtype, const SumArgs& a, cudaStream_t stream) {
  switch (dtype) {
    case DType::Float32: return sum_typed<float>(a, stream);
    case DType::Float64: return sum_typed<double>(a, stream);
    case DType::Int64: return sum_typed<int64_t>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_max(DType dtype, const RowArgs& a, cudaStream_t stream) {
  switch (dtype) {
    case DType::Float32: return launch_rows(max_rows<float>, a, stream);
    case DType::Float64: return launch_rows(max_rows<double>, a, stream);
    case DType::Int64: return launch_rows(max_rows<int64_t>, a, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_softmax(DType dtype, const RowArgs& a, bool log, cudaStream_t stream) {
  ATTN_CUDA_FLOAT_TYPES(dtype, return launch_rows(softmax_rows<T>, a, stream, log));
  return cudaSuccess;
}

cudaError_t launch_softmax_backward(DType dtype, const RowArgs& a, bool log, cudaStream_t stream) {
  ATTN_CUDA_FLOAT_TYPES(dtype, return launch_rows(softmax_backward_rows<T>, a, stream, log));
  return cudaSuccess;
}

}  // namespace attn::cuda
