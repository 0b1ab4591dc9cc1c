// The LSTM cell of one hidden unit, forward and backward, written once for both backends (the
// CPU loops of kernels/cpu/lstm.cpp and the CUDA threads of kernels/cuda/lstm.cu call these).
// Gates in PyTorch's order: i, f, g, o.
#pragma once

#include "kernels/functors.h"

namespace attn::kernels::lstm {

// Pre-activations z* and the previous cell state in; new c and h and the gate activations out.
template <typename T>
ATTN_HD void forward(T zi, T zf, T zg, T zo, T c_prev, T& c, T& h, T& i, T& f, T& g, T& o) {
  i = fn::sigmoid_(zi);
  f = fn::sigmoid_(zf);
  g = fn::tanh_(zg);
  o = fn::sigmoid_(zo);
  c = f * c_prev + i * g;
  h = o * fn::tanh_(c);
}

// Saved activations, the previous c, and the gradients w.r.t. the new h and c in; the gradients
// of the four pre-activations and of the previous c out (c is recomputed, not saved).
template <typename T>
ATTN_HD void backward(T i, T f, T g, T o, T c_prev, T dh, T dc, T& di, T& df, T& dg, T& d_o, T& dc_prev) {
  const T c = f * c_prev + i * g;
  const T tc = fn::tanh_(c);
  const T dct = dc + dh * o * (T(1) - tc * tc);
  di = dct * g * i * (T(1) - i);
  df = dct * c_prev * f * (T(1) - f);
  dg = dct * i * (T(1) - g * g);
  d_o = dh * tc * o * (T(1) - o);
  dc_prev = dct * f;
}

}  // namespace attn::kernels::lstm
