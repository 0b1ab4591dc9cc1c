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

// An option check: the text is a whole number (strtod reads all of it) that `ok` accepts, else
// "must be <what>, got <text>" (CLI11's own PositiveNumber prints the whole range of a double).
template <typename Ok>
CLI::Validator number_check(const char* what, const char* name, Ok ok) {
  return CLI::Validator(
      [what, ok](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end == s.c_str() || *end != '\0' || !ok(v)) return std::string("must be ") + what + ", got " + s;
        return {};
      },
      name, name);
}

// A number > 0 ("--batch: must be a positive number, got 0").
inline CLI::Validator positive() {
  return number_check("a positive number", "POSITIVE", [](double v) { return v > 0; });
}

// A finite number >= 0 (a NaN or infinite --min-time made a timing loop run on).
inline CLI::Validator finite_non_negative() {
  return number_check("a finite number >= 0", "NUMBER>=0", [](double v) { return v >= 0 && std::isfinite(v); });
}

}  // namespace attn::cli
