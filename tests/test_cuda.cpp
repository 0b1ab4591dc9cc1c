// The CUDA backend beyond the op table: the caching allocator on real device memory (reuse,
// statistics, the out-of-memory path under a cap), copies in both directions, the same random
// numbers as the CPU for one seed, large reductions and softmax rows, TF32 off by default.
// Every test skips, saying why, where no GPU answers.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/caching_allocator.h"
#include "core/ops/fused.h"
#include "core/optim/optimizer.h"
#include "kernels/backend.h"
#include "tests/test_util.h"
#if ATTN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#endif

namespace attn::test {
namespace {

#define REQUIRE_GPU()                                  \
  do {                                                 \
    std::string why_;                                  \
    if (!gpu_available(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
  } while (0)

// The error path of every CUDA, cuBLAS and cuDNN call, checked without a device (the libraries'
// error strings are host tables): the call's text, the library's name and string, file and line.
TEST(CudaErrors, MessagesNameTheCallTheLibrarysStringAndTheFileAndLine) {
#if !ATTN_WITH_CUDA
  GTEST_SKIP() << "built without CUDA: there is no CUDA error path to check";
#else
  auto message_of = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const BackendError& e) {
      return e.what();
    }
    return "(nothing thrown)";
  };
  const std::string file = __FILE__;
  int line = __LINE__ + 1;
  std::string m = message_of([] { ATTN_CUDA_CHECK(cudaErrorInvalidValue); });
  for (const std::string& part : {std::string("cudaErrorInvalidValue"), std::string(cudaGetErrorString(cudaErrorInvalidValue)),
                                  std::string("`cudaErrorInvalidValue`"), file + ":" + std::to_string(line)})
    EXPECT_NE(m.find(part), std::string::npos) << part << " not in: " << m;
  EXPECT_THROW(ATTN_CUDA_CHECK(cudaErrorMemoryAllocation), OutOfMemoryError);  // out of memory is its own error
  line = __LINE__ + 1;
  m = message_of([] { ATTN_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  for (const std::string& part : {std::string("cuBLAS error"), std::string(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)),
                                  std::string("`CUBLAS_STATUS_INVALID_VALUE`"), file + ":" + std::to_string(line)})
    EXPECT_NE(m.find(part), std::string::npos) << part << " not in: " << m;
  EXPECT_THROW(ATTN_CUBLAS_CHECK(CUBLAS_STATUS_ALLOC_FAILED), OutOfMemoryError);
  line = __LINE__ + 1;
  m = message_of([] { ATTN_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  for (const std::string& part : {std::string("cuDNN error"), std::string(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)),
                                  std::string("`CUDNN_STATUS_BAD_PARAM`"), file + ":" + std::to_string(line)})
    EXPECT_NE(m.find(part), std::string::npos) << part << " not in: " << m;
#endif
}

TEST(Cuda, Tf32IsOffUnlessAskedFor) {
  // the flag's default, on any build (the GPU test below checks what the flag does)
  EXPECT_FALSE(kernels::allow_tf32());
  kernels::set_allow_tf32(true);
  EXPECT_TRUE(kernels::allow_tf32());
  kernels::set_allow_tf32(false);
}

TEST(Cuda, CopiesRoundTripEveryDtype) {
  REQUIRE_GPU();
  Tensor f = uniform({3, 5});
  EXPECT_EQ(f.to(kCUDA).to(kCPU).to_vector<float>(), f.to_vector<float>());
  Tensor i = arange(17);
  EXPECT_EQ(i.to(kCUDA).to(kCPU).to_vector<int64_t>(), i.to_vector<int64_t>());
  Tensor b = gt(uniform({9}), 0.5);
  EXPECT_EQ(b.to(kCUDA).to(kCPU).to_vector<bool>(), b.to_vector<bool>());
  // A strided view goes through contiguous() first.
  Tensor t = f.t();
  EXPECT_EQ(t.to(kCUDA).to_vector<float>(), t.to_vector<float>());
}

TEST(Cuda, SameSeedSameNumbersAsCpu) {
  REQUIRE_GPU();
  Generator g1(123), g2(123);
  EXPECT_EQ(uniform({4097}, -1.0, 1.0, g1).to_vector<float>(),
            uniform({4097}, -1.0, 1.0, g2, {.device = kCUDA}).to_vector<float>());
  // a span that is not a power of two: low + span * u rounds twice unless both devices fuse it
  EXPECT_EQ(uniform({4097}, -0.03, 0.05, g1).to_vector<float>(),
            uniform({4097}, -0.03, 0.05, g2, {.device = kCUDA}).to_vector<float>());
  Generator d1(7), d2(7);
  Tensor x = ones({1000});
  Tensor m_cpu = dropout(x, 0.4, true, d1);
  Tensor m_gpu = dropout(x.to(kCUDA), 0.4, true, d2);
  EXPECT_EQ(m_cpu.to_vector<float>(), m_gpu.to_vector<float>());  // the same mask, bit for bit
  Generator n1(5), n2(5);
  EXPECT_TRUE(all_close(normal({1001}, 0.0, 1.0, n2, {.device = kCUDA}).to(kCPU), normal({1001}, 0.0, 1.0, n1), 1e-6, 1e-6));
}

TEST(Cuda, LargeReductionsAndRowsMatchCpu) {
  REQUIRE_GPU();
  Generator g(11);
  Tensor x = uniform({4096, 2048}, -1.0, 1.0, g);
  Tensor xg = x.to(kCUDA);
  EXPECT_TRUE(all_close(sum(xg).to(kCPU), sum(x), 1e-9, 1e-6));                   // one long reduction
  EXPECT_TRUE(all_close(sum(xg, {0}).to(kCPU), sum(x, {0}), 1e-9, 1e-9));          // outer dim
  EXPECT_TRUE(all_close(sum(xg, {1}).to(kCPU), sum(x, {1}), 1e-9, 1e-9));          // inner dim
  EXPECT_TRUE(all_close(softmax(xg, 1).to(kCPU), softmax(x, 1), 1e-5, 1e-9));      // block-per-row
  EXPECT_TRUE(all_close(log_softmax(xg, 0).to(kCPU), log_softmax(x, 0), 1e-5, 1e-6));  // strided rows
  auto [v, i] = max(xg, 1);
  auto [vc, ic] = max(x, 1);
  EXPECT_EQ(v.to_vector<float>(), vc.to_vector<float>());
  EXPECT_EQ(i.to_vector<int64_t>(), ic.to_vector<int64_t>());
}

TEST(Cuda, LogSoftmaxAndSoftmaxNllKeepTheirPrecisionAtLargeLogits) {
  // x - lse with lse rounded to float lost ~4e-3 at logits near 1e5 (the CPU twin's test,
  // Ops.LogSoftmaxKeepsItsPrecisionAtLargeLogits, checks it against float64)
  REQUIRE_GPU();
  Generator g(53);
  const int64_t N = 9, V = 1000;
  const Tensor x = add(uniform({N, V}, -4.0, 4.0, g), 1e5);
  const Tensor xg = x.to(kCUDA);
  EXPECT_TRUE(all_close(log_softmax(xg, 1).to(kCPU), log_softmax(x, 1), 0.0, 2e-6));                // warp or block rows
  EXPECT_TRUE(all_close(log_softmax(xg.t(), 0).to(kCPU), log_softmax(x.t(), 0), 0.0, 2e-6));        // strided rows
  std::vector<int64_t> tv;
  for (int64_t i = 0; i < N; ++i) tv.push_back((i * 337) % V);
  const Tensor target = from_vector(tv, Shape{N});
  Tensor on_cpu = x.detach().requires_grad_(true), on_gpu = xg.detach().requires_grad_(true);
  Tensor loss_cpu = softmax_nll(on_cpu, target, -100, 0.0, Reduction::Sum);
  Tensor loss_gpu = softmax_nll(on_gpu, target.to(kCUDA), -100, 0.0, Reduction::Sum);
  EXPECT_NEAR(loss_gpu.item<double>(), loss_cpu.item<double>(), 1e-4);
  loss_cpu.backward();
  loss_gpu.backward();
  EXPECT_TRUE(all_close(on_gpu.grad().to(kCPU), on_cpu.grad(), 0.0, 1e-6));
}

TEST(Cuda, EmbeddingIndexOutOfRangeIsAnError) {
  REQUIRE_GPU();
  Tensor w = ones({10, 4}, {.device = kCUDA});
  try {
    embedding(w, from_vector<int64_t>({1, 12, 3}).to(kCUDA));
    FAIL() << "expected IndexError";
  } catch (const IndexError& e) {
    EXPECT_NE(std::string(e.what()).find("index 12 at position 1"), std::string::npos) << e.what();
  }
  // The most negative int64 is no "ignored" sentinel for an embedding.
  EXPECT_THROW(embedding(w, from_vector<int64_t>({1, INT64_MIN}).to(kCUDA)), IndexError);
}

TEST(Cuda, Int64SumsAreExactBeyondDoublePrecision) {
  REQUIRE_GPU();
  // 2^53 + 1 per element: a sum through double would lose the ones.
  std::vector<int64_t> v(100000, (int64_t{1} << 53) / 100000 + 1);
  v[0] = (int64_t{1} << 53) + 1;
  const Tensor x = from_vector(v, Shape{100000});
  EXPECT_EQ(sum(x.to(kCUDA)).item<int64_t>(), sum(x).item<int64_t>());
  const Tensor m = x.reshape(Shape{100, 1000});
  EXPECT_EQ(sum(m.to(kCUDA), {1}).to(kCPU).to_vector<int64_t>(), sum(m, {1}).to_vector<int64_t>());
}

TEST(Cuda, Tf32IsOffByDefault) {
  REQUIRE_GPU();
  EXPECT_FALSE(kernels::allow_tf32());
  // 1 + 2^-12 needs 13 mantissa bits: float32 keeps it and sums 64 of them exactly in any
  // order (64 + 2^-6); TF32 (10 bits) rounds each to 1 and gives 64.
  Tensor a = full({64, 64}, 1.0 + 1.0 / 4096, {.device = kCUDA});
  Tensor b = ones({64, 64}, {.device = kCUDA});
  EXPECT_EQ(matmul(a, b).to(kCPU).to_vector<float>()[0], 64.0f + 1.0f / 64);
}

TEST(Cuda, OptimizerStepsAndClippingMatchCpu) {
  REQUIRE_GPU();
  // Three steps of each optimizer from the same start and gradients, clipping fused into the
  // step through clip_coefficient (the sum_squares kernel), on both devices.
  for (int which = 0; which < 2; ++which) {
    Generator g(21 + which);
    Tensor start = uniform({1000, 37}, -1.0, 1.0, g);
    std::vector<Tensor> grads;
    for (int s = 0; s < 3; ++s) grads.push_back(uniform({1000, 37}, -3.0, 3.0, g));
    std::vector<float> result[2];
    double coefs[2] = {0, 0};
    for (int d = 0; d < 2; ++d) {
      const Device dev = d ? kCUDA : kCPU;
      Tensor p = start.to(dev).detach().clone();  // to(kCPU) would share `start` itself
      p.requires_grad_(true);
      std::unique_ptr<optim::Optimizer> opt;
      if (which == 0)
        opt = std::make_unique<optim::Adam>(std::vector<Tensor>{p}, optim::AdamOptions{.lr = 0.01, .weight_decay = 0.1});
      else
        opt = std::make_unique<optim::SGD>(std::vector<Tensor>{p}, optim::SgdOptions{.lr = 0.01, .momentum = 0.9, .nesterov = true});
      for (const Tensor& gr : grads) {
        p.set_grad(gr.to(dev));
        coefs[d] = optim::clip_coefficient({p}, 5.0);
        opt->step(coefs[d]);
      }
      result[d] = p.to_vector<float>();
    }
    EXPECT_NEAR(coefs[0], coefs[1], 1e-9 * coefs[0]);
    EXPECT_LT(coefs[0], 1.0);  // clipping did act
    EXPECT_TRUE(all_close(from_vector(result[1], Shape{1000, 37}), Ref(Shape{1000, 37}, std::vector<double>(result[0].begin(), result[0].end())), 1e-5, 1e-6))
        << (which == 0 ? "Adam" : "SGD");
  }
}

#if ATTN_WITH_CUDA
TEST(Cuda, AllocatorReusesDeviceMemoryAndReportsStats) {
  REQUIRE_GPU();
  CachingAllocator& a = cuda::cuda_allocator(kCUDA);
  if (!a.caching()) GTEST_SKIP() << "ATTN_CUDA_NO_CACHING is set: the allocator reuses nothing";
  { Tensor warm = empty({1 << 20}, {.device = kCUDA}); }
  const AllocatorStats before = a.stats();
  for (int i = 0; i < 50; ++i) {
    Tensor t = empty({1 << 20}, {.device = kCUDA});  // 4 MiB, freed at the end of each iteration
  }
  const AllocatorStats after = a.stats();
  EXPECT_EQ(after.system_allocations, before.system_allocations);  // no cudaMalloc on the loop
  EXPECT_EQ(after.allocations, before.allocations + 50);
  EXPECT_GE(after.peak, int64_t{4} << 20);
  EXPECT_EQ(after.in_use, before.in_use);
}

TEST(Cuda, OutOfMemoryUnderACapIsAClearError) {
  REQUIRE_GPU();
  CachingAllocator& a = cuda::cuda_allocator(kCUDA);
  a.empty_cache();
  a.set_limit(a.stats().reserved + (int64_t{64} << 20));  // 64 MiB more than now
  Tensor keep = empty({8 << 20}, {.device = kCUDA});      // 32 MiB
  try {
    Tensor too_big = empty({16 << 20}, {.device = kCUDA});  // 64 MiB more does not fit
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("64.00 MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("in use"), std::string::npos) << msg;
    EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
  }
  a.set_limit(0);
  keep.fill_(2.0);  // the tensor that was live is untouched and usable
  EXPECT_EQ(keep.to(kCPU).to_vector<float>()[123], 2.0f);
}
#endif

}  // namespace
}  // namespace attn::test
