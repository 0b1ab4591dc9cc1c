// Every op of the table in op_cases.cpp: forward against the double reference (float32 and
// float64, contiguous and strided inputs, several random shapes), backward against central
// finite differences in float64.
#include <gtest/gtest.h>

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

class OpForward : public ::testing::TestWithParam<size_t> {};
class OpBackward : public ::testing::TestWithParam<size_t> {};

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

INSTANTIATE_TEST_SUITE_P(Ops, OpForward, ::testing::ValuesIn(all_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpBackward, ::testing::ValuesIn(differentiable_cases()), case_name);

}  // namespace
}  // namespace attn::test
