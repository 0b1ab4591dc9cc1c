// nn::LSTM: PyTorch's parameter names and order, and the same outputs as torch.nn.LSTM on a
// padded batch (2 layers, bidirectional, packed sequences); on a GPU, the cuDNN implementation
// against the fused one on the same parameters.
#include <gtest/gtest.h>

#include <cmath>

#include "core/nn/lstm.h"
#include "core/ops/composed.h"
#include "kernels/backend.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

// Parameter k (in named_parameters order), element i = 0.3 sin(1.3 i + k): the same formula the
// PyTorch script below filled its module with.
void fill_like_torch_script(nn::LSTM& lstm) {
  NoGradGuard g;
  int k = 0;
  for (auto& [name, p] : lstm.named_parameters()) {
    std::vector<double> v(static_cast<size_t>(p.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.3 * std::sin(1.3 * static_cast<double>(i) + k);
    p.copy_(from_vector(v, p.shape()));
    ++k;
  }
}

TEST(LstmModule, PyTorchParameterNamesAndShapes) {
  nn::LSTM lstm(3, 2, 2, /*bidirectional=*/true);
  std::vector<std::string> names;
  for (auto& [n, p] : lstm.named_parameters()) names.push_back(n);
  const std::vector<std::string> torch_names = {
      "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse",
      "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
      "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
  EXPECT_EQ(names, torch_names);
  EXPECT_EQ(lstm.parameter("weight_ih_l0").shape(), (Shape{8, 3}));
  EXPECT_EQ(lstm.parameter("weight_ih_l1_reverse").shape(), (Shape{8, 4}));  // input is both directions
  EXPECT_EQ(lstm.parameter("weight_hh_l1").shape(), (Shape{8, 2}));
}

TEST(LstmModule, MatchesTorchNnLstmOnAPackedBatch) {
  // Reference printed by PyTorch 1.13 (float64): torch.nn.LSTM(3, 2, num_layers=2,
  // bidirectional=True, batch_first=True) filled as above, x[i] = cos(0.7 i) for shape (2, 4, 3),
  // lengths [4, 2], through pack_padded_sequence / pad_packed_sequence.
  const std::vector<double> want_out = {
      -0.00209894716694895, -0.104529647679221, 0.153618524185189, 0.131562300553278, -0.00502196587919659,
      -0.143598916577321, 0.14820443994032, 0.11872911322915, -0.00784867596226071, -0.177311359371161,
      0.138192962465001, 0.108480321688688, -0.0227856108506209, -0.216902549875477, 0.117406746010056,
      0.0763777751931627, 0.00524096398548812, -0.086456461544285, 0.13722356809021, 0.0968029058636147,
      0.00283536671883911, -0.144865257331991, 0.106436725386926, 0.0668998485589492, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<double> want_h = {0.0939079851979095, 0.101246921721093, 0.123003109517097, 0.0165662685010975,
                                      -0.180778569963985, 0.047994965201935, -0.315946900464414, 0.12562686371086,
                                      -0.0227856108506209, -0.216902549875477, 0.00283536671883911, -0.144865257331991,
                                      0.153618524185189, 0.131562300553278, 0.13722356809021, 0.0968029058636147};
  const std::vector<double> want_c = {0.312646163962892, 0.239573888806034, 0.270252127181414, 0.0534611445120295,
                                      -0.297244806846776, 0.0825867047539887, -0.502485964514568, 0.31337435732582,
                                      -0.0524374268496508, -0.375775135075617, 0.00650090225186646, -0.253271327188,
                                      0.369557238592885, 0.378225236229609, 0.337372865521974, 0.276716656128956};
  nn::LSTM lstm(3, 2, 2, true, 0.0, default_generator(), {.dtype = DType::Float64});
  fill_like_torch_script(lstm);
  std::vector<double> xv(24);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = std::cos(0.7 * static_cast<double>(i));
  nn::LstmOutput o = lstm.forward(from_vector(xv, Shape{2, 4, 3}), from_vector<int64_t>({4, 2}));
  EXPECT_EQ(o.output.shape(), (Shape{2, 4, 4}));
  EXPECT_EQ(o.h_n.shape(), (Shape{4, 2, 2}));
  EXPECT_TRUE(all_close(o.output, Ref(o.output.shape(), want_out), 1e-12, 1e-13));
  EXPECT_TRUE(all_close(o.h_n, Ref(o.h_n.shape(), want_h), 1e-12, 1e-13));
  EXPECT_TRUE(all_close(o.c_n, Ref(o.c_n.shape(), want_c), 1e-12, 1e-13));
}

TEST(LstmModule, BackwardReachesEveryParameter) {
  Generator g(3);
  nn::LSTM lstm(4, 3, 2, true, 0.0, g);
  Tensor x = uniform({3, 5, 4}, -1.0, 1.0, g);
  nn::LstmOutput o = lstm.forward(x, from_vector<int64_t>({5, 1, 3}));
  (sum(o.output * uniform(o.output.shape(), -1.0, 1.0, g)) + sum(o.h_n)).backward();
  for (auto& [name, p] : lstm.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    double norm = 0;
    for (float v : p.grad().to_vector<float>()) norm += v * v;
    EXPECT_GT(norm, 0.0) << name;
  }
}

// Initial states reach their layer and direction: the module against a stack composed by hand
// from primitive ops (composed::lstm_layer per layer and direction, h0[l * D + d]), values and
// every gradient, on random inputs and states; then finite differences through the module.
TEST(LstmModule, InitialStatesReachTheirLayerAndDirection) {
  Generator g(17);
  const int64_t B = 3, S = 5, I = 4, H = 3, L = 2, D = 2;
  nn::LSTM lstm(I, H, L, /*bidirectional=*/true, 0.0, g, {.dtype = DType::Float64});
  const Tensor lengths = from_vector<int64_t>({5, 2, 4});
  auto fresh = [&](const Shape& shape) { return uniform(shape, -0.8, 0.8, g, {.dtype = DType::Float64}); };
  const Tensor x0 = fresh({B, S, I}), h00 = fresh({L * D, B, H}), c00 = fresh({L * D, B, H});
  const Tensor R = fresh({B, S, D * H}), Rh = fresh({L * D, B, H}), Rc = fresh({L * D, B, H});
  auto run = [&](bool by_hand, std::vector<Tensor>& grads) {
    Tensor x = x0.detach().requires_grad_(true), h0 = h00.detach().requires_grad_(true),
           c0 = c00.detach().requires_grad_(true);
    lstm.zero_grad();
    Tensor out, h_n, c_n;
    if (by_hand) {
      Tensor input = x;
      std::vector<Tensor> hs, cs;
      for (int64_t l = 0; l < L; ++l) {
        std::vector<Tensor> outs;
        for (int64_t d = 0; d < D; ++d) {
          const std::string suffix = fmt::format("_l{}{}", l, d == 1 ? "_reverse" : "");
          auto r = composed::lstm_layer(input, lengths, h0.select(0, l * D + d), c0.select(0, l * D + d),
                                        lstm.parameter("weight_ih" + suffix), lstm.parameter("weight_hh" + suffix),
                                        lstm.parameter("bias_ih" + suffix), lstm.parameter("bias_hh" + suffix), d == 1);
          outs.push_back(r.output);
          hs.push_back(r.h_n);
          cs.push_back(r.c_n);
        }
        input = cat(outs, 2);
      }
      out = input;
      h_n = stack(hs, 0);
      c_n = stack(cs, 0);
    } else {
      nn::LstmOutput o = lstm.forward(x, lengths, h0, c0);
      out = o.output;
      h_n = o.h_n;
      c_n = o.c_n;
    }
    (sum(out * R) + sum(h_n * Rh) + sum(c_n * Rc)).backward();
    grads = {out.detach(), h_n.detach(), c_n.detach(), x.grad(), h0.grad(), c0.grad()};
    for (auto& [name, p] : lstm.named_parameters()) grads.push_back(p.grad());
  };
  std::vector<Tensor> module, by_hand;
  run(false, module);
  run(true, by_hand);
  ASSERT_EQ(module.size(), by_hand.size());
  for (size_t k = 0; k < module.size(); ++k)
    EXPECT_TRUE(all_close(module[k], Ref::of(by_hand[k]), 1e-10, 1e-12)) << "result " << k;
  // finite differences of the module's outputs in x, h0, c0 and a parameter of each layer
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& in) {
        nn::LstmOutput o = lstm.forward(in[0], lengths, in[1], in[2]);
        return cat({o.output.flatten(), o.h_n.flatten(), o.c_n.flatten()}, 0);
      },
      {x0.clone(), h00.clone(), c00.clone()}, {0, 1, 2}));
}

TEST(LstmModule, CudnnMatchesFusedOnGpu) {
  std::string why;
  if (!gpu_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  for (auto [layers, bidir] : {std::pair{1, false}, std::pair{2, true}}) {
    Generator g(4);
    nn::LSTM lstm(16, 24, layers, bidir, 0.0, g);
    lstm.to(kCUDA);
    Tensor x = uniform({5, 9, 16}, -1.0, 1.0, g, {.device = kCUDA});
    x.requires_grad_(true);  // its gradient too, padded positions included (zero on both)
    Tensor lengths = from_vector<int64_t>({9, 1, 4, 9, 7}).to(kCUDA);
    const int64_t D = bidir ? 2 : 1;
    Tensor h0 = uniform({layers * D, 5, 24}, -0.5, 0.5, g, {.device = kCUDA});
    Tensor c0 = uniform({layers * D, 5, 24}, -0.5, 0.5, g, {.device = kCUDA});
    Tensor R = uniform({5, 9, 24 * D}, -1.0, 1.0, g, {.device = kCUDA});
    std::vector<std::vector<float>> results[2];
    for (int impl = 0; impl < 2; ++impl) {
      lstm.impl = impl ? nn::LstmImpl::CuDNN : nn::LstmImpl::Fused;
      lstm.zero_grad();
      x.set_grad(Tensor());
      nn::LstmOutput o = lstm.forward(x, lengths, h0, c0);
      (sum(o.output * R) + sum(o.h_n) + sum(o.c_n * 0.5)).backward();
      results[impl].push_back(o.output.to_vector<float>());
      results[impl].push_back(o.h_n.to_vector<float>());
      results[impl].push_back(o.c_n.to_vector<float>());
      for (auto& [n, p] : lstm.named_parameters()) results[impl].push_back(p.grad().to_vector<float>());
      results[impl].push_back(x.grad().to_vector<float>());
    }
    for (size_t k = 0; k < results[0].size(); ++k) {
      double num = 0, den = 0;
      for (size_t i = 0; i < results[0][k].size(); ++i) {
        num += std::pow(results[0][k][i] - results[1][k][i], 2);
        den += std::pow(results[0][k][i], 2);
      }
      EXPECT_LE(std::sqrt(num / std::max(den, 1e-30)), 1e-5) << "result " << k << ", layers " << layers;
    }
  }
}

// Dropout between cuDNN's layers: a new mask at every training call (drawn from the module's
// generator), none in evaluation.
TEST(LstmModule, CudnnDropoutDrawsANewMaskEveryCall) {
  std::string why;
  if (!gpu_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  Generator g(6);
  nn::LSTM lstm(8, 16, 2, false, 0.5, g);
  lstm.to(kCUDA);
  lstm.impl = nn::LstmImpl::CuDNN;
  Tensor x = uniform({4, 6, 8}, -1.0, 1.0, g, {.device = kCUDA});
  Tensor lengths = from_vector<int64_t>({6, 3, 6, 1}).to(kCUDA);
  lstm.train();
  const std::vector<float> a = lstm.forward(x, lengths).output.to_vector<float>();
  const std::vector<float> b = lstm.forward(x, lengths).output.to_vector<float>();
  EXPECT_NE(a, b);
  lstm.eval();
  EXPECT_EQ(lstm.forward(x, lengths).output.to_vector<float>(), lstm.forward(x, lengths).output.to_vector<float>());
}

// cuDNN's weight space is laid out and filled by the input's element size: a parameter or state
// of another dtype or shape must be refused with the reason, not copied past its buffer.
TEST(LstmModule, CudnnRefusesMismatchedParametersAndStates) {
  std::string why;
  if (!gpu_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  Generator g(8);
  auto& be = kernels::backend(kCUDA);
  const int64_t B = 3, S = 4, I = 5, H = 6;
  auto param_set = [&](DType dt, int64_t in) {
    return std::vector<Tensor>{uniform({4 * H, in}, -0.3, 0.3, g, {dt, kCUDA}), uniform({4 * H, H}, -0.3, 0.3, g, {dt, kCUDA}),
                               uniform({4 * H}, -0.3, 0.3, g, {dt, kCUDA}), uniform({4 * H}, -0.3, 0.3, g, {dt, kCUDA})};
  };
  const Tensor x = uniform({B, S, I}, -1.0, 1.0, g, {.device = kCUDA});
  const Tensor lengths = from_vector<int64_t>({4, 2, 1}).to(kCUDA);
  const Tensor h0 = zeros({1, B, H}, {.device = kCUDA}), c0 = zeros({1, B, H}, {.device = kCUDA});
  // the well-formed call works (and is the baseline for the refusals below)
  EXPECT_EQ(be.cudnn_lstm(x, lengths, h0, c0, param_set(DType::Float32, I), 1, false, 0.0).output.shape(),
            (Shape{B, S, H}));
  auto refused = [&](const Tensor& xx, const Tensor& hh, const std::vector<Tensor>& ps, const char* what) {
    try {
      be.cudnn_lstm(xx, lengths, hh, c0, ps, 1, false, 0.0);
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cudnn_lstm"), std::string::npos) << what << ": " << e.what();
    }
  };
  refused(x.to(DType::Float64), h0, param_set(DType::Float32, I), "float64 input, float32 parameters");
  refused(x, h0, param_set(DType::Float64, I), "float64 parameters");
  refused(x, h0.to(DType::Float64), param_set(DType::Float32, I), "float64 initial state");
  refused(x, h0, param_set(DType::Float32, I + 1), "weight_ih of the wrong width");
  refused(x, zeros({1, B + 1, H}, {.device = kCUDA}), param_set(DType::Float32, I), "initial state of the wrong batch");
}

}  // namespace
}  // namespace attn::test
