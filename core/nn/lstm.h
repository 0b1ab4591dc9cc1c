// nn::LSTM: multi-layer, optionally bidirectional, over padded batches with lengths, with
// PyTorch's parameter names and layouts (weight_ih_l{k}[_reverse] (4H, in), weight_hh_l{k}
// (4H, H), bias_ih_l{k}, bias_hh_l{k}; gates i, f, g, o), so a torch.nn.LSTM state dict loads
// as it is. Two implementations of the same parameters:
//   Fused (default, CPU and CUDA): core/ops/fused.h lstm_layer per layer and direction;
//   CuDNN (CUDA only): one cudnnRNNForward / BackwardData_v8 / BackwardWeights_v8 call for the
//          whole stack (kernels/cuda/cudnn_lstm.cpp). Dropout between layers then uses cuDNN's
//          own generator (not the engine's Philox stream).
#pragma once

#include <vector>

#include "core/nn/module.h"
#include "core/ops/fused.h"

namespace attn::nn {

enum class LstmImpl { Fused, CuDNN };

struct LstmOutput {
  Tensor output;  // (B, S, D * H), zero at padded steps
  Tensor h_n;     // (L * D, B, H), PyTorch's order: layer major, then direction
  Tensor c_n;
};

class LSTM : public Module {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bidirectional = false,
       double dropout = 0.0, Generator& gen = default_generator(), Options opt = {});
  // x (B, S, input_size); lengths (B) int64 in [1, S] on x's device; h0, c0 (L * D, B, H) or
  // undefined for zeros.
  LstmOutput forward(const Tensor& x, const Tensor& lengths, const Tensor& h0 = Tensor(),
                     const Tensor& c0 = Tensor()) const;

  int64_t input_size, hidden_size, num_layers;
  bool bidirectional;
  double dropout;
  LstmImpl impl = LstmImpl::Fused;
  // Parameters of layer l, direction d at index l * D + d.
  std::vector<Tensor> w_ih, w_hh, b_ih, b_hh;

 private:
  Generator* gen_;
};

}  // namespace attn::nn
