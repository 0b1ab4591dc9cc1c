// The autograd engine: graph shapes (diamond, reuse), accumulation, no-grad scopes, freeing the
// graph, and the errors a misuse must raise.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <thread>

#include "core/autograd/node.h"
#include "core/ops/fused.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

Tensor leaf(const std::vector<double>& v) {
  Tensor t = from_vector(v, Shape{static_cast<int64_t>(v.size())});
  t.requires_grad_(true);
  return t;
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  // y = sum((2x) * exp(x)): both branches start at x and meet again; dy/dx = 2e^x + 2x e^x.
  Tensor x = leaf({0.3, -1.2, 0.7});
  Tensor a = x * 2.0;
  Tensor b = exp(x);
  Tensor y = sum(a * b);
  y.backward();
  std::vector<double> g = x.grad().to_vector<double>();
  const std::vector<double> xs{0.3, -1.2, 0.7};
  for (size_t i = 0; i < xs.size(); ++i)
    EXPECT_NEAR(g[i], 2 * std::exp(xs[i]) + 2 * xs[i] * std::exp(xs[i]), 1e-12);
}

TEST(Autograd, TensorUsedTwiceGetsBothContributions) {
  Tensor x = leaf({1.5, -2.0});
  sum(x * x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3.0, -4.0}));
  Tensor z = leaf({1.0, 2.0});
  sum(add(z, z) * z).backward();  // d/dz (2 z^2) = 4z
  EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>{4.0, 8.0}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1.0, 2.0, 3.0});
  sum(x * 3.0).backward();
  sum(x * x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3.0 + 2.0, 3.0 + 4.0, 3.0 + 6.0}));
  x.set_grad(Tensor());
  sum(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0, 1.0, 1.0}));
}

TEST(Autograd, LeafGradientsNeverAlias) {
  Tensor x = leaf({1.0, 2.0}), y = leaf({3.0, 4.0});
  sum(x + y).backward();  // the same upstream gradient reaches both leaves
  EXPECT_NE(x.grad().storage(), y.grad().storage());
  sum(x * 5.0).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{6.0, 6.0}));
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{1.0, 1.0}));
}

TEST(Autograd, NoGradScopeRecordsNothing) {
  Tensor x = leaf({1.0, 2.0});
  {
    NoGradGuard g;
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      NoGradGuard nested;
    }
    EXPECT_FALSE(GradMode::is_enabled());  // the nested guard restored "off", not "on"
  }
  EXPECT_TRUE(GradMode::is_enabled());
  Tensor y = x * 2.0;
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(y.grad_fn()->name(), "MulScalarBackward");
  EXPECT_FALSE(x.detach().requires_grad());
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = leaf({1.0, 2.0, 3.0});
  Tensor y = x * x;
  try {
    y.backward();
    FAIL() << "expected AutogradError";
  } catch (const AutogradError& e) {
    EXPECT_NE(std::string(e.what()).find("[3]"), std::string::npos) << e.what();
  }
  y.backward(from_vector<double>({1.0, 0.5, -1.0}));  // vector-Jacobian product
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2.0, 2.0, -6.0}));
  EXPECT_THROW(y.backward(from_vector<double>({1.0, 2.0})), ShapeError);
}

TEST(Autograd, SecondBackwardThroughFreedGraphFails) {
  Tensor x = leaf({0.5, 1.5});
  Tensor y = sum(exp(x));
  y.backward();
  try {
    y.backward();
    FAIL() << "expected AutogradError";
  } catch (const AutogradError& e) {
    EXPECT_NE(std::string(e.what()).find("second time"), std::string::npos) << e.what();
  }
  x.set_grad(Tensor());
  Tensor z = sum(exp(x));
  z.backward(Tensor(), /*retain_graph=*/true);
  z.backward();  // allowed: the first call kept the graph; the two gradients add up
  EXPECT_NEAR(x.grad().to_vector<double>()[0], 2 * std::exp(0.5), 1e-12);
}

TEST(Autograd, GraphIsFreedAfterBackward) {
  Tensor x = leaf({1.0, 2.0});
  Tensor w = from_vector<double>({3.0, 4.0});
  Tensor y = sum(x * w);  // the node saves w
  std::weak_ptr<Storage> saved = w.storage();
  w = Tensor();
  EXPECT_FALSE(saved.expired());  // held by the graph
  y.backward();
  EXPECT_TRUE(saved.expired());   // released with the graph's saved tensors
}

TEST(Autograd, InPlaceChangeToSavedTensorIsDetected) {
  Tensor x = leaf({1.0, 2.0});
  Tensor a = from_vector<double>({3.0, 4.0});
  Tensor y = sum(x * a);
  a.mul_(2.0);  // a was saved for the gradient of x
  try {
    y.backward();
    FAIL() << "expected AutogradError";
  } catch (const AutogradError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("modified by an in-place operation"), std::string::npos) << msg;
    EXPECT_NE(msg.find("version 1"), std::string::npos) << msg;
  }
  // Through a view: the version counter lives in the shared storage.
  Tensor b = from_vector<double>({3.0, 4.0});
  Tensor y2 = sum(x * b);
  b.narrow(0, 1, 1).fill_(0.0);
  EXPECT_THROW(y2.backward(), AutogradError);
}

TEST(Autograd, InPlaceOnTensorsThatRequireGradIsRefused) {
  Tensor x = leaf({1.0, 2.0});
  EXPECT_THROW(x.add_(ones({2}, {.dtype = DType::Float64})), AutogradError);
  EXPECT_THROW((x * 2.0).mul_(3.0), AutogradError);
  {
    NoGradGuard g;
    x.mul_(3.0);  // allowed: this is how optimizers update parameters
  }
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{3.0, 6.0}));
}

TEST(Autograd, RequiresGradOnlyOnFloatLeaves) {
  Tensor x = leaf({1.0});
  EXPECT_THROW((x * 2.0).requires_grad_(false), AutogradError);
  EXPECT_THROW(arange(3).requires_grad_(true), DTypeError);
  Tensor y = from_vector<double>({1.0});
  EXPECT_THROW(y.backward(), AutogradError);  // nothing requires grad
}

TEST(Autograd, GradientFlowsThroughDtypeCasts) {
  Tensor x = uniform({3}, -1.0, 1.0);
  x.requires_grad_(true);
  sum(square(x.to(DType::Float64))).backward();
  EXPECT_EQ(x.grad().dtype(), DType::Float32);
  EXPECT_TRUE(all_close(x.grad(), mul(x.detach(), 2.0), 1e-6, 1e-7));
}

// Dimensions of size 0 go through forward and backward without dividing by them (a thread
// grain of kParallelGrain / len) or checking the layout of an empty output.
TEST(Autograd, EmptyDimensionsForwardAndBackward) {
  Tensor x = zeros({2, 0});
  x.requires_grad_(true);
  Tensor s = sum(softmax(x, 1)) + sum(log_softmax(x, 1));
  s.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().shape(), (Shape{2, 0}));

  Generator g(3);
  Tensor a = uniform({3, 4}, -1.0, 1.0, g), w = zeros({0, 4});
  a.requires_grad_(true);
  w.requires_grad_(true);
  Tensor y = linear(a, w);
  EXPECT_EQ(y.shape(), (Shape{3, 0}));
  sum(y).backward();
  EXPECT_EQ(w.grad().shape(), (Shape{0, 4}));
  // no gradient flows from an empty output: a's gradient is all zeros
  for (double v : a.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
  // no input features: the output is the bias on every row (as in PyTorch)
  Tensor bias = uniform({2}, -1.0, 1.0, g);
  Tensor z = linear(zeros({3, 0}), zeros({2, 0}), bias);
  EXPECT_EQ(z.shape(), (Shape{3, 2}));
  EXPECT_TRUE(all_close(z, bias.unsqueeze(0).expand({3, 2}), 0.0, 0.0));
  // a negative size is no size
  EXPECT_THROW(ones({1, 3}).expand({-2, 3}), ShapeError);
}

// Batches of size 0 against a broadcast batch of 1, and splitting a dim of size 0, as in
// PyTorch (from a review: matmul threw "reshape ... [1, 2, 4]", chunk / split returned no pieces
// and chunk(gates, 4)[k] read past the end); ops on an undefined tensor are errors, not crashes.
TEST(Autograd, EmptyBatchesBroadcastAndSplitIntoEmptyPieces) {
  Generator g(11);
  Tensor w = uniform({3, 4}, -1.0, 1.0, g);
  w.requires_grad_(true);
  Tensor y = matmul(zeros({0, 2, 3}), w);
  EXPECT_EQ(y.shape(), (Shape{0, 2, 4}));
  sum(y).backward();
  ASSERT_TRUE(w.grad().defined());
  for (double v : w.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(matmul(uniform({2, 3}, -1.0, 1.0, g), zeros({0, 3, 4})).shape(), (Shape{0, 2, 4}));
  EXPECT_EQ(matmul(zeros({1, 0, 4, 4}), uniform({4}, -1.0, 1.0, g)).shape(), (Shape{1, 0, 4}));
  // a broadcast batch of 1 against 3 still broadcasts
  Tensor a = uniform({1, 2, 3}, -1.0, 1.0, g), b = uniform({3, 3, 4}, -1.0, 1.0, g);
  Tensor ab = matmul(a, b);
  ASSERT_EQ(ab.shape(), (Shape{3, 2, 4}));
  for (int64_t i = 0; i < 3; ++i) EXPECT_TRUE(all_close(ab.select(0, i), matmul(a.select(0, 0), b.select(0, i)), 1e-6, 1e-6));

  const std::vector<Tensor> c = chunk(zeros({0, 3}), 3, 0);
  ASSERT_EQ(c.size(), 3u);
  for (const Tensor& t : c) EXPECT_EQ(t.shape(), (Shape{0, 3}));
  const std::vector<Tensor> sp = split(zeros({0, 3}), 2, 0);
  ASSERT_EQ(sp.size(), 1u);
  EXPECT_EQ(sp[0].shape(), (Shape{0, 3}));
  EXPECT_EQ(chunk(zeros({5, 3}), 3, 0).size(), 3u);  // 2, 2, 1
  EXPECT_EQ(chunk(zeros({5, 3}), 3, 0)[2].size(0), 1);

  EXPECT_THROW(stack({Tensor()}, 0), ValueError);
  EXPECT_THROW(chunk(Tensor(), 2, 0), ValueError);
  EXPECT_THROW(Tensor().flatten(), ValueError);
  EXPECT_THROW(Tensor().t(), ValueError);
}

// matmul where only one operand needs a gradient (data @ weight, weight^T @ data): its node
// saves only the operand the other's gradient needs; it read the missing one's shape and
// crashed. The gradients equal those taken with both operands requiring one.
TEST(Autograd, MatmulWithOneOperandNeedingAGradient) {
  Generator g(43);
  const Options o{.dtype = DType::Float64};
  struct Case { Shape a, b; };
  for (const Case& c : {Case{{3, 7}, {7, 5}}, Case{{4, 3, 7}, {7, 5}}, Case{{4, 3, 7}, {1, 7, 5}}, Case{{3, 7}, {4, 7, 5}},
                        Case{{7}, {7, 5}}, Case{{3, 7}, {7}}}) {
    const Tensor a0 = uniform(c.a, -1.0, 1.0, g, o), b0 = uniform(c.b, -1.0, 1.0, g, o);
    const Tensor r = uniform(matmul(a0, b0).shape(), -1.0, 1.0, g, o);
    Tensor a_both = a0.detach().requires_grad_(true), b_both = b0.detach().requires_grad_(true);
    sum(matmul(a_both, b_both) * r).backward();
    Tensor a_only = a0.detach().requires_grad_(true);
    sum(matmul(a_only, b0) * r).backward();
    Tensor b_only = b0.detach().requires_grad_(true);
    sum(matmul(a0, b_only) * r).backward();
    const std::string what = fmt::format("{} @ {}", c.a, c.b);
    EXPECT_TRUE(all_close(a_only.grad(), a_both.grad(), 1e-12, 1e-12)) << what;
    EXPECT_TRUE(all_close(b_only.grad(), b_both.grad(), 1e-12, 1e-12)) << what;
  }
}

// An embedding whose weight is a leaf adds its rows straight into weight.grad (one call per
// decoder step would otherwise make a dense (V, D) gradient each); the result equals the dense
// path's (the same graph through a non-leaf weight), with repeated rows, another dense use of
// the weight, accumulation over two backward calls, and a .grad the fast path cannot take.
TEST(Autograd, EmbeddingGradientsGoStraightIntoALeafWeight) {
  Generator g(41);
  const int64_t V = 50, D = 7, B = 6, T = 5;
  const Tensor w0 = uniform({V, D}, -1.0, 1.0, g, {.dtype = DType::Float64});
  std::vector<Tensor> idx, r;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int64_t> ids;
    for (int64_t b = 0; b < B; ++b) ids.push_back((b * 7 + t * 3) % 11);  // repeats within and across calls
    idx.push_back(from_vector(ids, Shape{B}));
    r.push_back(uniform({B, D}, -1.0, 1.0, g, {.dtype = DType::Float64}));
  }
  const Tensor x = uniform({3, D}, -1.0, 1.0, g, {.dtype = DType::Float64});
  const Tensor rx = uniform({3, V}, -1.0, 1.0, g, {.dtype = DType::Float64});
  auto loss = [&](const Tensor& w) {
    Tensor total = sum(matmul(x, w.transpose(0, 1)) * rx);  // a dense use of the same weight
    for (int64_t t = 0; t < T; ++t) total = total + sum(embedding(w, idx[static_cast<size_t>(t)]) * r[static_cast<size_t>(t)]);
    return total;
  };
  Tensor leaf = w0.detach().requires_grad_(true);
  loss(leaf).backward();
  Tensor via = w0.detach().requires_grad_(true);
  loss(via * 1.0).backward();  // the embedding's weight is not a leaf: dense gradients
  EXPECT_TRUE(all_close(leaf.grad(), via.grad(), 1e-12, 1e-12));
  // a second backward adds to the .grad
  loss(leaf).backward();
  EXPECT_TRUE(all_close(leaf.grad(), via.grad() * 2.0, 1e-12, 1e-12));
  // a non-contiguous .grad: the dense path adds into it
  Tensor odd = w0.detach().requires_grad_(true);
  odd.set_grad(via.grad().transpose(0, 1).contiguous().transpose(0, 1));
  ASSERT_FALSE(odd.grad().is_contiguous());
  loss(odd).backward();
  EXPECT_TRUE(all_close(odd.grad(), via.grad() * 2.0, 1e-12, 1e-12));
}

// Linear and LSTM-layer weight gradients go straight into a leaf's .grad (a GEMM adding into it)
// where the engine would otherwise sum one dense gradient per call: the same values as through a
// non-leaf weight (the engine's sums), for a weight used at every step and also elsewhere.
TEST(Autograd, LinearAndLstmWeightGradientsGoStraightIntoALeafGrad) {
  Generator g(43);
  const Options f64{.dtype = DType::Float64};
  const int64_t B = 4, I = 5, H = 3, O = 6, T = 4;
  const Tensor w0 = uniform({O, I}, -1.0, 1.0, g, f64), b0 = uniform({O}, -1.0, 1.0, g, f64);
  const Tensor wih0 = uniform({4 * H, I}, -1.0, 1.0, g, f64), whh0 = uniform({4 * H, H}, -1.0, 1.0, g, f64);
  const Tensor bih = uniform({4 * H}, -1.0, 1.0, g, f64), bhh = uniform({4 * H}, -1.0, 1.0, g, f64);
  std::vector<Tensor> xs, rs;
  for (int64_t t = 0; t < T; ++t) {
    xs.push_back(uniform({B, 1, I}, -1.0, 1.0, g, f64));
    rs.push_back(uniform({B, O}, -1.0, 1.0, g, f64));
  }
  const Tensor ones_len = from_vector(std::vector<int64_t>(static_cast<size_t>(B), 1), Shape{B});
  const Tensor h0 = uniform({B, H}, -1.0, 1.0, g, f64), c0 = uniform({B, H}, -1.0, 1.0, g, f64);
  const Tensor k = uniform({O, I}, -1.0, 1.0, g, f64);
  // a decoder-like loop: one LSTM step and one linear per step, plus a dense second use of W
  auto loss = [&](const Tensor& w, const Tensor& wih, const Tensor& whh) {
    Tensor total = sum(w * w * k), h = h0, c = c0;
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>(t);
      LstmLayerOutput o = lstm_layer(xs[i], ones_len, h, c, wih, whh, bih, bhh);
      h = o.h_n;
      c = o.c_n;
      total = total + sum(linear(xs[i].squeeze(1), w, b0) * rs[i]) + sum(o.output * o.output);
    }
    return total;
  };
  auto leaves = [&] {
    return std::array<Tensor, 3>{w0.detach().requires_grad_(true), wih0.detach().requires_grad_(true),
                                 whh0.detach().requires_grad_(true)};
  };
  auto leaf = leaves(), via = leaves();
  loss(leaf[0], leaf[1], leaf[2]).backward();
  loss(via[0] * 1.0, via[1] * 1.0, via[2] * 1.0).backward();  // not leaves: the engine sums
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(leaf[i].grad().defined()) << i;
    EXPECT_TRUE(all_close(leaf[i].grad(), via[i].grad(), 1e-12, 1e-12)) << i;
  }
  // a second backward adds to the .grad
  loss(leaf[0], leaf[1], leaf[2]).backward();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(all_close(leaf[i].grad(), via[i].grad() * 2.0, 1e-12, 1e-12)) << i;
  // non-contiguous .grads: the returned gradients are added into them
  auto odd = leaves();
  for (int i = 0; i < 3; ++i) {
    odd[i].set_grad(via[i].grad().transpose(0, 1).contiguous().transpose(0, 1));
    ASSERT_FALSE(odd[i].grad().is_contiguous());
  }
  loss(odd[0], odd[1], odd[2]).backward();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(all_close(odd[i].grad(), via[i].grad() * 2.0, 1e-12, 1e-12)) << i;
}

// ---------------------------------------------------------------- corner cases from a review

TEST(Autograd, ReductionsTakeAGradientThatIsASliceOfALargerOne) {
  // cat / stack hand each input a slice (with an offset) of their gradient: sum, mean and max
  // read it from the slice, not from the start of the storage.
  Tensor a = leaf({0.5, -1.0, 2.0}), b = leaf({1.5, 0.25, -3.0});
  const Tensor w = from_vector(std::vector<double>{1, 2, 3, 4}, Shape{4});
  sum(cat({sum(a.view({1, 3}), {1}), mean(b.view({1, 3}), {1}), max(a.view({1, 3}), 1).values,
           max(b.view({1, 3}), 1).values},
          0) *
      w)
      .backward();
  // d/da: 1 from the sum, + 3 at a's maximum (index 2); d/db: 2/3 from the mean, + 4 at index 0
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1.0, 1.0, 4.0}));
  const std::vector<double> gb = b.grad().to_vector<double>();
  EXPECT_NEAR(gb[0], 2.0 / 3 + 4.0, 1e-12);
  EXPECT_NEAR(gb[1], 2.0 / 3, 1e-12);
  EXPECT_NEAR(gb[2], 2.0 / 3, 1e-12);
  Tensor c = leaf({2.0, 4.0});
  sum(stack({sum(c), mean(c)}, 0) * from_vector(std::vector<double>{1, 10}, Shape{2})).backward();
  EXPECT_EQ(c.grad().to_vector<double>(), (std::vector<double>{6.0, 6.0}));  // 1 + 10 / 2
}

TEST(Autograd, ScalarsHaveNoDimToIndexButReduceOverDimZero) {
  const Tensor s = from_vector(std::vector<double>{0.75}, Shape{}).requires_grad_(true);
  EXPECT_THROW(s.size(0), IndexError);
  EXPECT_THROW(s.stride(-1), IndexError);
  EXPECT_THROW(cat({s, s}, 0), IndexError);
  EXPECT_THROW(s.narrow(0, 0, 1), IndexError);
  EXPECT_THROW(split(s, 1, 0), IndexError);
  Tensor m = mean(s, {-1});  // PyTorch: the scalar itself, gradient 1
  EXPECT_EQ(m.dim(), 0);
  EXPECT_DOUBLE_EQ(m.item<double>(), 0.75);
  sum(s, {0}).backward();
  m.backward();
  EXPECT_DOUBLE_EQ(s.grad().item<double>(), 2.0);
}

TEST(Autograd, PowerZeroHasGradientZeroAtZero) {
  Tensor x = leaf({0.0, 1.5, -2.0});
  sum(pow(x, 0.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0.0, 0.0, 0.0}));
}

TEST(Autograd, InPlaceOpsReadOverlappingOperandsFromACopyAndRefuseForeignDtypes) {
  // An operand that is another view of the target's memory is read as it was before the write
  // (it was refused, and so were interleaved views that share no element: x[:, 0] += x[:, 1],
  // which PyTorch computes).
  Generator g(41);
  const Tensor t0 = uniform({3, 3}, -1.0, 1.0, g, {.dtype = DType::Float64});
  auto expect_as_if_copied = [&](auto op_on, const char* what) {
    Tensor t = t0.clone(), reference = t0.clone();
    op_on(t, t);                          // operand a view of the target
    op_on(reference, t0.clone());         // the same op with the operand read from elsewhere
    EXPECT_EQ(t.to_vector<double>(), reference.to_vector<double>()) << what;
  };
  expect_as_if_copied([](Tensor& dst, const Tensor& src) { dst.add_(src.t()); }, "add_(t.t())");
  expect_as_if_copied([](Tensor& dst, const Tensor& src) { dst.add_(src.select(0, 0), 2.0); }, "add_(row 0, 2)");
  expect_as_if_copied([](Tensor& dst, const Tensor& src) { dst.mul_(src.t()); }, "mul_(t.t())");
  expect_as_if_copied([](Tensor& dst, const Tensor& src) { dst.copy_(src.t()); }, "copy_(t.t())");
  expect_as_if_copied([](Tensor& dst, const Tensor& src) { dst.narrow(0, 1, 2).copy_(src.narrow(0, 0, 2)); },
                      "copy_ of overlapping row ranges");
  expect_as_if_copied([](Tensor& dst, const Tensor& src) { dst.select(1, 0).add_(src.select(1, 1)); },
                      "interleaved columns");
  Tensor t = t0.clone();
  t.add_(t);  // the same view: elementwise, read before written
  EXPECT_EQ(t.to_vector<double>(), mul(t0, 2.0).to_vector<double>());
  const Tensor before = t.clone();
  t.select(0, 2).add_(t.select(0, 0));  // disjoint views of one storage
  EXPECT_EQ(t.select(0, 2).to_vector<double>(), add(before.select(0, 2), before.select(0, 0)).to_vector<double>());
  EXPECT_EQ(t.narrow(0, 0, 2).to_vector<double>(), before.narrow(0, 0, 2).to_vector<double>());
  t = from_vector(std::vector<double>{1, 2, 3, 4}, Shape{2, 2});
  Tensor row = from_vector(std::vector<double>{1, 2}, Shape{1, 2});
  EXPECT_THROW(row.expand({3, 2}).add_(ones({3, 2}, {.dtype = DType::Float64})), ValueError);
  // a scalar multiply of an expanded view applied once per alias: [2] became [16]
  Tensor base = from_vector(std::vector<double>{2}, Shape{1});
  EXPECT_THROW(base.expand({3}).mul_(2.0), ValueError);
  EXPECT_EQ(base.item<double>(), 2.0);
  EXPECT_THROW(t.mul_(ones({2, 2})), DTypeError);  // float32 into float64: read as the wrong type
  EXPECT_THROW(t.copy_(ones({1, 4}, {.dtype = DType::Float64})), ShapeError);
  EXPECT_THROW(from_vector(std::vector<double>{1, 2, 3}, Shape{3, 1}).add_(ones({1, 4}, {.dtype = DType::Float64})),
               ShapeError);
  // A .grad set to an expanded view accumulates out of place, with the right values.
  Tensor x = leaf({1.0, 2.0, 3.0});
  x.set_grad(from_vector(std::vector<double>{1.0}, Shape{1}).expand({3}));
  sum(x * from_vector(std::vector<double>{1, 2, 3}, Shape{3})).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2.0, 3.0, 4.0}));
}

TEST(Autograd, EmbeddingOfZeroWidthRowsHasAGradient) {
  Tensor w = zeros({5, 0}, {.dtype = DType::Float64}).requires_grad_(true);
  const Tensor idx = from_vector(std::vector<int64_t>{1, 3, 1}, Shape{3});
  Tensor y = embedding(w, idx);
  EXPECT_EQ(y.shape(), (Shape{3, 0}));
  sum(y).backward();
  EXPECT_EQ(w.grad().shape(), (Shape{5, 0}));
}

TEST(Autograd, ALongChainIsFreedWithoutRecursion) {
  // 300k nodes: freeing them one destructor inside the next overflowed the stack (at ~200k).
  Tensor x = leaf({1.0});
  Tensor y = x;
  for (int i = 0; i < 300000; ++i) y = y * 1.0;
  Tensor z = x;
  for (int i = 0; i < 300000; ++i) z = z * x;  // saved inputs hold the chain too
  y = Tensor();
  z = Tensor();
  SUCCEED();
}

TEST(Autograd, AChainOfNodesUsingOneInputTwiceIsFreedWithoutRecursion) {
  // a + a: both edges of a node hold the same input, so neither saw it as only-held and the
  // chain was freed recursively again (a stack overflow at ~100k steps; PyTorch frees it).
  Tensor x = leaf({1e-30});
  Tensor a = x * 1.0;
  for (int i = 0; i < 250000; ++i) a = a + a;
  a = Tensor();
  Tensor b = x * 1.0;
  for (int i = 0; i < 250000; ++i) b = mul(b, b);
  b.backward();  // through the whole chain, then freed
  b = Tensor();
  EXPECT_TRUE(x.grad().defined());
}

TEST(Autograd, InPlaceOpsRefuseAnOperandThatRequiresGrad) {
  // Its gradient was lost silently: b.copy_(x); sum(b * x) gave x.grad = x, PyTorch 2x.
  Tensor x = leaf({1.0, 2.0, 3.0});
  Tensor b = zeros({3}, {.dtype = DType::Float64});
  expect_throw_with<AutogradError>([&] { b.copy_(x); }, {"copy_", "requires grad", "detach()"});
  expect_throw_with<AutogradError>([&] { b.add_(x); }, {"add_", "requires grad"});
  expect_throw_with<AutogradError>([&] { b.narrow(0, 0, 2).mul_(x.narrow(0, 1, 2)); }, {"mul_", "requires grad"});
  b.copy_(x.detach());  // no gradient wanted: fine
  {
    NoGradGuard g;
    b.add_(x);  // outside autograd: fine
  }
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{2.0, 4.0, 6.0}));
}

TEST(Autograd, MaxOverAllElementsSharesTheGradientAmongTies) {
  // as PyTorch's x.max(): [1, 3, 3, 2] -> [0, 0.5, 0.5, 0] (it gave [0, 1, 0, 0])
  Tensor x = leaf({1.0, 3.0, 3.0, 2.0});
  Tensor m = max(x);
  EXPECT_EQ(m.item<double>(), 3.0);
  (m * 4.0).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0.0, 2.0, 2.0, 0.0}));
  Tensor y = leaf({1.0, NAN, 3.0});  // NaN is the maximum: it gets the gradient
  max(y).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{0.0, 1.0, 0.0}));
}

TEST(Autograd, MaximumAndReluGradientsAtTiesAndNaNAsPyTorch) {
  // maximum: a tie splits the gradient (it all went to a); with a NaN on either side both get it
  // (one side did); relu passes the gradient at NaN (it gave 0). Random values around the ties.
  Generator g(61);
  const std::vector<double> r = uniform({4}, 0.5, 2.0, g, {.dtype = DType::Float64}).to_vector<double>();
  Tensor a = leaf({r[0], r[1], NAN, r[2], NAN}), b = leaf({r[0], r[1] + 1.0, r[3], NAN, NAN});
  sum(mul(maximum(a, b), 3.0)).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1.5, 0.0, 3.0, 3.0, 3.0}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{1.5, 3.0, 3.0, 3.0, 3.0}));
  Tensor x = leaf({NAN, -r[0], 0.0, r[1]});
  sum(relu(x)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0, 0.0, 0.0, 1.0}));
}

TEST(Autograd, BackwardsInTwoThreadsThroughASharedLeafAddUp) {
  // one backward at a time: two threads' passes through one leaf corrupted its .grad and the
  // nodes' bookkeeping (crashes, "internal error"); PyTorch locks the accumulation
  Tensor w = leaf({1.0, -2.0, 0.5});
  const Tensor x = from_vector<double>({1.0, 2.0, 3.0}, Shape{3});
  constexpr int kEach = 400;
  auto work = [&] {
    for (int i = 0; i < kEach; ++i) sum(w * x + x + w).backward();
  };
  std::thread t1(work), t2(work);
  t1.join();
  t2.join();
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{2.0 * kEach * 2, 3.0 * kEach * 2, 4.0 * kEach * 2}));
}

TEST(Autograd, AViewMadeUnderNoGradIsNotWrittenInPlaceInGradMode) {
  // it changed the leaf behind autograd's back (x became [2, 3, 3]); PyTorch refuses it too
  Tensor x = leaf({1.0, 2.0, 3.0});
  Tensor v, w;
  {
    NoGradGuard g;
    v = x.narrow(0, 0, 2);
    w = v.transpose(0, 0);  // a view of that view
  }
  expect_throw_with<AutogradError>([&] { v.add_(ones({2}, {.dtype = DType::Float64})); }, {"add_", "NoGradGuard"});
  expect_throw_with<AutogradError>([&] { w.fill_(0.0); }, {"fill_", "NoGradGuard"});
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{1.0, 2.0, 3.0}));
  {
    NoGradGuard g;
    v.add_(ones({2}, {.dtype = DType::Float64}));  // as an optimizer does: fine
  }
  Tensor d = x.detach().narrow(0, 1, 2);
  d.mul_(2.0);  // a view of a detached tensor: fine, as in PyTorch
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{2.0, 6.0, 6.0}));
}

TEST(Autograd, AViewMadeBeforeItsBaseRequiredGradIsNotWrittenInPlaceInGradMode) {
  // (it changed the leaf behind autograd's back; PyTorch: "a view of a leaf Variable that
  // requires grad is being used in an in-place operation")
  Tensor b = from_vector<double>({1.0, 2.0, 3.0}, Shape{3});
  Tensor v = b.narrow(0, 0, 2), w = v.transpose(0, 0);  // a view, and a view of that view
  b.requires_grad_(true);
  expect_throw_with<AutogradError>([&] { v.fill_(5.0); }, {"fill_", "view", "requires grad"});
  expect_throw_with<AutogradError>([&] { w.mul_(2.0); }, {"mul_", "view", "requires grad"});
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{1.0, 2.0, 3.0}));
  {
    NoGradGuard g;
    v.fill_(5.0);  // as an optimizer would: fine
  }
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{5.0, 5.0, 3.0}));
  b.requires_grad_(false);
  w.mul_(2.0);  // its base no longer requires grad
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{10.0, 10.0, 3.0}));
  Tensor d = b.detach();
  b.requires_grad_(true);
  d.narrow(0, 2, 1).fill_(1.0);  // a view of a detached tensor: fine, as in PyTorch
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{10.0, 10.0, 1.0}));
}

TEST(Autograd, GradientsOfAnotherDtypeAreRefusedOrCastAsInPyTorch) {
  Tensor x = leaf({1.0, 2.0, 3.0});
  expect_throw_with<DTypeError>([&] { x.set_grad(zeros({3}, {.dtype = DType::Float32})); }, {"set_grad", "float32"});
  Tensor y = x * x;
  y.backward(ones({3}, {.dtype = DType::Float32}));  // the seed is cast, as PyTorch does
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2.0, 4.0, 6.0}));
}

// exp(x * w) whose backward recomputes the forward with grad on and runs a backward of its own,
// as activation checkpointing does; the nested pass adds into w.grad itself, like the outer one.
struct RecomputedExpBackward final : Node {
  Tensor x, w;  // x detached; w the shared leaf
  std::string_view name() const override { return "RecomputedExpBackward"; }
  TensorList apply(TensorList& grads) override {
    Tensor xi = x.detach().requires_grad_();
    {
      EnableGradGuard on;
      exp(xi * w).backward(grads[0]);
    }
    TensorList out(1);
    out[0] = xi.grad();
    return out;
  }
};
Tensor recomputed_exp(const Tensor& x, const Tensor& w) {
  Tensor out;
  {
    NoGradGuard g;
    out = exp(x * w);
  }
  auto node = make_node<RecomputedExpBackward>({&x});
  node->x = x.detach();
  node->w = w;
  set_history(out, node);
  return out;
}

TEST(Autograd, ABackwardInsideANodesBackwardKeepsTheOuterPass) {
  // The engine's lists were thread_local: the nested pass emptied the outer one's queue (x got
  // no gradient at all), and it reset the shared weight's accumulator, which the outer pass had
  // counted (w's outer gradient was lost). PyTorch: x.grad = w (1 + e^xw), w.grad = x (1 + e^xw).
  Generator g(3);
  const Tensor x0 = uniform({4}, -1.0, 1.0, g, {.dtype = DType::Float64});
  const Tensor w0 = uniform({4}, -1.0, 1.0, g, {.dtype = DType::Float64});
  for (int order = 0; order < 2; ++order) {  // the nested node queued before or after the product
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
    const Tensor direct = x * w, recomputed = recomputed_exp(x, w);
    sum(order ? direct + recomputed : recomputed + direct).backward();
    Tensor xr = x0.detach().requires_grad_(), wr = w0.detach().requires_grad_();
    sum(xr * wr + exp(xr * wr)).backward();
    ASSERT_TRUE(x.grad().defined() && w.grad().defined()) << "order " << order;
    EXPECT_TRUE(all_close(x.grad(), xr.grad(), 1e-14, 1e-14)) << "order " << order;
    EXPECT_TRUE(all_close(w.grad(), wr.grad(), 1e-14, 1e-14)) << "order " << order;
  }
}

TEST(Autograd, ALeafThatStopsRequiringGradAfterTheForwardGetsNoGradient) {
  // as PyTorch: through the engine (mul), straight into .grad (linear's GEMM, embedding's rows)
  Generator g(5);
  const Tensor x = uniform({3, 2}, -1.0, 1.0, g, {.dtype = DType::Float64});
  const Tensor ids = from_vector(std::vector<int64_t>{1, 0, 1}, Shape{3});
  for (int path = 0; path < 3; ++path) {
    for (bool keep : {true, false}) {
      Tensor w = uniform({2, 2}, -1.0, 1.0, g, {.dtype = DType::Float64}).requires_grad_();
      const Tensor l = path == 0 ? sum(w * 3.0) : path == 1 ? sum(linear(x, w)) : sum(embedding(w, ids));
      if (!keep) w.requires_grad_(false);
      l.backward();
      EXPECT_EQ(w.grad().defined(), keep) << "path " << path;
    }
  }
}

TEST(Autograd, GradientsWrittenStraightIntoAGradBumpItsVersion) {
  // a graph that saved the .grad must see it change: a GEMM with beta 1 (linear) and the rows
  // added by an embedding left the version as it was, and the later backward used the new values
  // (PyTorch: "modified by an inplace operation", as for the engine's own add_)
  Generator g(7);
  const Tensor x = uniform({3, 2}, -1.0, 1.0, g, {.dtype = DType::Float64});
  const Tensor ids = from_vector(std::vector<int64_t>{1, 1}, Shape{2});
  for (int path = 0; path < 3; ++path) {
    Tensor w = uniform({2, 2}, -1.0, 1.0, g, {.dtype = DType::Float64}).requires_grad_();
    auto forward = [&] { return path == 0 ? sum(w * x.narrow(0, 0, 2)) : path == 1 ? sum(linear(x, w)) : sum(embedding(w, ids)); };
    forward().backward();
    const Tensor grad = w.grad();
    Tensor v = ones({2, 2}, {.dtype = DType::Float64}).requires_grad_();
    Tensor uses_grad = sum(grad * v);  // saves the .grad for v's gradient
    forward().backward();             // adds into that same .grad
    expect_throw_with<AutogradError>([&] { uses_grad.backward(); }, {"in-place"});
  }
}

}  // namespace
}  // namespace attn::test
