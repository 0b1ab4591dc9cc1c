// The benchmark suites of `attn bench`.
#pragma once

#include <string>
#include <vector>

#include "core/device.h"
#include "tools/bench/report.h"

namespace attn::bench {

// reps / warmup are minimums: fast variants get more runs, up to about min_time seconds each
// comparison (tools/bench/harness.h).
struct CoreOptions {
  int warmup = 3;
  int reps = 15;
  double min_time = 0.25;
};

void run_core(Report& rep, const CoreOptions& opt);

struct BackendOptions {
  Device device = kCPU;
  int64_t megabytes = 64;
  int warmup = 3;
  int reps = 20;
  double min_time = 0.25;
};

void run_backend(Report& rep, const BackendOptions& opt);

struct KernelShape {
  std::string name;
  int64_t B = 0, S = 0, H = 0, V = 10000;
  bool padded = true;  // lengths S down to ~S/2 (P=1), or all S (P=0)
};

struct KernelOptions {
  Device device = kCPU;
  std::vector<KernelShape> shapes;
  std::string only;  // run only kernels whose name contains this
  int input_sets = 2;  // input sets alternated between calls
  int warmup = 2;
  int reps = 15;
  double min_time = 0.25;
};

// "T1", "T2", "L" or "B=..,S=..,H=..[,V=..]"; none given: T1, T2 (and L on a GPU).
std::vector<KernelShape> parse_kernel_shapes(const std::vector<std::string>& specs, Device device);
void run_kernels(Report& rep, const KernelOptions& opt);

}  // namespace attn::bench
