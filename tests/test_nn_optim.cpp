// Modules (dotted parameter names, train/eval, layer initialization) and optimizers: the first
// step checked against the formula worked by hand, three steps against values printed by
// PyTorch 1.13 (torch.optim, float64) for the same inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "core/nn/layers.h"
#include "core/optim/optimizer.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

// ---------------------------------------------------------------- modules

class Block : public nn::Module {
 public:
  explicit Block(Generator& g) {
    fc = register_module("fc", std::make_unique<nn::Linear>(4, 3, true, g));
    drop = register_module("drop", std::make_unique<nn::Dropout>(0.5, g));
    scale = ones({3});
    register_parameter("scale", &scale);
  }
  Tensor forward(const Tensor& x) { return drop->forward(fc->forward(x)) * scale; }
  nn::Linear* fc;
  nn::Dropout* drop;
  Tensor scale;
};

class Net : public nn::Module {
 public:
  explicit Net(Generator& g) {
    embedding = register_module("embedding", std::make_unique<nn::Embedding>(10, 4, 0, g));
    encoder = register_module("encoder", std::make_unique<Block>(g));
  }
  nn::Embedding* embedding;
  Block* encoder;
};

TEST(Module, DottedParameterNamesInRegistrationOrder) {
  Generator g(1);
  Net net(g);
  std::vector<std::string> names;
  for (auto& [n, p] : net.named_parameters()) {
    names.push_back(n);
    EXPECT_TRUE(p.requires_grad()) << n;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"embedding.weight", "encoder.scale", "encoder.fc.weight", "encoder.fc.bias"}));
  EXPECT_EQ(net.num_parameters(), 10 * 4 + 3 + 3 * 4 + 3);
  EXPECT_TRUE(net.parameter("encoder.fc.weight").is_same(net.encoder->fc->weight));
  EXPECT_THROW(net.parameter("encoder.fc.nope"), ValueError);
}

TEST(Module, TrainEvalSwitchesDropout) {
  Generator g(2);
  Block b(g);
  Tensor x = uniform({64, 4}, -1.0, 1.0, g);
  b.eval();
  EXPECT_FALSE(b.drop->is_training());
  Tensor y1 = b.forward(x), y2 = b.forward(x);
  EXPECT_EQ(y1.to_vector<float>(), y2.to_vector<float>());  // deterministic, nothing dropped
  b.train();
  std::vector<float> y = b.forward(x).to_vector<float>(), ref = y1.to_vector<float>();
  int zeroed = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0.0f) {
      ++zeroed;
    } else {
      EXPECT_NEAR(y[i], 2.0f * ref[i], 1e-5f);  // kept units are scaled by 1 / (1 - p)
    }
  }
  EXPECT_GT(zeroed, 64);   // about half of 192
  EXPECT_LT(zeroed, 128);
}

TEST(Layers, LinearInitAndForward) {
  Generator g(3);
  nn::Linear fc(16, 8, true, g);
  const double bound = 1.0 / 4.0;
  for (float v : fc.weight.to_vector<float>()) EXPECT_LE(std::abs(v), bound);
  for (float v : fc.bias.to_vector<float>()) EXPECT_LE(std::abs(v), bound);
  Tensor x = uniform({5, 16}, -1.0, 1.0, g);
  EXPECT_TRUE(all_close(fc.forward(x), Ref::of(matmul(x, fc.weight.t()) + fc.bias), 1e-5, 1e-6));
}

TEST(Layers, EmbeddingPaddingRowIsZeroAndGetsNoGradient) {
  Generator g(4);
  nn::Embedding emb(6, 3, /*padding_idx=*/2, g);
  std::vector<float> w = emb.weight.to_vector<float>();
  for (int j = 0; j < 3; ++j) EXPECT_EQ(w[2 * 3 + j], 0.0f);
  Tensor idx = from_vector<int64_t>({2, 1, 2, 5, 1});
  sum(emb.forward(idx) * 3.0).backward();
  std::vector<float> grad = emb.weight.grad().to_vector<float>();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(grad[0 * 3 + j], 0.0f);  // row 0 unused
    EXPECT_EQ(grad[1 * 3 + j], 6.0f);  // row 1 used twice
    EXPECT_EQ(grad[2 * 3 + j], 0.0f);  // padding row: used twice, still no gradient
    EXPECT_EQ(grad[5 * 3 + j], 3.0f);
  }
}

// ---------------------------------------------------------------- optimizers

const std::vector<std::vector<double>> kGrads = {{0.5, 0.25, -1.0}, {-0.25, 0.75, 0.125}, {1.5, -0.5, 0.0}};

std::vector<double> run(optim::Optimizer& opt, Tensor& p, size_t steps) {
  for (size_t s = 0; s < steps; ++s) {
    p.set_grad(from_vector(kGrads[s]));
    opt.step();
  }
  return p.to_vector<double>();
}

Tensor param() {
  Tensor p = from_vector<double>({1.0, -2.0, 0.5});
  p.requires_grad_(true);
  return p;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

TEST(SGD, MomentumAndWeightDecayFirstStepByHand) {
  Tensor p = param();
  optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
  // d = g + wd p; the momentum buffer starts as d; p -= lr * buf
  const std::vector<double> p0{1.0, -2.0, 0.5};
  std::vector<double> want;
  for (size_t i = 0; i < 3; ++i) want.push_back(p0[i] - 0.1 * (kGrads[0][i] + 0.01 * p0[i]));
  expect_near_all(run(opt, p, 1), want);
}

TEST(SGD, MatchesPyTorchOverThreeSteps) {
  {
    Tensor p = param();
    optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
    expect_near_all(run(opt, p, 3), {0.7565597489999999, -2.148869623, 0.7440799995});
  }
  {
    Tensor p = param();
    optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    expect_near_all(run(opt, p, 3), {0.6108, -2.194225, 0.810025});
  }
  {
    Tensor p = param();
    optim::SGD opt({p}, {.lr = 0.05, .momentum = 0.5, .dampening = 0.3});
    expect_near_all(run(opt, p, 3), {0.916875, -2.04375, 0.5809375});
  }
}

TEST(Adam, FirstTwoStepsByHand) {
  Tensor p = param();
  optim::Adam opt({p}, {.lr = 0.1});
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8, lr = 0.1;
  std::vector<double> x{1.0, -2.0, 0.5}, m(3, 0.0), v(3, 0.0);
  for (int t = 1; t <= 2; ++t) {
    for (size_t i = 0; i < 3; ++i) {
      const double g = kGrads[t - 1][i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double mhat = m[i] / (1 - std::pow(b1, t)), vhat = v[i] / (1 - std::pow(b2, t));
      x[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
  expect_near_all(run(opt, p, 2), x, 1e-9);  // eps placement differs by O(eps) between the forms
}

TEST(Adam, MatchesPyTorchOverThreeSteps) {
  {
    Tensor p = param();
    optim::Adam opt({p}, {.lr = 0.1});
    expect_near_all(run(opt, p, 3), {0.8063162429161115, -2.217568486288619, 0.7015105436504104});
  }
  {
    Tensor p = param();
    optim::Adam opt({p}, {.lr = 0.1, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
    expect_near_all(run(opt, p, 3), {0.7829404975308175, -2.1638207255212287, 0.6758555277576183});
  }
  {
    Tensor p = param();
    optim::Adam opt({p}, {.lr = 0.1, .weight_decay = 0.1, .decoupled_weight_decay = true});
    expect_near_all(run(opt, p, 3), {0.778871579909233, -2.1552587052656533, 0.6840975091026181});
  }
}

TEST(Adam, SkipsParametersWithoutGradientAndRestoresState) {
  Tensor a = param(), b = param();
  optim::Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(from_vector(kGrads[0]));
  opt.step();
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{1.0, -2.0, 0.5}));
  EXPECT_EQ(opt.steps(0), 1);
  EXPECT_EQ(opt.steps(1), 0);
  // A second optimizer loaded with the first one's state continues identically.
  Tensor a2 = from_vector<double>(a.to_vector<double>());
  a2.requires_grad_(true);
  optim::Adam opt2({a2, param()}, {.lr = 0.1});
  opt2.load_state(opt.state());
  a.set_grad(from_vector(kGrads[1]));
  a2.set_grad(from_vector(kGrads[1]));
  opt.step();
  opt2.step();
  EXPECT_EQ(a.to_vector<double>(), a2.to_vector<double>());
}

TEST(ClipGradNorm, ScalesToMaxNormLikePyTorch) {
  Tensor a = from_vector<double>({3.0, 4.0}), b = from_vector<double>({12.0});
  a.requires_grad_(true);
  b.requires_grad_(true);
  a.set_grad(from_vector<double>({3.0, 4.0}));
  b.set_grad(from_vector<double>({12.0}));
  const double norm = optim::clip_grad_norm_({a, b}, 1.3);
  EXPECT_DOUBLE_EQ(norm, 13.0);  // sqrt(9 + 16 + 144)
  expect_near_all(a.grad().to_vector<double>(), {0.2999999769230787, 0.39999996923077163}, 1e-15);
  expect_near_all(b.grad().to_vector<double>(), {1.199999907692315}, 1e-15);
  // Below the limit nothing changes.
  EXPECT_NEAR(optim::clip_grad_norm_({a, b}, 10.0), 1.3, 1e-6);
  expect_near_all(b.grad().to_vector<double>(), {1.199999907692315}, 1e-15);
}

TEST(ClipGradNorm, ANaNNormMakesEveryGradientNaNAsInPyTorch) {
  // torch.nn.utils.clip_grad_norm_: clamp(max_norm / (nan + 1e-6), max=1) is NaN and multiplies
  // every gradient; std::min(1.0, NaN) was 1.0, an unclipped step with the finite ones.
  Tensor a = from_vector<double>({3.0, 4.0}), b = from_vector<double>({12.0});
  a.requires_grad_(true);
  b.requires_grad_(true);
  a.set_grad(from_vector<double>({3.0, std::nan("")}));
  b.set_grad(from_vector<double>({12.0}));
  EXPECT_TRUE(std::isnan(optim::clip_coefficient({a, b}, 1.0)));
  EXPECT_TRUE(std::isnan(optim::clip_grad_norm_({a, b}, 1.0)));
  EXPECT_TRUE(std::isnan(b.grad().item<double>()));
  EXPECT_TRUE(std::isnan(a.grad().to_vector<double>()[0]));
}

TEST(ClipGradNorm, FusedCoefficientEqualsClippingThenStepping) {
  // clip_coefficient + step(scale) leaves the gradients alone and updates exactly like
  // clip_grad_norm_ followed by step().
  Generator g(12);
  Tensor a = param(), b = param();
  Tensor ga = uniform({3}, -5.0, 5.0, g, {.dtype = DType::Float64});
  optim::Adam oa({a}, {.lr = 0.1}), ob({b}, {.lr = 0.1});
  a.set_grad(ga.clone());
  b.set_grad(ga.clone());
  double norm = 0;
  const double coef = optim::clip_coefficient({a}, 0.5, &norm);
  EXPECT_NEAR(norm, std::sqrt(sum(square(ga)).item<double>()), 1e-12);
  EXPECT_LT(coef, 1.0);
  oa.step(coef);
  EXPECT_EQ(a.grad().to_vector<double>(), ga.to_vector<double>());  // untouched
  optim::clip_grad_norm_({b}, 0.5);
  ob.step();
  expect_near_all(a.to_vector<double>(), b.to_vector<double>(), 1e-15);
}

TEST(ClipGradNorm, LargeGradientsSplitIntoChunksGiveTheExactNorm) {
  // The CPU sum of squares splits tensors of 65536+ elements into parallel chunks: only
  // 3-element gradients were tested (a chunk skipping its first element passed every test).
  Generator g(31);
  const Options f64{.dtype = DType::Float64};
  Tensor a = uniform({200003}, -1.0, 1.0, g, f64), b = uniform({70001}, -1.0, 1.0, g, f64);
  a.requires_grad_(true);
  b.requires_grad_(true);
  const Tensor ga = uniform({200003}, -1.0, 1.0, g, f64), gb = uniform({70001}, -2.0, 2.0, g, f64);
  a.set_grad(ga);
  b.set_grad(gb);
  long double want = 0;
  for (const Tensor& t : {ga, gb})
    for (double v : t.to_vector<double>()) want += static_cast<long double>(v) * v;
  double norm = 0;
  optim::clip_coefficient({a, b}, 1.0, &norm);
  EXPECT_NEAR(norm, std::sqrt(static_cast<double>(want)), 1e-12 * std::sqrt(static_cast<double>(want)));
}

TEST(Training, LinearRegressionConverges) {
  // End to end: y = 3 x0 - 2 x1 + 0.5 learned by Linear + Adam from random data.
  Generator g(9);
  nn::Linear fc(2, 1, true, g);
  optim::Adam opt(fc.parameters(), {.lr = 0.05});
  Tensor x = uniform({256, 2}, -1.0, 1.0, g);
  Tensor y = matmul(x, from_vector<float>({3.0f, -2.0f}, {2, 1})) + 0.5;
  float last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor loss = mean(square(fc.forward(x) - y));
    loss.backward();
    opt.step();
    last = loss.item<float>();
  }
  EXPECT_LT(last, 1e-4f);
  std::vector<float> w = fc.weight.to_vector<float>();
  EXPECT_NEAR(w[0], 3.0f, 0.02f);
  EXPECT_NEAR(w[1], -2.0f, 0.02f);
  EXPECT_NEAR(fc.bias.item<float>(), 0.5f, 0.02f);
}

}  // namespace
}  // namespace attn::test
