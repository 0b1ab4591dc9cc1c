// The benchmark harness shared by every `attn bench` suite: warm up, time many runs, report the
// median. Variants that are compared are timed interleaved (A, B, A, B, ...) so that a noisy,
// shared machine slows both alike, and the ratio is taken between medians of the same run.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"

namespace attn::bench {

struct Timing {
  std::string name;
  double median_s = 0, min_s = 0, max_s = 0;
  int runs = 0;
  std::vector<double> samples;  // in the order of the rounds (time_interleaved: one per round)
};

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The middle value; the mean of the two middle ones for an even count.
inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline Timing summarize(std::string name, std::vector<double> samples) {
  Timing t;
  t.name = std::move(name);
  t.samples = samples;
  std::sort(samples.begin(), samples.end());
  t.runs = static_cast<int>(samples.size());
  t.min_s = samples.front();
  t.max_s = samples.back();
  t.median_s = median_of(samples);
  return t;
}

// How many times faster `a` is than `b`: the median over rounds of b's time / a's time in the
// same round. On a machine whose speed changes by 2-3x from one second to the next, the ratio
// of two medians mixes phases; a ratio within one round (microseconds apart) does not.
inline double paired_speedup(const Timing& a, const Timing& b) {
  std::vector<double> r;
  for (size_t i = 0; i < a.samples.size() && i < b.samples.size(); ++i)
    if (a.samples[i] > 0) r.push_back(b.samples[i] / a.samples[i]);
  return median_of(r);
}

// Where time is read: the host clock for CPU work, device events for GPU work (which time the
// kernels on the stream, not the launch overhead around them).
struct Clock {
  std::function<void()> start;
  std::function<double()> stop;  // seconds since start, after the work has finished
};

inline Clock host_clock() {
  auto t0 = std::make_shared<double>(0.0);
  return {[t0] { *t0 = now_s(); }, [t0] { return now_s() - *t0; }};
}

// Events on the engine's stream of a CUDA device (tools/bench/cuda_clock.cpp); throws without CUDA.
Clock cuda_clock(Device device);

using Variants = std::vector<std::pair<std::string, std::function<void()>>>;

// Times each variant, interleaved, after warm-up rounds, and returns the medians. A round is
// one call of every variant, in a random order (a fixed seed): here a variant run right after a
// heavy one (the composed ops) ran up to 2.5x slower in the machine's slow phase, so a fixed
// order charged that to whichever variant came next, and so did a rotated one (A B C, B C A,
// C A B: A follows C in two rounds of three). There are at least `reps` timed rounds, and more
// for fast variants: until the timed calls add up to `min_seconds` (at most `max_reps` rounds),
// so that a microsecond kernel gets thousands of samples and not twenty. Warm-up likewise runs at least
// `warmup` rounds and at least a tenth of that time (caches, allocator pools, sleeping threads).
// `before_each`, when given, runs before every call, untimed (the kernel profiler flushes the L2
// there).
inline std::vector<Timing> time_interleaved(const Variants& variants, int warmup, int reps,
                                            const Clock& clock = host_clock(), double min_seconds = 0.25,
                                            int max_reps = 20000, const std::function<void()>& before_each = {}) {
  std::vector<size_t> order(variants.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937 shuffle_rng(12345);  // fixed: the same orders in every run
  auto round = [&](std::vector<std::vector<double>>* samples) {
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    double total = 0;
    for (size_t i : order) {
      if (before_each) before_each();
      clock.start();
      variants[i].second();
      const double t = clock.stop();
      total += t;
      if (samples) (*samples)[i].push_back(t);
    }
    return total;
  };
  double warm_time = 0;
  int warm_rounds = 0;
  while (warm_rounds < warmup || (warm_time < 0.1 * min_seconds && warm_rounds < max_reps)) {
    warm_time += round(nullptr);
    ++warm_rounds;
  }
  // Rounds until the timed calls add up to min_seconds (a count estimated from the warm-up's
  // mean fell short when outliers inflated that mean: 57 ms of timed work for 0.25 s asked).
  std::vector<std::vector<double>> samples(variants.size());
  double timed = 0;
  for (int r = 0; r < reps || (timed < min_seconds && r < max_reps); ++r) timed += round(&samples);
  std::vector<Timing> out;
  for (size_t i = 0; i < variants.size(); ++i) out.push_back(summarize(variants[i].first, samples[i]));
  return out;
}

}  // namespace attn::bench
