// The `attn` command line: one binary, one subcommand per job.
//   attn bench core [--json] [--reps N]   engine overheads (GEMM, tiny ops)
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <omp.h>

#include "core/error.h"
#include "tools/bench/suites.h"

int main(int argc, char** argv) {
  CLI::App app{"attn: attention seq2seq translators on a from-scratch CUDA/CPU engine"};
  app.require_subcommand(1);

  auto* bench = app.add_subcommand("bench", "Measure the engine and its kernels");
  bench->require_subcommand(1);
  bool json = false;
  attn::bench::CoreOptions core_opt;
  auto* core = bench->add_subcommand("core", "GEMM through the engine vs raw OpenBLAS; fixed cost of a tiny op");
  core->add_flag("--json", json, "Print JSON instead of a table");
  core->add_option("--reps", core_opt.reps, "Timed runs per variant")->check(CLI::PositiveNumber);
  core->add_option("--warmup", core_opt.warmup, "Untimed runs per variant first");
  core->callback([&] {
    attn::bench::Report rep;
    rep.device = fmt::format("cpu ({} OpenMP threads)", omp_get_max_threads());
    attn::bench::run_core(rep, core_opt);
    if (json)
      fmt::print("{}\n", rep.json());
    else
      rep.print_table();
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const attn::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
