// The `attn bench` tool: the timing harness (interleaved rounds, ratios taken within a round) and
// the kernel profiler end to end on a tiny shape (every kernel and variant present, each variant
// checked against the CPU twin before it is timed).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/ops/fused.h"
#include "core/ops/ops.h"
#include "tools/bench/check.h"
#include "tools/bench/harness.h"
#include "tests/shell_util.h"

namespace attn::test {
namespace {

using namespace attn::bench;

Timing with_samples(std::vector<double> s) { return summarize("x", std::move(s)); }

TEST(BenchHarness, SpeedupIsTakenWithinRounds) {
  // The machine slows down 3x for the last two rounds: b is 2x slower than a in every round, but
  // the ratio of the two medians says 6x.
  const Timing a = with_samples({1, 1, 1, 3, 3}), b = with_samples({2, 2, 6, 6, 6});
  EXPECT_DOUBLE_EQ(b.median_s / a.median_s, 6.0);
  EXPECT_DOUBLE_EQ(paired_speedup(a, b), 2.0);
  EXPECT_DOUBLE_EQ(paired_speedup(b, a), 0.5);
  EXPECT_EQ(a.samples.front(), 1.0);  // round order kept, not sorted
  EXPECT_EQ(a.samples.back(), 3.0);
}

TEST(BenchHarness, MedianOfAnEvenCountIsTheMeanOfTheMiddleTwo) {
  // (it was the upper middle value: the slower of two runs, and an asymmetric paired ratio)
  EXPECT_DOUBLE_EQ(with_samples({1, 2, 3, 10}).median_s, 2.5);
  EXPECT_DOUBLE_EQ(with_samples({3, 1}).median_s, 2.0);
  EXPECT_DOUBLE_EQ(with_samples({5, 1, 3}).median_s, 3.0);
  const Timing a = with_samples({1, 1}), b = with_samples({2, 4});
  EXPECT_DOUBLE_EQ(paired_speedup(a, b), 3.0);
  EXPECT_DOUBLE_EQ(paired_speedup(b, a), 0.375);
}

// The check before timing: a variant whose result is wrong only in NaNs, only without autograd
// (the path the forward rows time), or with an output missing fails it; a right one passes.
TEST(BenchCheck, NaNsMissingOutputsAndTheNoGradPathFailTheCheck) {
  Generator g(5);
  const std::vector<Tensor> in = {uniform({3, 4}, -1.0, 1.0, g), uniform({3, 5, 4}, -1.0, 1.0, g),
                                  from_vector(std::vector<int64_t>{5, 2, 4}, Shape{3})};
  auto dot = [](const std::vector<Tensor>& x) {
    auto o = dot_attention(x[0], x[1], x[2]);
    return std::vector<Tensor>{o.context, o.weights};
  };
  const std::vector<Tensor> R = {uniform({3, 4}, -1.0, 1.0, g), uniform({3, 5}, -1.0, 1.0, g)};
  const std::vector<Tensor> ref = outputs_and_grads(dot, in, R);
  EXPECT_LT(check_variant(dot, in, R, ref), 1e-6);
  auto nan_context = [&](const std::vector<Tensor>& x) {
    std::vector<Tensor> o = dot(x);
    o[0] = mul(o[0], std::nan(""));
    return o;
  };
  EXPECT_EQ(check_variant(nan_context, in, R, ref), INFINITY);  // std::max(0, NaN) dropped it: err 0
  auto wrong_without_grad = [&](const std::vector<Tensor>& x) {
    std::vector<Tensor> o = dot(x);
    if (!GradMode::is_enabled()) o[0] = mul(o[0], 2.0);
    return o;
  };
  EXPECT_GT(check_variant(wrong_without_grad, in, R, ref), 0.5);
  auto context_only = [&](const std::vector<Tensor>& x) { return std::vector<Tensor>{dot(x)[0]}; };
  EXPECT_EQ(check_variant(context_only, in, {R[0]}, ref), INFINITY);  // fewer tensors than the reference
  auto scaled = [&](const std::vector<Tensor>& x) {
    std::vector<Tensor> o = dot(x);
    o[1] = mul(o[1], 1.01);
    return o;
  };
  const double e = check_variant(scaled, in, R, ref);
  EXPECT_GT(e, 1e-3);
  EXPECT_LT(e, 0.1);
}

TEST(BenchHarness, TheUntimedHookRunsBeforeEveryCall) {
  // (the kernel profiler flushes the L2 there): once before each call, warm-up included, and
  // never inside the timed region
  int hooks = 0, calls = 0;
  bool hook_before_call = true;
  const std::vector<Timing> t = time_interleaved(
      {{"a", [&] { hook_before_call = hook_before_call && hooks == calls + 1; ++calls; }},
       {"b", [&] { hook_before_call = hook_before_call && hooks == calls + 1; ++calls; }}},
      /*warmup=*/1, /*reps=*/20, host_clock(), /*min_seconds=*/0.0, 20000, [&] { ++hooks; });
  EXPECT_EQ(calls, 2 * 21);
  EXPECT_EQ(hooks, calls);
  EXPECT_TRUE(hook_before_call);
}

TEST(BenchHarness, TimedCallsAddUpToTheMinimumTime) {
  // a variant whose warm-up calls are slow (a first-call effect, or the machine's slow phase):
  // the round count estimated from the warm-up's mean gave a few rounds, 1 ms of timed work for
  // 50 ms asked
  int calls = 0;
  auto busy = [](double seconds) {
    const double t0 = now_s();
    while (now_s() - t0 < seconds) {
    }
  };
  const std::vector<Timing> t =
      time_interleaved({{"a", [&] { busy(calls++ < 2 ? 0.01 : 0.0002); }}}, /*warmup=*/2, /*reps=*/3, host_clock(), /*min_seconds=*/0.05);
  double timed = 0;
  for (double x : t[0].samples) timed += x;
  EXPECT_GE(timed, 0.05);
  EXPECT_GE(t[0].runs, 3);
  EXPECT_LE(t[0].runs, 251);  // and not far past it: each call takes at least 0.2 ms
}

TEST(BenchHarness, EveryRoundRunsEachVariantOnceInARandomOrder) {
  std::string order;
  int calls[3] = {0, 0, 0};
  const std::vector<Timing> t = time_interleaved({{"a", [&] { order += 'a'; ++calls[0]; }}, {"b", [&] { order += 'b'; ++calls[1]; }},
                                                  {"c", [&] { order += 'c'; ++calls[2]; }}},
                                                 /*warmup=*/2, /*reps=*/300, host_clock(), /*min_seconds=*/0.0);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "a");
  EXPECT_EQ(t[2].name, "c");
  EXPECT_EQ(t[0].runs, 300);
  EXPECT_EQ(t[1].runs, 300);
  EXPECT_EQ(t[0].samples.size(), 300u);
  for (int c : calls) EXPECT_EQ(c, 302);  // 2 warm-up rounds + 300 timed
  ASSERT_EQ(order.size(), 3u * 302);
  // each round holds every variant once; over the rounds every variant follows every other
  // about equally often (a fixed or rotated order made one predecessor dominate)
  int follows[3][3] = {};
  for (size_t r = 0; r < 302; ++r) {
    std::string round = order.substr(3 * r, 3);
    std::sort(round.begin(), round.end());
    EXPECT_EQ(round, "abc") << "round " << r;
  }
  for (size_t i = 1; i < order.size(); ++i) ++follows[order[i] - 'a'][order[i - 1] - 'a'];
  for (int x = 0; x < 3; ++x) {
    for (int y = 0; y < 3; ++y) {
      if (x == y) continue;
      const int other = 3 - x - y;  // the third variant
      const double share = static_cast<double>(follows[x][y]) / (follows[x][y] + follows[x][other]);
      EXPECT_GT(share, 0.3) << static_cast<char>('a' + x) << " after " << static_cast<char>('a' + y);
    }
  }
}

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

// `attn bench backend` on the CPU: the reference is the faster of the two copies (memcpy's
// non-temporal stores were slower here than plain stores: ops reached 110-150% of it), and
// every pct_copy is against it.
TEST(Cli, BenchBackendPercentagesAreOfTheFasterCopyOfTheSameRun) {
  int status = -1;
  const std::string out = run_capture(attn_command() + " bench backend --device cpu --megabytes 1 --json --min-time 0.01 --reps 3 --warmup 1", &status);
  ASSERT_EQ(status, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  double best_copy = 0;
  std::set<std::string> seen;
  for (const auto& row : j["rows"]) {
    const std::string name = row["name"];
    seen.insert(name + "/" + row["variant"].get<std::string>());
    if (name.starts_with("copy")) best_copy = std::max(best_copy, row["metrics"]["GB/s"].get<double>());
  }
  ASSERT_TRUE(seen.count("copy/cpu") && seen.count("copy_by_stores/cpu")) << out;
  ASSERT_GT(best_copy, 0.0);
  for (const auto& row : j["rows"]) {
    const auto& m = row["metrics"];
    if (!m.contains("pct_copy")) continue;
    const std::string name = row["name"];
    EXPECT_NEAR(m["pct_copy"].get<double>(), 100.0 * m["GB/s"].get<double>() / best_copy, 1e-6) << name;
    if (name.starts_with("copy")) {
      EXPECT_LE(m["pct_copy"].get<double>(), 100.0 + 1e-6) << name;
    }
  }
  EXPECT_TRUE(seen.count("gemm/openblas") && seen.count("gemm/engine")) << out;
}

TEST(Cli, BenchKernelsTimesEveryVariantAfterCheckingIt) {
  const std::string attn = attn_command();
  int status = -1;
  const std::string out = run_capture(attn + " bench kernels --device cpu --shape B=3,S=5,H=12,V=40 --json --min-time 0.01 --reps 3 --warmup 1",
                                      &status);
  ASSERT_EQ(status, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  for (const auto& note : j["notes"]) EXPECT_EQ(note.get<std::string>().find("CHECK FAILED"), std::string::npos) << note;
  EXPECT_FALSE(j["check_failed"].get<bool>());
  std::set<std::string> seen;
  for (const auto& row : j["rows"]) {
    const std::string name = row["name"], variant = row["variant"], shape = row["shape"];
    seen.insert(name + "/" + variant + "/" + shape);
    EXPECT_GT(row["median_us"].get<double>(), 0.0) << name << " " << variant;
    EXPECT_GE(row["runs"].get<int>(), 3);
    const auto& m = row["metrics"];
    // every variant is checked, the fused one (the CPU twin) against the composed op in float64
    ASSERT_TRUE(m.contains("check_err")) << name << " " << variant;
    EXPECT_LT(m["check_err"].get<double>(), 1e-4) << name << " " << variant << " " << shape;
    if (shape.ends_with(" fwd") && (name == "attention_dot" || name == "attention_additive")) {
      // the arithmetic of the N = 14 real positions (lengths 5, 4, 5), not of B*S = 15
      const double flops = m["GFLOP/s"].get<double>() * row["median_us"].get<double>() * 1e3;
      const double want = (name == "attention_dot" ? 4.0 : 6.0) * 14 * 12 + 5.0 * 14;
      EXPECT_NEAR(flops, want, 1e-3 * want) << name << " " << variant;
    }
    if (variant == "composed") {
      EXPECT_FALSE(m.contains("x_vs_composed"));
    } else {
      ASSERT_TRUE(m.contains("x_vs_composed")) << name;
      EXPECT_GT(m["x_vs_composed"].get<double>(), 0.0);
    }
  }
  for (const char* kernel : {"attention_additive", "attention_dot", "lstm_layer", "softmax_nll"})
    for (const char* variant : {"fused", "composed"})
      for (const char* pass : {"fwd", "fwd+bwd"})
        EXPECT_TRUE(seen.count(std::string(kernel) + "/" + variant + "/B=3,S=5,H=12,V=40 " + pass)) << kernel << " " << variant << " " << pass;
}

TEST(Cli, BenchKernelsTakesUnpaddedShapesAndRefusesABadPaddingFlag) {
  const std::string attn = attn_command();
  const std::string base = attn + " bench kernels --device cpu --kernel lstm --json --min-time 0.01 --reps 3 --warmup 1";
  int status = -1;
  const std::string out = run_capture(base + " --shape B=4,S=6,H=8,P=0", &status);
  ASSERT_EQ(status, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  int rows = 0;
  for (const auto& row : j["rows"]) {
    EXPECT_EQ(row["shape"].get<std::string>().rfind("B=4,S=6,H=8,P=0 ", 0), 0u) << row["shape"];
    if (row["variant"] == "composed") {
      EXPECT_LT(row["metrics"]["check_err"].get<double>(), 1e-4);
    }
    if (row["shape"].get<std::string>().ends_with(" fwd")) {
      // The forward's arithmetic over all B*S = 24 positions (none padded): 2 GEMMs of
      // 2 * 24 * 8 * 32 flops each plus 20 flops per state element.
      const double flops = row["metrics"]["GFLOP/s"].get<double>() * row["median_us"].get<double>() * 1e3;
      const double want = 2.0 * 2 * 24 * 8 * 32 + 20.0 * 24 * 8;  // 21 positions with padding: 12% less
      EXPECT_NEAR(flops, want, 1e-3 * want) << row["variant"];
    }
    ++rows;
  }
  EXPECT_EQ(rows, 4);  // fused and composed, forward and forward + backward
  const std::string bad = run_capture(base + " --shape B=4,S=6,H=8,P=2 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.find("P is 0 (no padding) or 1"), std::string::npos) << bad;
  // numbers read whole (stoll read "1e3" as 1), sizes that fit, and a finite --min-time (a NaN
  // made the timing loop run on)
  for (const auto& [args, mention] : std::vector<std::pair<std::string, std::string>>{
           {" --shape B=2,S=3,H=1e3", "'1e3' is not a whole number"},
           {" --shape B=2x,S=3,H=4", "'2x' is not a whole number"},
           {" --shape B=4294967296,S=4294967296,H=4", "too large"},
           // a blank before the number, a trailing comma and a key given twice were accepted; a
           // number out of range was "not a whole number"
           {" --shape 'B= 2,S=3,H=4'", "' 2' is not a whole number"},
           {" --shape B=2,S=3,H=4,", "expected T1, T2, L or"},
           {" --shape B=2,S=3,H=4,B=5", "B is given twice"},
           {" --shape B=2,S=99999999999999999999,H=4", "99999999999999999999 is out of range"}}) {
    const std::string text = run_capture(base + args + " 2>&1", &status);
    EXPECT_NE(status, 0) << args;
    EXPECT_NE(text.find(mention), std::string::npos) << args << ": " << text;
  }
  const std::string none = run_capture(attn + " bench kernels --device cpu --shape T1 --kernel nosuchkernel 2>&1", &status);  // was an empty table, status 0
  EXPECT_NE(status, 0);
  EXPECT_NE(none.find("no kernel has this in its name"), std::string::npos) << none;
  const std::string nan_time = run_capture(attn + " bench core --reps 3 --min-time nan 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(nan_time.find("--min-time"), std::string::npos) << nan_time;
}

// At H = 1 float32 itself is 1e-4 from float64 on the attention's gradients (cancellations):
// the check's tolerance follows the composed op's own float32 error there, and every variant is
// timed (a fixed 1e-4 refused the composed op: "CHECK FAILED (relative error 0.000101)").
TEST(BenchCli, IllConditionedTinyShapesAreCheckedToWhatFloat32CanDo) {
  int status = 0;
  const std::string out = run_capture(attn_command() + " bench kernels --device cpu --shape B=1,S=2,H=1 --kernel attention_additive "
                                                       "--json --min-time 0.01 --reps 3 --warmup 1 2>&1",
                                      &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out.find("CHECK FAILED"), std::string::npos) << out;
  EXPECT_NE(out.find("ill-conditioned"), std::string::npos) << out;
}

}  // namespace
}  // namespace attn::test
