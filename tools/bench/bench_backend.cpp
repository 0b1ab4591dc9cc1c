// `attn bench backend`: the core kernels of one backend on large tensors, against that device's
// own copy bandwidth and its BLAS called directly, measured in the same run.
//   bandwidth: a device-to-device copy of 64 MB (the reference; on a CPU the faster of memcpy
//              and a copy by plain stores), then elementwise ops and
//              reductions on 64 MB tensors; GB/s counts each input read once and each output
//              written once; pct_copy = GB/s / copy GB/s.
//   gemm:      the engine's bmm kernel against cuBLAS (GPU) or OpenBLAS (CPU) called directly
//              on the same operands.
// Two input sets alternate between runs, and before every timed call the L2 is flushed
// (l2_flush.h; on a GPU that also keeps the host's preparation of the call out of the time).
#include <cblas.h>

#include <algorithm>
#include <map>

#include "core/ops/ops.h"
#include "kernels/backend.h"
#include "tools/bench/harness.h"
#include "tools/bench/l2_flush.h"
#include "tools/bench/suites.h"
#if ATTN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#endif

namespace attn::bench {

namespace {

using kernels::BinaryOp;
using kernels::UnaryOp;

struct Case {
  std::string name, shape;
  double bytes;
  std::function<void(int)> run;  // argument: which input set
};

void bandwidth(Report& rep, const BackendOptions& opt, const Clock& clock, const std::function<void()>& flush) {
  const Device dev = opt.device;
  auto& be = kernels::backend(dev);
  const int64_t n = opt.megabytes * (int64_t{1} << 20) / 4;
  const int64_t cols = 4096, rows = n / cols;
  Generator g(1);
  Tensor x[2], y[2];
  for (int k = 0; k < 2; ++k) {
    x[k] = uniform({rows, cols}, -1.0, 1.0, g, {.device = dev});
    y[k] = uniform({rows, cols}, -1.0, 1.0, g, {.device = dev});
  }
  Tensor bias = uniform({cols}, -1.0, 1.0, g, {.device = dev});
  Tensor out = empty({rows, cols}, {.device = dev});
  Tensor col_out = empty({rows, 1}, {.device = dev}), row_out = empty({1, cols}, {.device = dev});
  Tensor scalar_out = empty({1, 1}, {.device = dev});
  Tensor idx_out = empty({rows, 1}, {.dtype = DType::Int64, .device = dev});
  const double B = static_cast<double>(n) * 4;
  const std::string shape = fmt::format("{}x{} f32", rows, cols);
  std::vector<Case> cases = {
      {"copy", shape, 2 * B, [&](int k) { be.copy(out, x[k]); }},
      {"add", shape, 3 * B, [&](int k) { be.binary(BinaryOp::Add, out, x[k], y[k]); }},
      {"add_bias_row", shape, 2 * B, [&](int k) { be.binary(BinaryOp::Add, out, x[k], bias); }},
      {"mul_scalar", shape, 2 * B, [&](int k) { be.unary(UnaryOp::MulScalar, out, x[k], 0.5); }},
      {"exp", shape, 2 * B, [&](int k) { be.unary(UnaryOp::Exp, out, x[k], 0.0); }},
      {"tanh", shape, 2 * B, [&](int k) { be.unary(UnaryOp::Tanh, out, x[k], 0.0); }},
      {"tanh_backward", shape, 3 * B, [&](int k) { be.binary(BinaryOp::TanhBackward, out, x[k], y[k]); }},
      {"sum_all", shape, B, [&](int k) { be.sum(scalar_out, x[k]); }},
      {"sum_dim1", shape, B, [&](int k) { be.sum(col_out, x[k]); }},
      {"sum_dim0", shape, B, [&](int k) { be.sum(row_out, x[k]); }},
      {"max_dim1", shape, B, [&](int k) { be.max(col_out, idx_out, x[k], 1); }},
      {"softmax_dim1", shape, 2 * B, [&](int k) { be.softmax(out, x[k], 1, false); }},
      {"log_softmax_dim1", shape, 2 * B, [&](int k) { be.softmax(out, x[k], 1, true); }},
  };
  // On a CPU the reference is the faster of the C library's memcpy (non-temporal stores for
  // blocks this large, slower here than plain ones: elementwise ops reached 110-150% of it) and
  // a copy by plain stores (x * 1 through the elementwise path).
  if (dev.is_cpu())
    cases.insert(cases.begin() + 1, Case{"copy_by_stores", shape, 2 * B, [&](int k) { be.unary(UnaryOp::MulScalar, out, x[k], 1.0); }});
  Variants variants;
  for (Case& c : cases) {
    auto counter = std::make_shared<int>(0);
    variants.emplace_back(c.name, [&c, counter] { c.run((*counter)++ & 1); });
  }
  std::vector<Timing> t = time_interleaved(variants, opt.warmup, opt.reps, clock, opt.min_time, 20000, flush);
  double copy_gbs = 0;  // the reference: the faster copy
  for (size_t i = 0; i < t.size(); ++i)
    if (cases[i].name.starts_with("copy")) copy_gbs = std::max(copy_gbs, cases[i].bytes / t[i].median_s * 1e-9);
  for (size_t i = 0; i < t.size(); ++i) {
    Row r{"backend", cases[i].name, dev.is_cuda() ? "cuda" : "cpu", cases[i].shape, t[i].median_s * 1e6, t[i].runs, {}};
    const double gbs = cases[i].bytes / t[i].median_s * 1e-9;
    r.metrics["GB/s"] = gbs;
    r.metrics["pct_copy"] = 100.0 * gbs / copy_gbs;
    rep.rows.push_back(r);
  }
}

void gemm(Report& rep, const BackendOptions& opt, const Clock& clock, const std::function<void()>& flush, int64_t M,
          int64_t K, int64_t N) {
  const Device dev = opt.device;
  auto& be = kernels::backend(dev);
  Generator g(2);
  Tensor a = uniform({1, M, K}, -1.0, 1.0, g, {.device = dev});
  Tensor w = uniform({N, K}, -1.0, 1.0, g, {.device = dev});  // (out, in): a @ w^T, as linear()
  Tensor wt = w.t().unsqueeze(0);                              // (1, K, N) view, strides (.., 1, K)
  Tensor c = empty({1, M, N}, {.device = dev});
  std::function<void()> direct;
  std::string lib;
  if (dev.is_cpu()) {
    lib = "openblas";
    direct = [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f,
                  a.data<float>(), static_cast<int>(K), w.data<float>(), static_cast<int>(K), 0.0f, c.data<float>(),
                  static_cast<int>(N));
    };
  } else {
#if ATTN_WITH_CUDA
    lib = "cublas";
    // one handle per device, on the engine's stream of the device benchmarked (kept until exit)
    static std::map<int, cublasHandle_t> handles;
    cublasHandle_t& h = handles[dev.index];
    if (!h) {
      const cudaStream_t stream = cuda::context(dev).stream;  // makes dev the current device
      ATTN_CUBLAS_CHECK(cublasCreate(&h));
      ATTN_CUBLAS_CHECK(cublasSetStream(h, stream));
    }
    direct = [&] {  // column-major: C^T (N x M) = W (N x K, stored as W^T col-major -> OP_T) * A^T
      const float alpha = 1.0f, beta = 0.0f;
      ATTN_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K),
                                    &alpha, w.data<float>(), static_cast<int>(K), a.data<float>(), static_cast<int>(K), &beta,
                                    c.data<float>(), static_cast<int>(N)));
    };
#endif
  }
  std::vector<Timing> t = time_interleaved({{lib, direct}, {"engine", [&] { be.bmm(c, a, wt, false); }}},
                                           opt.warmup, opt.reps, clock, opt.min_time, 20000, flush);
  const double flops = 2.0 * static_cast<double>(M * N * K);
  const std::string shape = fmt::format("({}x{}) @ ({}x{})^T", M, K, N, K);
  for (size_t i = 0; i < t.size(); ++i) {
    Row r{"backend", "gemm", t[i].name, shape, t[i].median_s * 1e6, t[i].runs, {}};
    r.metrics["TFLOP/s"] = flops / t[i].median_s * 1e-12;
    if (i == 1) r.metrics["vs_direct"] = paired_speedup(t[1], t[0]);  // > 1: the engine is faster
    rep.rows.push_back(r);
  }
}

}  // namespace

void run_backend(Report& rep, const BackendOptions& opt) {
  const Clock clock = opt.device.is_cuda() ? cuda_clock(opt.device) : host_clock();
  const std::function<void()> flush = make_l2_flush(opt.device);  // one pair of buffers for every case
  bandwidth(rep, opt, clock, flush);
  gemm(rep, opt, clock, flush, 576, 512, 10000);
  gemm(rep, opt, clock, flush, 128, 1024, 4096);
  if (opt.device.is_cuda()) gemm(rep, opt, clock, flush, 4096, 4096, 4096);
  rep.notes.push_back(opt.device.is_cpu() ? "pct_copy: achieved GB/s over the copy GB/s of the same run (the faster of memcpy and copy_by_stores)"
                                          : "pct_copy: achieved GB/s over the device-to-device copy GB/s of the same run");
}

}  // namespace attn::bench
