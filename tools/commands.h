// The subcommands of `attn`, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "core/device.h"

namespace attn::cli {

void add_bench_command(CLI::App& app);
void add_bleu_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_translate_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_demo_command(CLI::App& app);

// Thrown by a command to end the program with this exit status after cleaning up.
struct ExitCode {
  int code;
};

// "auto" (a GPU when one answers, else the CPU), "cpu", "cuda", "cuda:N".
Device resolve_device(const std::string& name);

}  // namespace attn::cli
