// CPU fused LSTM cell, forward and backward, one time step over the rows still running (the step
// loop, the packing of padded batches and the GEMMs are in core/ops/lstm.cpp). Rows run in
// parallel; the hidden dimension is the vectorized inner loop, with the fast sigmoid / tanh of
// fast_math.h for float.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"
#include "kernels/lstm_cell.h"

namespace attn::cpu {

void CpuBackend::lstm_cell_forward(const Tensor& xproj_t, const Tensor& gates, const Tensor& h, const Tensor& c,
                                   const Tensor& y_t, const Tensor& act_t, const Tensor& hprev_t,
                                   const Tensor& cprev_t) {
  const int64_t B = h.size(0), H = h.size(1);
  dispatch_float(h.dtype(), "lstm_cell_forward", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(B, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(8 * H, 1)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T* zx = xproj_t.data<T>() + b * xproj_t.stride(0);
        const T* zh = gates.data<T>() + b * gates.stride(0);
        T* hb = h.data<T>() + b * h.stride(0);
        T* cb = c.data<T>() + b * c.stride(0);
        T* yb = y_t.data<T>() + b * y_t.stride(0);
        T* ab = act_t.data<T>() + b * act_t.stride(0);
        T* hp = hprev_t.data<T>() + b * hprev_t.stride(0);
        T* cp = cprev_t.data<T>() + b * cprev_t.stride(0);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T cn, hn, i, f, g, o;
          hp[j] = hb[j];
          cp[j] = cb[j];
          kernels::lstm::forward(zx[j] + zh[j], zx[H + j] + zh[H + j], zx[2 * H + j] + zh[2 * H + j],
                                 zx[3 * H + j] + zh[3 * H + j], cb[j], cn, hn, i, f, g, o);
          cb[j] = cn;
          hb[j] = hn;
          yb[j] = hn;
          ab[j] = i;
          ab[H + j] = f;
          ab[2 * H + j] = g;
          ab[3 * H + j] = o;
        }
      }
    });
  });
}

void CpuBackend::lstm_cell_backward(const Tensor& act_t, const Tensor& cprev_t, const Tensor& dy_t, const Tensor& dh,
                                    const Tensor& dc, const Tensor& dgates_t) {
  const int64_t B = dh.size(0), H = dh.size(1);
  dispatch_float(dh.dtype(), "lstm_cell_backward", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(B, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(8 * H, 1)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T* ab = act_t.data<T>() + b * act_t.stride(0);
        const T* cp = cprev_t.data<T>() + b * cprev_t.stride(0);
        const T* dy = dy_t.defined() ? dy_t.data<T>() + b * dy_t.stride(0) : nullptr;
        T* dhb = dh.data<T>() + b * dh.stride(0);
        T* dcb = dc.data<T>() + b * dc.stride(0);
        T* dg = dgates_t.data<T>() + b * dgates_t.stride(0);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          T di, df, dgg, d_o, dc_prev;
          kernels::lstm::backward(ab[j], ab[H + j], ab[2 * H + j], ab[3 * H + j], cp[j], dhb[j] + (dy ? dy[j] : T(0)),
                                  dcb[j], di, df, dgg, d_o, dc_prev);
          dg[j] = di;
          dg[H + j] = df;
          dg[2 * H + j] = dgg;
          dg[3 * H + j] = d_o;
          dcb[j] = dc_prev;
          dhb[j] = T(0);  // the path through W_hh is added by the caller's GEMM
        }
      }
    });
  });
}

}  // namespace attn::cpu
