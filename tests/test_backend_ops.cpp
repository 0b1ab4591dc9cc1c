// Backend parity, in the spirit of ggml's test-backend-ops: every op of the table in
// op_cases.cpp runs on the GPU and on the CPU from the same random inputs (contiguous and
// strided, float32 and float64), and the forward outputs and all input gradients must agree to
// ~1e-5 relative (float32, TF32 off). Skips, saying why, where no GPU answers.
#include <gtest/gtest.h>

#include "core/ops/op_utils.h"
#include "kernels/backend.h"
#include "tests/op_cases.h"

namespace attn::test {
namespace {

std::string case_name(const ::testing::TestParamInfo<size_t>& info) { return op_cases()[info.param].name; }

std::vector<size_t> all_cases() {
  std::vector<size_t> v(op_cases().size());
  std::iota(v.begin(), v.end(), 0);
  return v;
}

struct DeviceRun {
  Tensor out;
  std::vector<Tensor> grads;
};

// `t` on `device` with the same strides and offset (to() would make it contiguous): its whole
// storage is copied and viewed the same way, so the GPU kernels see the strided layouts too.
Tensor same_layout_on(const Tensor& t, Device device) {
  if (t.is_contiguous() && t.offset() == 0) return t.to(device).detach();
  const int64_t elems = static_cast<int64_t>(t.storage()->nbytes() / dtype_size(t.dtype()));
  const Tensor whole = alias(t, Shape{elems}, Strides{1}, 0).to(device);
  return alias(whole, t.shape(), t.strides(), t.offset());
}

// Runs case `c` on `device` from CPU inputs `a`, with upstream gradient R (on the CPU).
DeviceRun run_on(const OpCase& c, const Args& a, Device device, const Tensor& R_cpu) {
  Args d = a;
  for (size_t i = 0; i < d.x.size(); ++i) d.x[i] = same_layout_on(a.x[i], device);
  for (int i : c.wrt) d.x[i].requires_grad_(true);
  DeviceRun r;
  r.out = c.fn(d);
  if (!c.wrt.empty()) {
    sum(mul(r.out, R_cpu.to(device))).backward();
    for (int i : c.wrt) r.grads.push_back(d.x[i].grad());
  }
  return r;
}

class BackendParity : public ::testing::TestWithParam<size_t> {};

TEST_P(BackendParity, CudaMatchesCpu) {
  std::string why;
  if (!gpu_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  kernels::set_allow_tf32(false);
  const OpCase& c = op_cases()[GetParam()];
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (Layout layout : {Layout::Contiguous, Layout::Strided}) {
      for (uint64_t trial = 0; trial < 3; ++trial) {
        const uint64_t seed = 9000 + 1000 * GetParam() + 10 * trial + (layout == Layout::Strided);
        std::mt19937 rng(static_cast<uint32_t>(seed));
        Generator gen(seed);
        Ctx ctx{gen, rng, layout, dtype};
        Args a = c.make(ctx);
        Tensor probe_out;
        {
          NoGradGuard g;
          probe_out = c.fn(a);
        }
        Generator rg(seed + 1);
        Tensor R = is_floating(probe_out.dtype()) ? uniform(probe_out.shape(), -1.0, 1.0, rg, {.dtype = probe_out.dtype()}) : Tensor();
        DeviceRun cpu = run_on(c, a, kCPU, R);
        DeviceRun gpu = run_on(c, a, kCUDA, R);
        const double rtol = dtype == DType::Float32 ? 1e-5 : 1e-12, atol = dtype == DType::Float32 ? 1e-6 : 1e-13;
        const std::string where = fmt::format("{}, {}, {}, trial {}", c.name, layout_name(layout), dtype, trial);
        EXPECT_EQ(gpu.out.device(), kCUDA) << where;
        EXPECT_TRUE(all_close(gpu.out.to(kCPU), cpu.out, rtol, atol)) << "forward: " << where;
        for (size_t i = 0; i < cpu.grads.size(); ++i) {
          ASSERT_TRUE(gpu.grads[i].defined()) << where;
          EXPECT_EQ(gpu.grads[i].device(), kCUDA) << where;
          EXPECT_TRUE(all_close(gpu.grads[i].to(kCPU), cpu.grads[i], rtol, atol)) << "gradient " << i << ": " << where;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, BackendParity, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace attn::test
