// The benchmark suites of `attn bench`.
#pragma once

#include "tools/bench/report.h"

namespace attn::bench {

struct CoreOptions {
  int warmup = 3;
  int reps = 15;
};

void run_core(Report& rep, const CoreOptions& opt);

}  // namespace attn::bench
