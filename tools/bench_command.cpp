// `attn bench ...`: the benchmark suites, as a table or as JSON.
#include <cstdio>

#include <fmt/core.h>
#include <omp.h>

#include "kernels/backend.h"
#include "tools/bench/suites.h"
#include "tools/commands.h"

namespace attn::cli {

Device resolve_device(const std::string& name) {
  if (name == "auto") return kernels::has_backend(DeviceType::CUDA) ? kCUDA : kCPU;
  Device d = Device::parse(name);
  if (d.is_cuda()) {
    ATTN_CHECK(kernels::has_backend(DeviceType::CUDA), DeviceError, "--device {}: {}", name,
               kernels::backend_unavailable_reason(DeviceType::CUDA));
  }
  return d;
}

namespace {

std::string describe(Device d) {
  if (d.is_cpu()) return fmt::format("cpu ({} OpenMP threads)", omp_get_max_threads());
  return d.str();
}

// Prints the report; a failed correctness check fails the command after it (status 1).
void emit(const bench::Report& rep, bool json) {
  if (json)
    fmt::print("{}\n", rep.json());
  else
    rep.print_table();
  if (rep.check_failed) {
    std::fflush(stdout);  // the report first, where both streams go to one log
    fmt::print(stderr, "error: a variant gave a wrong result before timing (see the notes)\n");
    throw ExitCode{1};
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Measure the engine and its kernels");
  bench->require_subcommand(1);
  static bool json = false;
  static bench::CoreOptions core_opt;
  static bench::BackendOptions backend_opt;
  static std::string device = "auto";

  auto* core = bench->add_subcommand("core", "GEMM through the engine vs raw OpenBLAS; the fixed cost of a tiny op (CPU)");
  core->add_flag("--json", json, "Print JSON instead of a table");
  core->add_option("--reps", core_opt.reps, "Timed runs per variant, at least (fast ones get more)")->check(positive());
  core->add_option("--min-time", core_opt.min_time, "Seconds of timed runs per comparison, about")->check(finite_non_negative())->capture_default_str();
  core->add_option("--warmup", core_opt.warmup, "Untimed runs per variant first")->check(CLI::Range(0, 1000000));
  core->callback([] {
    bench::Report rep;
    rep.device = describe(kCPU);
    bench::run_core(rep, core_opt);
    emit(rep, json);
  });

  static bench::KernelOptions kernel_opt;
  static std::vector<std::string> shapes;
  auto* kern = bench->add_subcommand("kernels", "Fused kernels vs composed (and cuDNN, and the CPU twin): time, GB/s, GFLOP/s, % roofline");
  kern->add_flag("--json", json, "Print JSON instead of a table");
  kern->add_option("--device", device, "auto | cpu | cuda")->capture_default_str();
  kern->add_option("--shape", shapes, "T1 | T2 | L | B=..,S=..,H=..[,V=..][,P=0|1] (repeatable; default T1 T2, and L on a GPU; P=0: no padding)");
  kern->add_option("--kernel", kernel_opt.only, "Only kernels whose name contains this (attention, lstm, softmax_nll)");
  kern->add_option("--input-sets", kernel_opt.input_sets,
                   "Input sets alternated between calls (the L2 is flushed before each call in any case)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  kern->add_option("--reps", kernel_opt.reps, "Timed runs per variant, at least (fast ones get more)")->check(positive());
  kern->add_option("--min-time", kernel_opt.min_time, "Seconds of timed runs per comparison, about")->check(finite_non_negative())->capture_default_str();
  kern->add_option("--warmup", kernel_opt.warmup, "Untimed runs per variant first")->check(CLI::Range(0, 1000000));
  kern->callback([] {
    kernel_opt.device = resolve_device(device);
    kernel_opt.shapes = bench::parse_kernel_shapes(shapes, kernel_opt.device);
    bench::Report rep;
    rep.device = describe(kernel_opt.device);
    bench::run_kernels(rep, kernel_opt);
    emit(rep, json);
  });

  auto* backend = bench->add_subcommand("backend", "Elementwise, reduction and GEMM kernels vs the device's copy bandwidth and BLAS");
  backend->add_flag("--json", json, "Print JSON instead of a table");
  backend->add_option("--device", device, "auto | cpu | cuda")->capture_default_str();
  backend->add_option("--megabytes", backend_opt.megabytes, "Size of each tensor")->check(positive())->capture_default_str();
  backend->add_option("--reps", backend_opt.reps, "Timed runs per variant, at least (fast ones get more)")->check(positive());
  backend->add_option("--min-time", backend_opt.min_time, "Seconds of timed runs per comparison, about")->check(finite_non_negative())->capture_default_str();
  backend->add_option("--warmup", backend_opt.warmup, "Untimed runs per variant first")->check(CLI::Range(0, 1000000));
  backend->callback([] {
    backend_opt.device = resolve_device(device);
    bench::Report rep;
    rep.device = describe(backend_opt.device);
    bench::run_backend(rep, backend_opt);
    emit(rep, json);
  });
}

}  // namespace attn::cli
