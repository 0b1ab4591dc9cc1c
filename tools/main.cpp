// The `attn` command line: one binary, one subcommand per job (tools/*_command.cpp).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"attn: attention seq2seq translators on a from-scratch CUDA/CPU engine"};
  app.require_subcommand(1);
  attn::cli::add_bench_command(app);
  attn::cli::add_bleu_command(app);
  attn::cli::add_train_command(app);
  attn::cli::add_eval_command(app);
  attn::cli::add_translate_command(app);
  attn::cli::add_demo_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const attn::cli::ExitCode& e) {
    return e.code;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
