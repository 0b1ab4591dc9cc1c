#include "tools/bench/report.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

namespace attn::bench {

void Report::print_table() const {
  fmt::print("device: {}\n", device);
  size_t wn = 4, wv = 7, ws = 5;
  for (const Row& r : rows) {
    wn = std::max(wn, r.name.size());
    wv = std::max(wv, r.variant.size());
    ws = std::max(ws, r.shape.size());
  }
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}  {}\n", "name", wn, "variant", wv, "shape", ws, "median", "metrics");
  for (const Row& r : rows) {
    std::string metrics;
    for (const auto& [k, v] : r.metrics) metrics += fmt::format("{}={:.4g}  ", k, v);
    std::string t = r.median_us >= 1000 ? fmt::format("{:.3f} ms", r.median_us / 1000) : fmt::format("{:.3f} us", r.median_us);
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}  {}\n", r.name, wn, r.variant, wv, r.shape, ws, t, metrics);
  }
  for (const std::string& n : notes) fmt::print("note: {}\n", n);
}

std::string Report::json() const {
  nlohmann::json j;
  j["device"] = device;
  j["rows"] = nlohmann::json::array();
  for (const Row& r : rows) {
    nlohmann::json o{{"suite", r.suite}, {"name", r.name}, {"variant", r.variant}, {"shape", r.shape},
                     {"median_us", r.median_us}, {"runs", r.runs}};
    for (const auto& [k, v] : r.metrics) o["metrics"][k] = v;
    j["rows"].push_back(o);
  }
  j["notes"] = notes;
  j["check_failed"] = check_failed;
  return j.dump(2);
}

}  // namespace attn::bench
