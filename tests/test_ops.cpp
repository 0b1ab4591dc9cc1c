// Every op of the table in op_cases.cpp: forward against the double reference (float32 and
// float64, contiguous and strided inputs, several random shapes), backward against central
// finite differences in float64, and each input's gradient taken alone against all at once.
#include <gtest/gtest.h>

#include <random>

#include "core/ops/fused.h"
#include "tests/op_cases.h"

namespace attn::test {
namespace {

std::string case_name(const ::testing::TestParamInfo<size_t>& info) { return op_cases()[info.param].name; }

std::vector<size_t> all_cases() {
  std::vector<size_t> v(op_cases().size());
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<size_t> differentiable_cases() {
  std::vector<size_t> v;
  for (size_t i = 0; i < op_cases().size(); ++i)
    if (!op_cases()[i].wrt.empty()) v.push_back(i);
  return v;
}

std::vector<size_t> multi_input_cases() {
  std::vector<size_t> v;
  for (size_t i = 0; i < op_cases().size(); ++i)
    if (op_cases()[i].wrt.size() >= 2) v.push_back(i);
  return v;
}

class OpForward : public ::testing::TestWithParam<size_t> {};
class OpBackward : public ::testing::TestWithParam<size_t> {};
class OpSingleInputGrad : public ::testing::TestWithParam<size_t> {};

TEST_P(OpForward, MatchesDoubleReference) {
  const OpCase& c = op_cases()[GetParam()];
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (Layout layout : {Layout::Contiguous, Layout::Strided}) {
      for (uint64_t trial = 0; trial < 4; ++trial) {
        const uint64_t seed = 1000 * GetParam() + 10 * trial + (layout == Layout::Strided);
        std::mt19937 rng(static_cast<uint32_t>(seed));
        Generator gen(seed);
        Ctx ctx{gen, rng, layout, dtype};
        Args a = c.make(ctx);
        Tensor out = c.fn(a);
        std::vector<Ref> refs;
        for (const Tensor& x : a.x) refs.push_back(Ref::of(x));
        Ref expected = c.ref(refs, a.p);
        const bool f64 = dtype == DType::Float64;
        EXPECT_TRUE(all_close(out, expected, f64 ? 1e-11 : c.rtol, f64 ? 1e-12 : c.atol))
            << c.name << ", " << layout_name(layout) << ", " << dtype_name(dtype) << ", trial " << trial;
      }
    }
  }
}

TEST_P(OpBackward, MatchesFiniteDifferences) {
  const OpCase& c = op_cases()[GetParam()];
  for (Layout layout : {Layout::Contiguous, Layout::Strided}) {
    for (uint64_t trial = 0; trial < 2; ++trial) {
      const uint64_t seed = 5000 + 1000 * GetParam() + 10 * trial + (layout == Layout::Strided);
      std::mt19937 rng(static_cast<uint32_t>(seed));
      Generator gen(seed);
      Ctx ctx{gen, rng, layout, DType::Float64};
      Args a = c.make(ctx);
      auto fn = [&](const std::vector<Tensor>& inputs) {
        Args b = a;
        b.x = inputs;
        return c.fn(b);
      };
      EXPECT_TRUE(gradcheck(fn, a.x, c.wrt, seed, c.fd_eps, 1e-7, c.fd_rtol)) << c.name << ", " << layout_name(layout) << ", trial " << trial;
    }
  }
}

// Each input's gradient alone (the others as constants) equals the one taken with every input
// requiring a gradient: nodes save only what the needed gradients use, and matmul's crashed
// when only one operand needed one.
TEST_P(OpSingleInputGrad, EachInputAloneGetsTheSameGradient) {
  const OpCase& c = op_cases()[GetParam()];
  const uint64_t seed = 9000 + GetParam();
  std::mt19937 rng(static_cast<uint32_t>(seed));
  Generator gen(seed);
  Ctx ctx{gen, rng, Layout::Strided, DType::Float64};
  const Args a = c.make(ctx);
  auto grads_of = [&](const std::vector<int>& which, const Tensor& R) {
    Args b = a;
    for (int i : which) b.x[static_cast<size_t>(i)] = a.x[static_cast<size_t>(i)].detach().requires_grad_(true);
    Tensor out = c.fn(b);
    sum(out * R).backward();
    std::vector<Tensor> g;
    for (int i : which) g.push_back(b.x[static_cast<size_t>(i)].grad());
    return g;
  };
  Tensor R;
  {
    NoGradGuard ng;
    R = uniform(c.fn(a).shape(), -1.0, 1.0, gen, {.dtype = DType::Float64});
  }
  const std::vector<Tensor> all = grads_of(c.wrt, R);
  for (size_t k = 0; k < c.wrt.size(); ++k) {
    const std::vector<Tensor> one = grads_of({c.wrt[k]}, R);
    ASSERT_TRUE(one[0].defined()) << c.name << " input " << c.wrt[k];
    EXPECT_TRUE(all_close(one[0], all[k], 1e-12, 1e-12)) << c.name << " input " << c.wrt[k];
  }
}

// max along a contiguous row takes a vectorized path (the max, then its first position in
// blocks of 64): rows shorter and longer than a block, ties, -inf, and NaN (which wins, at its
// first position, as in PyTorch), against a plain scan; the strided path gives the same.
TEST(OpMax, ContiguousRowsGiveTheFirstLargestOrTheFirstNaN) {
  std::mt19937 rng(77);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (int64_t n : {1, 2, 63, 64, 65, 130, 1000}) {
      for (int kind = 0; kind < 5; ++kind) {  // 0 random, 1 tie, 2 NaN, 3 two NaNs, 4 all -inf
        std::uniform_real_distribution<double> u(-5.0, 5.0);
        std::vector<double> row(static_cast<size_t>(n));
        for (double& x : row) x = u(rng);
        std::uniform_int_distribution<int64_t> pos(0, n - 1);
        const int64_t a = pos(rng), b = pos(rng);
        if (kind == 1) row[static_cast<size_t>(a)] = row[static_cast<size_t>(b)] = 9.0;
        if (kind == 2) row[static_cast<size_t>(a)] = NAN;
        if (kind == 3) row[static_cast<size_t>(a)] = row[static_cast<size_t>(b)] = NAN;
        if (kind == 4) std::fill(row.begin(), row.end(), -INFINITY);
        int64_t want = 0;
        for (int64_t j = 1; j < n; ++j) {
          const double best = row[static_cast<size_t>(want)], x = row[static_cast<size_t>(j)];
          if (std::isnan(best)) break;
          if (std::isnan(x) || x > best) want = j;
        }
        // two rows: the test row and a shifted copy, so the second starts mid-vector
        std::vector<double> two(row);
        two.insert(two.end(), row.begin(), row.end());
        const Tensor t = from_vector(two, Shape{2, n}).to(dtype);
        const std::string what = fmt::format("{} n={} kind={}", dtype, n, kind);
        const ValuesIndices got = max(t, 1);
        const ValuesIndices strided = max(t.transpose(0, 1).contiguous().transpose(0, 1), 1);
        for (int64_t r = 0; r < 2; ++r) {
          EXPECT_EQ(got.indices.to_vector<int64_t>()[static_cast<size_t>(r)], want) << what;
          EXPECT_EQ(strided.indices.to_vector<int64_t>()[static_cast<size_t>(r)], want) << what;
          const double v = got.values.to(DType::Float64).to_vector<double>()[static_cast<size_t>(r)];
          const double expect = static_cast<double>(dtype == DType::Float32 ? static_cast<float>(row[static_cast<size_t>(want)])
                                                                             : row[static_cast<size_t>(want)]);
          if (std::isnan(expect)) EXPECT_TRUE(std::isnan(v)) << what;
          else EXPECT_EQ(v, expect) << what;
        }
        if (kind != 4) {
          const double all = max(t).to(DType::Float64).item<double>();
          if (kind >= 2) EXPECT_TRUE(std::isnan(all)) << what;
          else EXPECT_EQ(all, t.to(DType::Float64).to_vector<double>()[static_cast<size_t>(want)]) << what;
        }
      }
    }
  }
}

// An int64 tensor and a scalar that is not an int64 (2.5, 1e19, NaN): comparisons are exact
// (the scalar used to be cast to the element type: lt(2, 2.5) was false), arithmetic is an
// error instead of a result cut to integers, and integer division is refused (7 / 0 was a
// SIGFPE that killed the process).
TEST(OpScalars, IntegerTensorsAgainstScalarsThatAreNotIntegers) {
  using B = std::vector<bool>;
  auto bools = [](const Tensor& t) {
    B out;
    for (int64_t v : t.to(DType::Int64).to_vector<int64_t>()) out.push_back(v != 0);
    return out;
  };
  const Tensor a = from_vector(std::vector<int64_t>{-2, 1, 2, 3}, Shape{4});
  EXPECT_EQ(bools(lt(a, 2.5)), (B{true, true, true, false}));
  EXPECT_EQ(bools(le(a, 2.5)), (B{true, true, true, false}));
  EXPECT_EQ(bools(gt(a, 2.5)), (B{false, false, false, true}));
  EXPECT_EQ(bools(ge(a, 2.5)), (B{false, false, false, true}));
  EXPECT_EQ(bools(gt(a, -2.5)), (B{true, true, true, true}));
  EXPECT_EQ(bools(lt(a, -1.5)), (B{true, false, false, false}));
  EXPECT_EQ(bools(eq(a, 2.5)), (B{false, false, false, false}));
  EXPECT_EQ(bools(ne(a, 2.5)), (B{true, true, true, true}));
  EXPECT_EQ(bools(eq(a, 2.0)), (B{false, false, true, false}));  // an integer scalar: as before
  EXPECT_EQ(bools(lt(a, 1e19)), (B{true, true, true, true}));
  EXPECT_EQ(bools(ge(a, 1e19)), (B{false, false, false, false}));
  EXPECT_EQ(bools(gt(a, -1e19)), (B{true, true, true, true}));
  EXPECT_EQ(bools(eq(a, std::nan(""))), (B{false, false, false, false}));
  EXPECT_EQ(bools(ne(a, std::nan(""))), (B{true, true, true, true}));
  const Tensor extremes = from_vector(std::vector<int64_t>{INT64_MAX, INT64_MIN}, Shape{2});
  EXPECT_EQ(bools(lt(extremes, 9223372036854775808.0)), (B{true, true}));  // 2^63: above every int64
  EXPECT_EQ(bools(ge(extremes, -9223372036854775808.0)), (B{true, true}));
  EXPECT_THROW(mul(a, 0.5), DTypeError);
  EXPECT_THROW(add(a, 1e19), DTypeError);
  EXPECT_EQ(mul(a, 2.0).to_vector<int64_t>(), (std::vector<int64_t>{-4, 2, 4, 6}));
  Tensor c = a.clone();
  EXPECT_THROW(c.mul_(0.5), DTypeError);
  EXPECT_THROW(c.add_(a, 0.5), DTypeError);
  EXPECT_EQ(c.to_vector<int64_t>(), a.to_vector<int64_t>());  // nothing written
  EXPECT_THROW(div(a, from_vector(std::vector<int64_t>{1, 0, 1, 1}, Shape{4})), DTypeError);
}

TEST(OpScalars, MaximumAndReluPropagateNaNAsPyTorchDoes) {
  const double nan = std::nan("");
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = from_vector(std::vector<double>{nan, 1.0, 2.0}, Shape{3}).to(dtype);
    const Tensor y = from_vector(std::vector<double>{1.0, nan, 0.5}, Shape{3}).to(dtype);
    const std::vector<double> v = maximum(x, y).to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1])) << dtype_name(dtype);
    EXPECT_EQ(v[2], 2.0);
    EXPECT_TRUE(std::isnan(relu(x).to_vector<double>()[0])) << dtype_name(dtype);
  }
}

// Fill values the dtype cannot hold are refused, as in PyTorch (from a review: an int64
// masked_fill with inf, NaN or 1e20 wrote INT64_MIN, the C++ conversion being undefined).
TEST(OpScalars, FillValuesThatOverflowTheDtypeAreRefused) {
  const Tensor i = from_vector(std::vector<int64_t>{1, 2, 3}, Shape{3});
  const Tensor mask = from_vector(std::vector<bool>{true, false, true}, Shape{3});
  for (double bad : {double(INFINITY), -double(INFINITY), std::nan(""), 1e20, -1e19}) {
    EXPECT_THROW(masked_fill(i, mask, bad), ValueError) << bad;
    EXPECT_THROW(i.clone().masked_fill_(mask, bad), ValueError) << bad;
    EXPECT_THROW(full({2}, bad, {.dtype = DType::Int64}), ValueError) << bad;
    EXPECT_THROW(i.clone().fill_(bad), ValueError) << bad;
  }
  EXPECT_EQ(masked_fill(i, mask, 2.7).to_vector<int64_t>(), (std::vector<int64_t>{2, 2, 2}));  // truncated, as PyTorch
  EXPECT_EQ(masked_fill(i, mask, -9.2e18).to_vector<int64_t>()[0], int64_t{-9200000000000000000});
  const Tensor f = from_vector(std::vector<float>{1, 2, 3}, Shape{3});
  EXPECT_THROW(masked_fill(f, mask, 1e300), ValueError);
  EXPECT_TRUE(std::isinf(masked_fill(f, mask, -INFINITY).to_vector<double>()[0]));
  EXPECT_TRUE(std::isnan(masked_fill(f, mask, std::nan("")).to_vector<double>()[2]));
  EXPECT_EQ(masked_fill(f.to(DType::Float64), mask, 1e300).to_vector<double>()[0], 1e300);
}

// The mean's denominator counts the targets not equal to ignore_index exactly, also beyond 2^53
// (it compared in double, where 2^53 + 1 rounds to 2^53: one row too many).
TEST(OpScalars, MeanLossCountsIgnoredTargetsExactly) {
  const int64_t big = (int64_t{1} << 53) + 1;
  Generator g(4);
  const Tensor logits = uniform({2, 3}, -1.0, 1.0, g);
  const Tensor target = from_vector(std::vector<int64_t>{big, 0}, Shape{2});
  const double sum_loss = cross_entropy(logits, target, big, Reduction::Sum).item<double>();
  EXPECT_NEAR(cross_entropy(logits, target, big, Reduction::Mean).item<double>(), sum_loss, 1e-6);
  EXPECT_NEAR(softmax_nll(logits, target, big, 0.0, Reduction::Mean).item<double>(), sum_loss, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpForward, ::testing::ValuesIn(all_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpBackward, ::testing::ValuesIn(differentiable_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpSingleInputGrad, ::testing::ValuesIn(multi_input_cases()), case_name);

}  // namespace
namespace {

// log_softmax by float64 arithmetic on the float32 values: the reference.
std::vector<double> log_softmax_reference(const Tensor& x32) {
  const int64_t N = x32.size(0), V = x32.size(1);
  const std::vector<double> x = x32.to_vector<double>();
  std::vector<double> y(x.size());
  for (int64_t i = 0; i < N; ++i) {
    double m = -INFINITY, total = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, x[i * V + j]);
    for (int64_t j = 0; j < V; ++j) total += std::exp(x[i * V + j] - m);
    for (int64_t j = 0; j < V; ++j) y[i * V + j] = x[i * V + j] - m - std::log(total);
  }
  return y;
}

}  // namespace

TEST(Ops, LogSoftmaxKeepsItsPrecisionAtLargeLogits) {
  // x - lse with lse rounded to float lost half an ulp of the logits' magnitude: at 1e5 errors
  // of 4e-3 (PyTorch computes (x - max) - log(sum)); at 1e8 a pair of equal logits gave 0, not
  // -log 2. The fused softmax + NLL saved that lse for its backward: gradients off by 0.4%.
  Generator g(52);
  for (double offset : {1e5, -3e6, 1e8}) {
    const int64_t N = 7, V = 301;
    const Tensor x = add(uniform({N, V}, -4.0, 4.0, g), offset);
    const std::vector<double> want = log_softmax_reference(x);
    auto expect_close = [&](const Tensor& got, const char* what) {
      const std::vector<double> v = got.to_vector<double>();
      double worst = 0;
      for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, std::abs(v[i] - want[i]));
      EXPECT_LT(worst, 2e-6) << what << " at offset " << offset;
    };
    expect_close(log_softmax(x, 1), "log_softmax");
    expect_close(log_softmax(x.t().contiguous().t(), 1), "log_softmax of strided rows");
    // losses and d(logits) = softmax - onehot: the composed and the fused op
    std::vector<int64_t> tv;
    for (double u : uniform({N}, 0.0, static_cast<double>(V), g, {.dtype = DType::Float64}).to_vector<double>())
      tv.push_back(std::min<int64_t>(V - 1, static_cast<int64_t>(u)));
    const Tensor target = from_vector(tv, Shape{N});
    double want_loss = 0;
    for (int64_t i = 0; i < N; ++i) want_loss -= want[i * V + tv[i]];
    for (bool fused : {false, true}) {
      Tensor leaf_x = x.detach().requires_grad_(true);
      Tensor loss = fused ? softmax_nll(leaf_x, target, -100, 0.0, Reduction::Sum) : cross_entropy(leaf_x, target, -100, Reduction::Sum);
      EXPECT_NEAR(loss.item<double>(), want_loss, 2e-5 * std::abs(want_loss) + 1e-5) << fused << " " << offset;
      loss.backward();
      const std::vector<double> gx = leaf_x.grad().to_vector<double>();
      double worst = 0;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < V; ++j)
          worst = std::max(worst, std::abs(gx[i * V + j] - (std::exp(want[i * V + j]) - (j == tv[i] ? 1.0 : 0.0))));
      EXPECT_LT(worst, 1e-6) << (fused ? "softmax_nll" : "cross_entropy") << " gradient at offset " << offset;
    }
  }
}

TEST(Ops, Int64SumsAreExactBeyondDoublePrecision) {
  // Only the GPU test (against this CPU sum) had these values: a CPU sum through double lost
  // the ones and passed every test. Random values near 2^53, summed exactly in int64.
  std::mt19937_64 rng(77);
  std::vector<int64_t> v(100000);
  for (int64_t& e : v) e = (int64_t{1} << 53) / 100000 + static_cast<int64_t>(rng() % 1000);
  v[0] = (int64_t{1} << 53) + 1;
  const Tensor x = from_vector(v, Shape{100000});
  int64_t total = 0;  // about 2^54: exact in int64
  for (int64_t e : v) total += e;
  EXPECT_EQ(sum(x).item<int64_t>(), total);
  const Tensor m = x.reshape(Shape{100, 1000});
  std::vector<int64_t> rows(100, 0);
  for (size_t i = 0; i < v.size(); ++i) rows[i / 1000] += v[i];
  EXPECT_EQ(sum(m, {1}).to_vector<int64_t>(), rows);
  std::vector<int64_t> cols(1000, 0);
  for (size_t i = 0; i < v.size(); ++i) cols[i % 1000] += v[i];
  EXPECT_EQ(sum(m, {0}).to_vector<int64_t>(), cols);
}

TEST(Ops, DimsOfAZeroDimTensorAndArangeRangesAreChecked) {
  // transpose(5, 7), squeeze(5), flatten(3, 5) of a 0-d tensor returned it (PyTorch: dims 0 and
  // -1 only); arange(0, 10, -1) and arange(0, nan) returned an empty tensor (PyTorch: an error)
  const Tensor s = full({}, 3.0);
  EXPECT_THROW((void)s.transpose(5, 7), IndexError);
  EXPECT_THROW((void)s.squeeze(5), IndexError);
  EXPECT_THROW((void)s.flatten(3, 5), IndexError);
  EXPECT_EQ(s.transpose(0, -1).dim(), 0);
  EXPECT_EQ(s.squeeze(0).dim(), 0);
  EXPECT_EQ(s.flatten(0, -1).shape(), (Shape{1}));
  EXPECT_THROW((void)arange(0.0, 10.0, -1.0), ValueError);
  EXPECT_THROW((void)arange(0.0, NAN, 1.0), ValueError);
  EXPECT_THROW((void)arange(0.0, INFINITY, 1.0), ValueError);
  EXPECT_EQ(arange(5.0, 5.0, 1.0).numel(), 0);
  EXPECT_EQ(arange(3.0, 0.0, -1.0).to_vector<double>(), (std::vector<double>{3, 2, 1}));
}

}  // namespace attn::test
