// Test helpers: a plain double-precision reference tensor, random inputs in contiguous or
// strided layouts, closeness checks that report the worst element, and a central finite-
// difference gradient check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/autograd/node.h"
#include "core/ops/ops.h"
#include "core/random.h"
#include "core/tensor.h"

namespace attn::test {

// ---------------------------------------------------------------- reference tensors

struct Ref {
  Shape shape;
  std::vector<double> v;  // row-major

  Ref() = default;
  Ref(Shape s, std::vector<double> values) : shape(std::move(s)), v(std::move(values)) {}
  explicit Ref(Shape s, double fill = 0.0) : shape(s), v(static_cast<size_t>(numel_of(s)), fill) {}
  static Ref of(const Tensor& t) { return Ref(t.shape(), t.to_vector<double>()); }
  int64_t numel() const { return static_cast<int64_t>(v.size()); }
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }

  int64_t flat(const std::vector<int64_t>& idx) const {
    int64_t f = 0;
    for (size_t d = 0; d < idx.size(); ++d) f = f * shape[d] + idx[d];
    return f;
  }
  double& at(const std::vector<int64_t>& idx) { return v[static_cast<size_t>(flat(idx))]; }
  double at(const std::vector<int64_t>& idx) const { return v[static_cast<size_t>(flat(idx))]; }
  // Value at an index of a shape this one broadcasts to (right-aligned, size-1 dims repeat).
  double bcast(const std::vector<int64_t>& out_idx) const {
    const size_t lead = out_idx.size() - shape.size();
    int64_t f = 0;
    for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + (shape[d] == 1 ? 0 : out_idx[lead + d]);
    return v[static_cast<size_t>(f)];
  }
};

// Calls fn(index) for every multi-index of `shape`, in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F&& fn) {
  const int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    fn(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

inline Ref ref_map2(const Ref& a, const Ref& b, const std::function<double(double, double)>& f) {
  Shape s = broadcast_shapes(a.shape, b.shape, "ref");
  Ref out(s);
  int64_t i = 0;
  for_each_index(s, [&](const std::vector<int64_t>& idx) { out.v[i++] = f(a.bcast(idx), b.bcast(idx)); });
  return out;
}

inline Ref ref_map(const Ref& a, const std::function<double(double)>& f) {
  Ref out = a;
  for (double& x : out.v) x = f(x);
  return out;
}

// ---------------------------------------------------------------- random inputs

enum class Layout { Contiguous, Strided };

inline const char* layout_name(Layout l) { return l == Layout::Contiguous ? "contiguous" : "strided"; }

// A random tensor of `shape`. Strided: a non-contiguous view (every stride doubled, and for
// rank >= 2 the last two dims transposed in memory) over a larger random buffer.
inline Tensor rand_tensor(Generator& gen, const Shape& shape, Layout layout, DType dtype = DType::Float32,
                          double lo = -1.0, double hi = 1.0) {
  Options opt{.dtype = dtype};
  if (layout == Layout::Contiguous || shape.empty()) return uniform(shape, lo, hi, gen, opt);
  Shape base = shape;
  const int64_t r = static_cast<int64_t>(shape.size());
  if (r >= 2) std::swap(base[r - 1], base[r - 2]);
  base.push_back(2);
  Tensor t = uniform(base, lo, hi, gen, opt).select(-1, 1);
  if (r >= 2) t = t.transpose(-1, -2);
  EXPECT_FALSE(t.is_contiguous() && t.numel() > 1);
  return t;
}

inline Tensor rand_index(Generator& gen, const Shape& shape, int64_t high) {
  Tensor u = uniform(shape, 0.0, static_cast<double>(high), gen, {.dtype = DType::Float64});
  std::vector<double> v = u.to_vector<double>();
  std::vector<int64_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::min<int64_t>(high - 1, static_cast<int64_t>(v[i]));
  return from_vector(out, shape);
}

// Small random shape: rank in [min_rank, max_rank], each dim in [1, max_dim].
inline Shape rand_shape(std::mt19937& rng, int min_rank, int max_rank, int64_t max_dim) {
  std::uniform_int_distribution<int> rank(min_rank, max_rank);
  std::uniform_int_distribution<int64_t> dim(1, max_dim);
  Shape s(static_cast<size_t>(rank(rng)));
  for (auto& d : s) d = dim(rng);
  return s;
}

// ---------------------------------------------------------------- comparisons

// Checks |actual - expected| <= atol + rtol * |expected| everywhere; on failure reports the
// worst element and its index.
inline ::testing::AssertionResult all_close(const Tensor& actual, const Ref& expected, double rtol,
                                            double atol) {
  if (actual.shape() != expected.shape) {
    return ::testing::AssertionFailure()
           << "shape " << fmt::format("{}", actual.shape()) << " != expected "
           << fmt::format("{}", expected.shape);
  }
  std::vector<double> a = actual.to_vector<double>();
  double worst = -1.0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = expected.v[i];
    const double err = std::abs(a[i] - e);
    const bool both_nan = std::isnan(a[i]) && std::isnan(e);
    const bool both_inf = std::isinf(a[i]) && a[i] == e;
    if (both_nan || both_inf) continue;
    const double excess = std::isnan(err) ? 1e300 : err - (atol + rtol * std::abs(e));
    if (excess > worst) {
      worst = excess;
      at = i;
    }
  }
  if (worst > 0) {
    return ::testing::AssertionFailure() << fmt::format(
               "element {} of shape {}: got {:.9g}, expected {:.9g} (rtol {}, atol {})", at,
               actual.shape(), a[at], expected.v[at], rtol, atol);
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol,
                                            double atol) {
  return all_close(actual, Ref::of(expected), rtol, atol);
}

// ---------------------------------------------------------------- gradient check

// Compares the gradients autograd gives for `inputs` (float64 leaves) with central finite
// differences of L = sum(fn(inputs) * R) for a fixed random R. Perturbs elements in place
// through their strides, so non-contiguous inputs are checked too.
inline ::testing::AssertionResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                            std::vector<Tensor> inputs, const std::vector<int>& wrt,
                                            uint64_t seed = 7, double eps = 1e-6, double atol = 1e-7,
                                            double rtol = 1e-5) {
  for (int i : wrt) {
    if (inputs[i].dtype() != DType::Float64)
      return ::testing::AssertionFailure() << "gradcheck wants float64 inputs";
    inputs[i].requires_grad_(true);
    inputs[i].set_grad(Tensor());
  }
  Tensor out = fn(inputs);
  Generator g(seed);
  Tensor R = uniform(out.shape(), -1.0, 1.0, g, {.dtype = DType::Float64});
  Tensor loss = sum(mul(out, R));
  loss.backward();
  auto eval = [&]() {
    NoGradGuard ng;
    return sum(mul(fn(inputs), R)).item<double>();
  };
  for (int i : wrt) {
    Tensor x = inputs[i];
    if (!x.grad().defined())
      return ::testing::AssertionFailure() << "input " << i << " got no gradient";
    std::vector<double> analytic = x.grad().to_vector<double>();
    double* base = x.data<double>();
    int64_t k = 0;
    std::string failure;
    for_each_index(x.shape(), [&](const std::vector<int64_t>& idx) {
      int64_t off = 0;
      for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * x.stride(static_cast<int64_t>(d));
      const double orig = base[off];
      base[off] = orig + eps;
      const double up = eval();
      base[off] = orig - eps;
      const double down = eval();
      base[off] = orig;
      const double numeric = (up - down) / (2 * eps);
      const double a = analytic[static_cast<size_t>(k)];
      if (failure.empty() && std::abs(a - numeric) > atol + rtol * std::abs(numeric)) {
        failure = fmt::format("input {} element {}: analytic {:.10g}, numeric {:.10g}", i, k, a, numeric);
      }
      ++k;
    });
    if (!failure.empty()) return ::testing::AssertionFailure() << failure;
  }
  return ::testing::AssertionSuccess();
}

// Whether the CUDA backend can run here; the reason when it cannot.
bool gpu_available(std::string* why = nullptr);

}  // namespace attn::test
