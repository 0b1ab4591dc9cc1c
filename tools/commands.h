// The subcommands of `attn`, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
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

// Option check: a number > 0 ("--batch: must be a positive number, got 0"; CLI11's own
// PositiveNumber prints the whole range of a double).
inline CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end == s.c_str() || *end != '\0' || !(v > 0)) return "must be a positive number, got " + s;
        return {};
      },
      "POSITIVE", "positive");
}

// Option check: a finite number >= 0 (a NaN or infinite --min-time made a timing loop run on).
inline CLI::Validator finite_non_negative() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end == s.c_str() || *end != '\0' || !(v >= 0) || !std::isfinite(v))
          return "must be a finite number >= 0, got " + s;
        return {};
      },
      "NUMBER>=0", "finite_non_negative");
}

}  // namespace attn::cli
