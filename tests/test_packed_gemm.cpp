// Products with a prepared right-hand side (kernels/backend.h: prepare_rhs, matmul_prepared):
// the CPU's packed small-batch GEMM (kernels/cpu/packed_gemm.h) against OpenBLAS through bmm, on
// shapes around its tile sizes (rows 6 or 8, panels 16 or 32 columns), with row-major and
// transposed right-hand sides, rows of A further apart than K, and accumulation.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops/ops.h"
#include "kernels/backend.h"
#include "kernels/cpu/packed_gemm.h"
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
  if (!cpu::kPackedGemmUsed) GTEST_SKIP() << "built without FMA: the engine does not use the packed kernel";
  auto& be = kernels::backend(kCPU);
  Generator g(91);
  int checked = 0;
  for (int64_t M : {1, 5, 6, 7, 8, 9, 13, 25, 32, 67}) {  // 25: a step of T2's LSTM (4 tiles + 1 row on AVX2)
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
  EXPECT_EQ(checked, 10 * 8 * 4 * 2 * 2);
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
  if (cpu::kPackedGemmUsed)
    EXPECT_ANY_THROW(be.matmul_prepared(wf, uniform({5, 9}, -1.0, 1.0, g), other, prepared.get(), false));
  else
    EXPECT_EQ(prepared, nullptr);  // a build without FMA prepares nothing
}

// linear() through a prepared (packed) weight: the values and every gradient of the plain
// linear, for 2-d and 3-d inputs (a non-contiguous one too), row counts around the tile height,
// output sizes around the panel width, with and without bias; float64 prepares nothing.
TEST(PreparedLinear, MatchesPlainLinearValuesAndGradients) {
  Generator g(93);
  int checked = 0;
  for (int64_t out_f : {1, 31, 33, 100}) {
    for (bool with_bias : {true, false}) {
      for (Shape xs : {Shape{1, 24}, Shape{7, 24}, Shape{9, 24}, Shape{3, 5, 24}, Shape{24, 6}}) {
        const bool strided = xs.back() != 24;  // (24, 6) transposed: a non-contiguous (6, 24)
        Tensor x0 = uniform(xs, -1.0, 1.0, g);
        if (strided) x0 = x0.transpose(0, 1);
        const Tensor w0 = uniform({out_f, 24}, -1.0, 1.0, g), b0 = with_bias ? uniform({out_f}, -1.0, 1.0, g) : Tensor();
        Shape ys = x0.shape();
        ys.back() = out_f;
        const Tensor R = uniform(ys, -1.0, 1.0, g);
        std::vector<Tensor> got, want;
        for (bool prepared : {true, false}) {
          Tensor x = x0.detach().requires_grad_(true), w = w0.detach().requires_grad_(true);
          Tensor b = with_bias ? b0.detach().requires_grad_(true) : Tensor();
          Tensor y;
          if (prepared) {
            const PreparedLinear layer = prepare_linear(w, b);
            ASSERT_EQ(layer.packed != nullptr, cpu::kPackedGemmUsed);  // float on the CPU: packed (with FMA)
            y = linear(x, layer);
          } else {
            y = linear(x, w, b);
          }
          sum(y * R).backward();
          std::vector<Tensor>& out = prepared ? got : want;
          out = {y.detach(), x.grad(), w.grad()};
          if (with_bias) out.push_back(b.grad());
        }
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i].shape(), want[i].shape()) << i;
          EXPECT_LT(max_rel_diff(got[i], want[i]), 2e-6) << fmt::format("output {}, x {}, out {}", i, x0.shape(), out_f);
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 4 * 2 * 5);
  // float64: nothing prepared, the plain path
  const Tensor w64 = uniform({5, 4}, -1.0, 1.0, g, {.dtype = DType::Float64});
  const PreparedLinear layer64 = prepare_linear(w64);
  EXPECT_EQ(layer64.packed, nullptr);
  const Tensor x64 = uniform({3, 4}, -1.0, 1.0, g, {.dtype = DType::Float64});
  EXPECT_LT(max_rel_diff(linear(x64, layer64), linear(x64, w64)), 1e-15);
}

}  // namespace
}  // namespace attn::test
