// The CPU kernels' float exp / tanh / sigmoid (kernels/cpu/fast_math.h) against double-precision
// libm: error bounds over dense sweeps of the float line, symmetry, range, monotonicity and the
// special values (NaN, infinities, signed zeros, overflow and underflow). Each function runs in
// an `omp simd` loop, as in the kernels, so the vectorized code is the code tested.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/fast_math.h"

namespace attn::test {
namespace {

using cpu::bits_float;
using cpu::float_bits;

enum class Fn { Exp, Tanh, Sigmoid };

std::vector<float> eval(Fn fn, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  const float* xp = x.data();
  float* yp = y.data();
  const int64_t n = static_cast<int64_t>(x.size());
  switch (fn) {
    case Fn::Exp:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yp[i] = cpu::fast_exp(xp[i]);
      break;
    case Fn::Tanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yp[i] = cpu::fast_tanh(xp[i]);
      break;
    case Fn::Sigmoid:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yp[i] = cpu::fast_sigmoid(xp[i]);
      break;
  }
  return y;
}

// Every `step`-th float (by bit pattern) between lo and hi (lo, hi >= 0), with both signs.
std::vector<float> float_sweep(float lo, float hi, uint32_t step) {
  std::vector<float> x;
  for (uint32_t b = float_bits(lo); b <= float_bits(hi); b += step) {
    x.push_back(bits_float(b));
    x.push_back(-bits_float(b));
  }
  return x;
}

// Distance in units of the float spacing at the exact value.
double ulps(float got, double exact) {
  const float e = static_cast<float>(std::fabs(exact));
  const double spacing = static_cast<double>(std::nextafter(e, std::numeric_limits<float>::infinity()) - e);
  return std::fabs(static_cast<double>(got) - exact) / spacing;
}

TEST(FastMath, TanhErrorOverTheFloatLine) {
  // ~8M floats in [1e-6, 10] with both signs (every float in [0, 9.5] was checked when fitting)
  const std::vector<float> x = float_sweep(1e-6f, 10.0f, 97);
  const std::vector<float> y = eval(Fn::Tanh, x);
  double max_abs = 0, max_ulp = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double exact = std::tanh(static_cast<double>(x[i]));
    max_abs = std::max(max_abs, std::fabs(y[i] - exact));
    max_ulp = std::max(max_ulp, ulps(y[i], exact));
    ASSERT_LE(std::fabs(y[i]), 1.0f) << "tanh(" << x[i] << ")";
  }
  EXPECT_LT(max_abs, 4e-7);
  EXPECT_LT(max_ulp, 7.0);
  // measured: 3.3e-7 and 5.5 ulp (the fit alone is 2e-8; the rest is float rounding)
  EXPECT_GT(max_abs, 1e-8) << "suspiciously exact: is the reference the function itself?";
}

TEST(FastMath, TanhIsOddMonotoneAndSaturates) {
  const std::vector<float> x = float_sweep(0.0f, 12.0f, 1021);
  const std::vector<float> y = eval(Fn::Tanh, x);
  for (size_t i = 0; i + 2 < x.size(); i += 2) {
    EXPECT_EQ(float_bits(y[i + 1]), float_bits(-y[i])) << "tanh(-x) != -tanh(x) at x = " << x[i];
    // monotone up to the rounding of P / Q (errors of +2e-7 and -2e-7 occur a few floats apart)
    ASSERT_LE(y[i], y[i + 2] + 7e-7f) << "not monotone between " << x[i] << " and " << x[i + 2];
  }
  const std::vector<float> big = eval(Fn::Tanh, {9.0f, 9.5f, 20.0f, 1e30f, -1e30f, std::numeric_limits<float>::max()});
  EXPECT_EQ(big[0], 1.0f);
  EXPECT_EQ(big[2], 1.0f);
  EXPECT_EQ(big[3], 1.0f);
  EXPECT_EQ(big[4], -1.0f);
  EXPECT_EQ(big[5], 1.0f);
}

TEST(FastMath, TanhSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity(), tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> y = eval(Fn::Tanh, {std::nanf(""), inf, -inf, 0.0f, -0.0f, tiny, -1e-20f});
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], -1.0f);
  EXPECT_EQ(float_bits(y[3]), float_bits(0.0f));
  EXPECT_EQ(float_bits(y[4]), float_bits(-0.0f)) << "the sign of zero is kept";
  EXPECT_EQ(y[5], tiny);
  EXPECT_EQ(y[6], -1e-20f);
}

TEST(FastMath, ExpRelativeErrorAndRange) {
  std::vector<float> x;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-87.3f, 88.7f);
  for (int i = 0; i < 2000000; ++i) x.push_back(u(rng));
  const std::vector<float> y = eval(Fn::Exp, x);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double exact = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::fabs(y[i] - exact) / exact);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_GT(worst, 1e-9);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> s = eval(Fn::Exp, {std::nanf(""), inf, -inf, 0.0f, 89.0f, -105.0f, 1000.0f, -1000.0f, 88.7f, -88.0f, -100.0f});
  EXPECT_TRUE(std::isnan(s[0]));
  EXPECT_EQ(s[1], inf);
  EXPECT_EQ(s[2], 0.0f);
  EXPECT_EQ(s[3], 1.0f);
  EXPECT_EQ(s[4], inf);
  EXPECT_EQ(s[5], 0.0f);
  EXPECT_EQ(s[6], inf);
  EXPECT_EQ(s[7], 0.0f);
  // near overflow the result is finite (it was inf from 88.38 on); below FLT_MIN it is 0, not a
  // denormal; just above, a normal float
  EXPECT_NEAR(s[8], std::exp(double{88.7f}), 1e-7 * std::exp(double{88.7f}));
  EXPECT_EQ(s[9], 0.0f);
  EXPECT_EQ(s[10], 0.0f);
  const std::vector<float> low = eval(Fn::Exp, {-87.3f, -87.0f});
  EXPECT_NEAR(low[0], std::exp(double{-87.3f}), 2e-7 * std::exp(double{-87.3f}));
  EXPECT_GE(low[0], std::numeric_limits<float>::min());
  EXPECT_NEAR(low[1], std::exp(-87.0), 2e-7 * std::exp(-87.0));
}

TEST(FastMath, ExpOfNonPositiveArgumentsIsFastExpBitForBit) {
  // the softmax kernels' exp (x - max <= 0): the same bits as fast_exp on every 5th float of
  // [-104, 0] (every one was checked when it was written), on -inf, both NaNs and -0; right
  // for positive arguments up to 88
  const int64_t chunk = 1 << 20;
  std::vector<float> x(static_cast<size_t>(chunk)), a(x.size()), b(x.size());
  int64_t differ = 0, checked = 0;
  for (uint64_t first = float_bits(-0.0f); first <= float_bits(-104.0f); first += 5 * static_cast<uint64_t>(chunk)) {
    int64_t m = 0;
    for (uint64_t bits = first; m < chunk && bits <= float_bits(-104.0f); bits += 5) x[static_cast<size_t>(m++)] = bits_float(static_cast<uint32_t>(bits));
    const float* xp = x.data();
    float *ap = a.data(), *bp = b.data();
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) ap[i] = cpu::fast_exp(xp[i]);
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) bp[i] = cpu::fast_exp_nonpositive(xp[i]);
    for (int64_t i = 0; i < m; ++i) differ += float_bits(ap[i]) != float_bits(bp[i]);
    checked += m;
  }
  EXPECT_EQ(differ, 0) << "of " << checked;
  EXPECT_GT(checked, 220000000);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(cpu::fast_exp_nonpositive(-inf), 0.0f);
  EXPECT_TRUE(std::isnan(cpu::fast_exp_nonpositive(std::nanf(""))));
  EXPECT_TRUE(std::isnan(cpu::fast_exp_nonpositive(-std::nanf(""))));
  EXPECT_EQ(cpu::fast_exp_nonpositive(-0.0f), 1.0f);
  for (float v : {0.5f, 1.0f, 10.0f, 50.0f, 87.9f})
    EXPECT_NEAR(cpu::fast_exp_nonpositive(v), std::exp(double{v}), 2e-7 * std::exp(double{v})) << v;
}

TEST(FastMath, SigmoidAbsoluteError) {
  const std::vector<float> x = float_sweep(1e-6f, 100.0f, 4093);
  const std::vector<float> y = eval(Fn::Sigmoid, x);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double exact = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    worst = std::max(worst, std::fabs(y[i] - exact));
    ASSERT_GE(y[i], 0.0f);
    ASSERT_LE(y[i], 1.0f);
  }
  EXPECT_LT(worst, 2e-7);
}

}  // namespace
}  // namespace attn::test
