// The benchmark suites of `attn bench`.
#pragma once

#include "core/device.h"
#include "tools/bench/report.h"

namespace attn::bench {

struct CoreOptions {
  int warmup = 3;
  int reps = 15;
};

void run_core(Report& rep, const CoreOptions& opt);

struct BackendOptions {
  Device device = kCPU;
  int64_t megabytes = 64;
  int warmup = 3;
  int reps = 20;
};

void run_backend(Report& rep, const BackendOptions& opt);

}  // namespace attn::bench
