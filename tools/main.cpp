// The `attn` command line: one binary, one subcommand per job (tools/*_command.cpp).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <string>

#include "core/error.h"
#include "tools/commands.h"

namespace {

// CLI11 answers `attn trian ...` with "A subcommand is required"; name the word and the commands.
std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return {};
  const std::string word = argv[1];
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == word) return {};
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  return fmt::format("unknown command '{}' (the commands are {}; attn --help)", word, names);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"attn: attention seq2seq translators on a from-scratch CUDA/CPU engine"};
  app.require_subcommand(1);
  attn::cli::add_bench_command(app);
  attn::cli::add_bleu_command(app);
  attn::cli::add_train_command(app);
  attn::cli::add_eval_command(app);
  attn::cli::add_translate_command(app);
  attn::cli::add_demo_command(app);
  if (const std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
    fmt::print(stderr, "error: {}\n", unknown);
    return 2;
  }
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
