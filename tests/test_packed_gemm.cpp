// Products with a prepared right-hand side (kernels/backend.h: prepare_rhs, matmul_prepared):
// the CPU's packed small-batch GEMM (kernels/cpu/packed_gemm.h) against OpenBLAS through bmm, on
// shapes around its tile sizes (rows 6 or 8, panels 16 or 32 columns), with row-major and
// transposed right-hand sides, rows of A further apart than K, and accumulation.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/backend.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

// (R, C) -> (1, R, C) over the same memory
Tensor as3(const Tensor& m) {
  return Tensor(std::make_shared<TensorImpl>(m.storage(), Shape{1, m.size(0), m.size(1)}, Strides{0, m.stride(0), m.stride(1)},
                                             m.offset(), m.dtype()));
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = 0, scale = 1e-30;
  for (size_t i = 0; i < y.size(); ++i) scale = std::max(scale, std::fabs(y[i]));
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]) / scale);
  return worst;
}

TEST(PackedGemm, MatchesBlasOnEveryTileEdge) {
  auto& be = kernels::backend(kCPU);
  Generator g(91);
  int checked = 0;
  for (int64_t M : {1, 5, 6, 7, 8, 9, 13, 32, 67}) {
    for (int64_t N : {1, 15, 16, 17, 31, 32, 33, 100}) {
      for (int64_t K : {1, 7, 64, 300}) {
        for (bool transposed : {false, true}) {
          for (bool accumulate : {false, true}) {
            // A with rows 3 floats further apart than K: a view into a wider buffer
            Tensor wide = uniform({M, K + 3}, -1.0, 1.0, g);
            Tensor a = wide.narrow(1, 1, K);
            // B (K, N) row-major, or the transpose of a (N, K) weight
            Tensor b = transposed ? uniform({N, K}, -1.0, 1.0, g).transpose(0, 1) : uniform({K, N}, -1.0, 1.0, g);
            Tensor start = uniform({M, N}, -1.0, 1.0, g);
            Tensor want = start.clone(), got = start.clone();
            const auto prepared = be.prepare_rhs(b);
            ASSERT_NE(prepared, nullptr);
            // twice with the same packing: start + 2 ab when accumulating, else ab
            be.matmul_prepared(got, a, b, prepared.get(), accumulate);
            be.matmul_prepared(got, a, b, prepared.get(), accumulate);
            be.bmm(as3(want), as3(a), as3(b), accumulate);
            if (accumulate) be.bmm(as3(want), as3(a), as3(b), true);
            EXPECT_LT(max_rel_diff(got, want), 2e-6) << "M " << M << " N " << N << " K " << K << (transposed ? " B^T" : " B")
                                                     << (accumulate ? " +=" : " =");
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 9 * 8 * 4 * 2 * 2);
}

TEST(PackedGemm, OtherDtypesAndLayoutsFallBackToBmm) {
  auto& be = kernels::backend(kCPU);
  Generator g(92);
  Tensor a = uniform({5, 9}, -1.0, 1.0, g, {.dtype = DType::Float64}), b = uniform({9, 4}, -1.0, 1.0, g, {.dtype = DType::Float64});
  EXPECT_EQ(be.prepare_rhs(b), nullptr);  // nothing to prepare for float64
  Tensor got = empty({5, 4}, {.dtype = DType::Float64}), want = empty({5, 4}, {.dtype = DType::Float64});
  be.matmul_prepared(got, a, b, nullptr, false);
  be.bmm(as3(want), as3(a), as3(b), false);
  EXPECT_LT(max_rel_diff(got, want), 1e-14);
  // float with an A whose columns are not adjacent: the prepared b is still right, via bmm
  Tensor af = uniform({9, 5}, -1.0, 1.0, g).transpose(0, 1), bf = uniform({9, 4}, -1.0, 1.0, g);
  const auto prepared = be.prepare_rhs(bf);
  Tensor gf = empty({5, 4}), wf = empty({5, 4});
  be.matmul_prepared(gf, af, bf, prepared.get(), false);
  be.bmm(as3(wf), as3(af), as3(bf), false);
  EXPECT_LT(max_rel_diff(gf, wf), 2e-6);
  // a different matrix than the one prepared is refused
  Tensor other = uniform({9, 4}, -1.0, 1.0, g);
  EXPECT_ANY_THROW(be.matmul_prepared(wf, uniform({5, 9}, -1.0, 1.0, g), other, prepared.get(), false));
}

}  // namespace
}  // namespace attn::test
