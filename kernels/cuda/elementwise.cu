// CUDA elementwise kernels: fill, copy (with casts), every unary and binary op of
// kernels/functors.h, where, masked_fill.
//
// Variants, chosen by the host plan (kernels/iter.h) for each call:
//   contiguous : every operand a dense run of n elements; each thread handles 4 elements a
//                block-width apart (coalesced, 4 loads in flight), grid-stride over the rest;
//   strided    : any strides (broadcast = stride 0) over up to 8 coalesced dims; one divmod
//                chain per element turns the linear index into per-operand byte offsets.
// Shapes: any; 64 MB tensors reach the copy bandwidth on the contiguous path (see
// `attn bench kernels`).
#include <utility>

#include "kernels/cuda/common.cuh"
#include "kernels/functors.h"

namespace attn::cuda {

int grid_for(int64_t n, int threads) {
  static int max_blocks = [] {
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    return sms * 16;
  }();
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks < 1 ? 1 : (blocks < max_blocks ? blocks : max_blocks));
}

namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;

template <typename Out, typename F, typename... In>
__global__ void elementwise_contiguous(int64_t n, F f, Out* out, const In*... in) {
  const int64_t tile = static_cast<int64_t>(blockDim.x) * kUnroll;
  for (int64_t start = static_cast<int64_t>(blockIdx.x) * tile; start < n;
       start += static_cast<int64_t>(gridDim.x) * tile) {
    Out res[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = start + u * blockDim.x + threadIdx.x;
      if (i < n) res[u] = f(in[i]...);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = start + u * blockDim.x + threadIdx.x;
      if (i < n) out[i] = res[u];
    }
  }
}

template <typename Out, typename F, typename... In, size_t... I>
__device__ __forceinline__ void apply_at(const ElementwiseArgs& a, int64_t i, F& f, std::index_sequence<I...>) {
  int64_t off[kMaxOperands];
  offsets_of(a.calc, i, off);
  *reinterpret_cast<Out*>(static_cast<char*>(a.ptr[0]) + off[0]) =
      f(*reinterpret_cast<const In*>(static_cast<const char*>(a.ptr[I + 1]) + off[I + 1])...);
}

template <typename Out, typename F, typename... In>
__global__ void elementwise_strided(ElementwiseArgs a, F f) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    apply_at<Out, F, In...>(a, i, f, std::index_sequence_for<In...>{});
  }
}

template <typename Out, typename... In, typename F, size_t... I>
void run_contiguous(const ElementwiseArgs& a, F f, cudaStream_t stream, std::index_sequence<I...>) {
  const int grid = grid_for((a.n + kUnroll - 1) / kUnroll, kThreads);
  elementwise_contiguous<Out, F, In...><<<grid, kThreads, 0, stream>>>(
      a.n, f, static_cast<Out*>(a.ptr[0]), static_cast<const In*>(a.ptr[I + 1])...);
}

template <typename Out, typename... In, typename F>
void run(const ElementwiseArgs& a, F f, cudaStream_t stream) {
  if (a.n == 0) return;
  if (a.contiguous) {
    run_contiguous<Out, In...>(a, f, stream, std::index_sequence_for<In...>{});
  } else {
    elementwise_strided<Out, F, In...><<<grid_for(a.n, kThreads), kThreads, 0, stream>>>(a, f);
  }
}

template <typename Visit>
bool visit_storable(DType dtype, Visit&& visit) {
  return kernels::visit_elementwise_dtype(dtype, visit);
}

}  // namespace

bool unary_supported(UnaryOp op, DType in) {
  bool ok = false;
  kernels::visit_elementwise_dtype(in, [&](auto tag) {
    using T = decltype(tag);
    ok = kernels::visit_unary<T>(op, 0.0, [](auto) {});
  });
  return ok;
}

bool binary_supported(BinaryOp op, DType in) {
  bool ok = false;
  kernels::visit_elementwise_dtype(in, [&](auto tag) {
    using T = decltype(tag);
    ok = kernels::visit_binary<T>(op, [](auto) {});
  });
  return ok;
}

cudaError_t launch_fill(DType dtype, const ElementwiseArgs& a, double value, cudaStream_t stream) {
  if (!visit_storable(dtype, [&](auto tag) {
        using T = decltype(tag);
        run<T>(a, kernels::fn::Fill<T>{static_cast<T>(value)}, stream);
      }))
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t launch_copy(DType dst, DType src, const ElementwiseArgs& a, cudaStream_t stream) {
  bool ok = true;
  ok = visit_storable(dst, [&](auto dtag) {
         using D = decltype(dtag);
         ok = visit_storable(src, [&](auto stag) {
           using S = decltype(stag);
           run<D, S>(a, kernels::fn::Cast<D, S>{}, stream);
         });
       }) && ok;
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t launch_unary(UnaryOp op, DType in, double scalar, const ElementwiseArgs& a, cudaStream_t stream) {
  bool ok = false;
  kernels::visit_elementwise_dtype(in, [&](auto tag) {
    using T = decltype(tag);
    ok = kernels::visit_unary<T>(op, scalar, [&](auto f) { run<typename decltype(f)::out_t, T>(a, f, stream); });
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t launch_binary(BinaryOp op, DType in, const ElementwiseArgs& a, cudaStream_t stream) {
  bool ok = false;
  kernels::visit_elementwise_dtype(in, [&](auto tag) {
    using T = decltype(tag);
    ok = kernels::visit_binary<T>(op, [&](auto f) { run<typename decltype(f)::out_t, T, T>(a, f, stream); });
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t launch_where(DType dtype, const ElementwiseArgs& a, cudaStream_t stream) {
  if (!visit_storable(dtype, [&](auto tag) {
        using T = decltype(tag);
        run<T, bool, T, T>(a, kernels::fn::Where<T>{}, stream);
      }))
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t launch_masked_fill(DType dtype, const ElementwiseArgs& a, double value, cudaStream_t stream) {
  if (!visit_storable(dtype, [&](auto tag) {
        using T = decltype(tag);
        run<T, T, bool>(a, kernels::fn::MaskedFill<T>{static_cast<T>(value)}, stream);
      }))
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace attn::cuda
