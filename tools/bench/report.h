// Benchmark results: rows printed as an aligned table (default) or as JSON (--json).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace attn::bench {

struct Row {
  std::string suite;    // "core", "kernels", ...
  std::string name;     // what is measured ("gemm", "tiny_op.add")
  std::string variant;  // "engine", "openblas", "fused", "composed", ...
  std::string shape;    // human-readable shape
  double median_us = 0;
  int runs = 0;
  std::map<std::string, double> metrics;  // GFLOP/s, GB/s, ratio, ...
};

struct Report {
  std::string device;   // where it ran
  std::vector<Row> rows;
  std::vector<std::string> notes;
  bool check_failed = false;  // a variant gave a wrong result (named in notes): the command fails
  void print_table() const;
  std::string json() const;
};

}  // namespace attn::bench
