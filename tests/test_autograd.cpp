// The autograd engine: graph shapes (diamond, reuse), accumulation, no-grad scopes, freeing the
// graph, and the errors a misuse must raise.
#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace attn::test
