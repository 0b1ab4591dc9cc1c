// CUDA fused LSTM cell, one time step over the rows still running (the step loop, the packing
// of padded batches and the GEMMs are in core/ops/lstm.cpp, on cuBLAS). One thread per (b, j)
// of the (B, H) state:
//   forward : 4 pre-activations from xproj_t + gates, sigmoid/tanh, new c and h, output and the
//             saved activations;
//   backward: dgates (4 per thread), dc to the previous step.
// Shapes: B x H up to any size (grid-stride); rows may be strided (views of (B, S, .) buffers).
#include "kernels/cuda/common.cuh"
#include "kernels/lstm_cell.h"

namespace attn::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void lstm_forward_kernel(LstmCellArgs a) {
  const int64_t n = a.B * a.H;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / a.H, j = idx % a.H, H = a.H;
    const T* zx = static_cast<const T*>(a.xproj) + b * a.xproj_s;
    const T* zh = static_cast<const T*>(a.gates) + b * a.gates_s;
    T* h = static_cast<T*>(a.h) + b * a.h_s;
    T* c = static_cast<T*>(a.c) + b * a.c_s;
    T* y = static_cast<T*>(a.y) + b * a.y_s;
    T* act = static_cast<T*>(a.act) + b * a.act_s;
    const T hp = h[j], cp = c[j];
    static_cast<T*>(a.hprev)[b * a.hprev_s + j] = hp;
    static_cast<T*>(a.cprev)[b * a.cprev_s + j] = cp;
    T cn, hn, i, f, g, o;
    kernels::lstm::forward(zx[j] + zh[j], zx[H + j] + zh[H + j], zx[2 * H + j] + zh[2 * H + j], zx[3 * H + j] + zh[3 * H + j],
                           cp, cn, hn, i, f, g, o);
    c[j] = cn;
    h[j] = hn;
    y[j] = hn;
    act[j] = i;
    act[H + j] = f;
    act[2 * H + j] = g;
    act[3 * H + j] = o;
  }
}

template <typename T>
__global__ void lstm_backward_kernel(LstmCellArgs a) {
  const int64_t n = a.B * a.H;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / a.H, j = idx % a.H, H = a.H;
    T* dg = static_cast<T*>(a.dgates) + b * a.dgates_s;
    const T* act = static_cast<const T*>(a.act) + b * a.act_s;
    const T cp = static_cast<const T*>(a.cprev)[b * a.cprev_s + j];
    T* dh = static_cast<T*>(a.h) + b * a.h_s;
    T* dc = static_cast<T*>(a.c) + b * a.c_s;
    const T dht = dh[j] + (a.y ? static_cast<const T*>(a.y)[b * a.y_s + j] : T(0));
    T dc_prev;
    kernels::lstm::backward(act[j], act[H + j], act[2 * H + j], act[3 * H + j], cp, dht, dc[j], dg[j], dg[H + j],
                            dg[2 * H + j], dg[3 * H + j], dc_prev);
    dc[j] = dc_prev;
    dh[j] = T(0);  // the W_hh path is added by the caller's GEMM
  }
}

}  // namespace

cudaError_t launch_lstm_cell_forward(DType dtype, const LstmCellArgs& a, cudaStream_t stream) {
  if (a.B * a.H == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, lstm_forward_kernel<T><<<grid_for(a.B * a.H, kThreads), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

cudaError_t launch_lstm_cell_backward(DType dtype, const LstmCellArgs& a, cudaStream_t stream) {
  if (a.B * a.H == 0) return cudaSuccess;
  ATTN_CUDA_FLOAT_TYPES(dtype, lstm_backward_kernel<T><<<grid_for(a.B * a.H, kThreads), kThreads, 0, stream>>>(a));
  return cudaGetLastError();
}

}  // namespace attn::cuda
