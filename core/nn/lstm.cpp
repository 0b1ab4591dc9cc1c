#include "core/nn/lstm.h"

#include <cmath>

#include "kernels/backend.h"

namespace attn::nn {

LSTM::LSTM(int64_t in, int64_t hidden, int64_t layers, bool bidir, double drop, Generator& gen, Options opt)
    : input_size(in), hidden_size(hidden), num_layers(layers), bidirectional(bidir), dropout(drop), gen_(&gen) {
  ATTN_CHECK(in > 0 && hidden > 0 && layers > 0, ValueError,
             "LSTM: sizes must be positive, got input {} hidden {} layers {}", in, hidden, layers);
  ATTN_CHECK(drop >= 0.0 && drop < 1.0, ValueError, "LSTM: dropout must be in [0, 1), got {}", drop);
  const int64_t D = bidir ? 2 : 1, n = layers * D;
  const double k = 1.0 / std::sqrt(static_cast<double>(hidden));
  // Reserve first: the module registers pointers into these vectors.
  for (auto* v : {&w_ih, &w_hh, &b_ih, &b_hh}) v->reserve(static_cast<size_t>(n));
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t d = 0; d < D; ++d) {
      const int64_t layer_in = l == 0 ? in : hidden * D;
      const std::string suffix = fmt::format("_l{}{}", l, d ? "_reverse" : "");
      w_ih.push_back(uniform({4 * hidden, layer_in}, -k, k, gen, opt));
      w_hh.push_back(uniform({4 * hidden, hidden}, -k, k, gen, opt));
      b_ih.push_back(uniform({4 * hidden}, -k, k, gen, opt));
      b_hh.push_back(uniform({4 * hidden}, -k, k, gen, opt));
      register_parameter("weight_ih" + suffix, &w_ih.back());
      register_parameter("weight_hh" + suffix, &w_hh.back());
      register_parameter("bias_ih" + suffix, &b_ih.back());
      register_parameter("bias_hh" + suffix, &b_hh.back());
    }
  }
}

LstmOutput LSTM::forward(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0) const {
  ATTN_CHECK(x.defined() && x.dim() == 3 && x.size(2) == input_size, ShapeError,
             "LSTM: input must be (B, S, {}), got shape {}", input_size, x.defined() ? x.shape() : Shape{});
  const int64_t D = bidirectional ? 2 : 1, B = x.size(0), H = hidden_size;
  const Shape state_shape{num_layers * D, B, H};
  for (const Tensor* s : {&h0, &c0}) {
    ATTN_CHECK(!s->defined() || s->shape() == state_shape, ShapeError,
               "LSTM: initial state must be (layers * directions, B, H) = {}, got shape {}", state_shape, s->shape());
  }
  const Tensor zero = zeros(Shape{B, H}, {x.dtype(), x.device()});
  if (impl == LstmImpl::CuDNN) {
    ATTN_CHECK(x.device().is_cuda(), DeviceError, "LSTM: the cuDNN implementation needs a CUDA tensor, got one on {}",
               x.device());
    std::vector<Tensor> params;
    for (size_t i = 0; i < w_ih.size(); ++i) {
      for (const Tensor* p : {&w_ih[i], &w_hh[i], &b_ih[i], &b_hh[i]}) params.push_back(*p);
    }
    const Tensor hx = h0.defined() ? h0 : zeros(state_shape, {x.dtype(), x.device()});
    const Tensor cx = c0.defined() ? c0 : zeros(state_shape, {x.dtype(), x.device()});
    const double p = is_training() ? dropout : 0.0;
    // A fresh seed per call from the module's generator: a new dropout mask every step.
    const uint64_t seed = p > 0.0 ? gen_->seed() ^ (gen_->reserve(4) * 0x9e3779b97f4a7c15ull) : 0;
    kernels::CudnnLstmOutput o = kernels::backend(x.device()).cudnn_lstm(x, lengths, hx, cx, params, num_layers,
                                                                         bidirectional, p, seed);
    return {o.output, o.h_n, o.c_n};
  }
  Tensor input = x;
  std::vector<Tensor> hs, cs;
  for (int64_t l = 0; l < num_layers; ++l) {
    std::vector<Tensor> outs;
    for (int64_t d = 0; d < D; ++d) {
      const size_t i = static_cast<size_t>(l * D + d);
      const Tensor hi = h0.defined() ? h0.select(0, static_cast<int64_t>(i)) : zero;
      const Tensor ci = c0.defined() ? c0.select(0, static_cast<int64_t>(i)) : zero;
      LstmLayerOutput r = lstm_layer(input, lengths, hi, ci, w_ih[i], w_hh[i], b_ih[i], b_hh[i], d == 1);
      outs.push_back(r.output);
      hs.push_back(r.h_n);
      cs.push_back(r.c_n);
    }
    input = D == 2 ? cat(outs, 2) : outs[0];
    if (l + 1 < num_layers && dropout > 0.0) input = attn::dropout(input, dropout, is_training(), *gen_);
  }
  return {input, stack(hs, 0), stack(cs, 0)};
}

}  // namespace attn::nn
