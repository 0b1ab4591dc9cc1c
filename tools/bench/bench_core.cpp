// `attn bench core`: the engine's own overheads on the CPU.
//  - gemm: the translator's classifier, (576 x 512) @ (512 x 10000), through linear() and
//    matmul() against OpenBLAS sgemm called directly on the same operands, interleaved.
//  - recurrent_gemm: an LSTM step's h W_hh^T, (B x H) @ (H x 4H) for B 32 and 128, H 256: the
//    prepared (packed once) product of the engine against OpenBLAS sgemm on the same operands.
//  - tiny_op: forward + backward of one op on 1-element tensors, autograd included: the fixed
//    cost every op pays.
#include <cblas.h>

#include "core/ops/ops.h"
#include "kernels/backend.h"
#include "tools/bench/harness.h"
#include "tools/bench/suites.h"

namespace attn::bench {

namespace {

void bench_gemm(Report& rep, const CoreOptions& opt, int64_t M, int64_t K, int64_t N) {
  Generator g(1);
  Tensor x = uniform({M, K}, -1.0, 1.0, g);
  Tensor w = uniform({N, K}, -1.0, 1.0, g);  // (out, in), as nn::Linear stores it
  Tensor wt = w.t().contiguous();            // (K, N) for the plain matmul
  Tensor c = empty({M, N});
  NoGradGuard no_grad;
  auto raw_linear = [&] {  // C = X W^T, exactly the call linear() makes
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
                1.0f, x.data<float>(), static_cast<int>(K), w.data<float>(), static_cast<int>(K), 0.0f,
                c.data<float>(), static_cast<int>(N));
  };
  auto raw_matmul = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
                1.0f, x.data<float>(), static_cast<int>(K), wt.data<float>(), static_cast<int>(N), 0.0f,
                c.data<float>(), static_cast<int>(N));
  };
  std::vector<Timing> t = time_interleaved({{"openblas_nt", raw_linear},
                                            {"engine_linear", [&] { (void)linear(x, w); }},
                                            {"openblas_nn", raw_matmul},
                                            {"engine_matmul", [&] { (void)matmul(x, wt); }}},
                                           opt.warmup, opt.reps, host_clock(), opt.min_time);
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const std::string shape = fmt::format("({}x{}) @ ({}x{})", M, K, K, N);
  for (size_t i = 0; i < t.size(); ++i) {
    Row r{"core", "gemm", t[i].name, shape, t[i].median_s * 1e6, t[i].runs, {}};
    r.metrics["GFLOP/s"] = flops / t[i].median_s * 1e-9;
    if (i % 2 == 1) r.metrics["vs_openblas"] = paired_speedup(t[i], t[i - 1]);
    rep.rows.push_back(r);
  }
}

void bench_recurrent_gemm(Report& rep, const CoreOptions& opt, int64_t B, int64_t H) {
  Generator g(2);
  Tensor h = uniform({B, H}, -1.0, 1.0, g);
  Tensor w_hh = uniform({4 * H, H}, -0.1, 0.1, g);  // (4H, H), as the LSTM stores it
  Tensor w_t = w_hh.t();                             // (H, 4H) view: gates = h W_hh^T
  Tensor gates = empty({B, 4 * H});
  auto& be = kernels::backend(kCPU);
  const auto prepared = be.prepare_rhs(w_t);
  std::vector<Timing> t = time_interleaved(
      {{"openblas", [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(B), static_cast<int>(4 * H), static_cast<int>(H),
                      1.0f, h.data<float>(), static_cast<int>(H), w_hh.data<float>(), static_cast<int>(H), 0.0f,
                      gates.data<float>(), static_cast<int>(4 * H));
        }},
       {"engine_prepared", [&] { be.matmul_prepared(gates, h, w_t, prepared.get(), false); }}},
      opt.warmup, opt.reps, host_clock(), opt.min_time);
  const double flops = 2.0 * static_cast<double>(B) * static_cast<double>(H) * static_cast<double>(4 * H);
  const std::string shape = fmt::format("({}x{}) @ ({}x{})", B, H, H, 4 * H);
  for (size_t i = 0; i < t.size(); ++i) {
    Row r{"core", "recurrent_gemm", t[i].name, shape, t[i].median_s * 1e6, t[i].runs, {}};
    r.metrics["GFLOP/s"] = flops / t[i].median_s * 1e-9;
    if (i == 1) r.metrics["vs_openblas"] = paired_speedup(t[1], t[0]);
    rep.rows.push_back(r);
  }
}

void bench_tiny_ops(Report& rep, const CoreOptions& opt) {
  Tensor a = full({1}, 0.5), b = full({1}, -1.25);
  a.requires_grad_(true);
  b.requires_grad_(true);
  constexpr int kInner = 2000;  // ops per sample: a sample of one op would time the clock
  auto loop = [&](auto&& body) {
    return [&, body] {
      for (int i = 0; i < kInner; ++i) body();
    };
  };
  std::vector<Timing> t = time_interleaved(
      {{"add+backward", loop([&] { add(a, b).backward(); })},
       {"mul+backward", loop([&] { mul(a, b).backward(); })},
       {"tanh+backward", loop([&] { tanh(a).backward(); })},
       {"add_forward_only", loop([&] { (void)add(a, b); })},
       {"add_no_grad", loop([&] {
          NoGradGuard g;
          (void)add(a, b);
        })}},
      opt.warmup, opt.reps, host_clock(), opt.min_time);
  for (const Timing& x : t) {
    Row r{"core", "tiny_op", x.name, "[1]", x.median_s * 1e6 / kInner, x.runs, {}};
    rep.rows.push_back(r);
  }
  rep.notes.push_back("tiny_op times are per op (forward + backward where named), averaged over 2000 calls per sample");
}

}  // namespace

void run_core(Report& rep, const CoreOptions& opt) {
  bench_gemm(rep, opt, 576, 512, 10000);
  bench_recurrent_gemm(rep, opt, 32, 256);
  bench_recurrent_gemm(rep, opt, 128, 256);
  bench_tiny_ops(rep, opt);
}

}  // namespace attn::bench
