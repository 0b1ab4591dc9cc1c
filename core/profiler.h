// Stage timing for `attn train --profile`: code marks stages with PROFILE_STAGE("name"); when
// profiling is on, each stage waits for the device before and after (so GPU time lands in the
// stage that queued it) and its wall time is summed. Off by default: then a stage costs one
// branch.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/device.h"

namespace attn {

class Profiler {
 public:
  static Profiler& instance();
  void enable(Device device) {
    enabled_ = true;
    device_ = device;
  }
  void disable() { enabled_ = false; }
  void resume() { enabled_ = true; }  // on the device enable() named
  bool enabled() const { return enabled_; }
  void add(const std::string& stage, double seconds) {
    auto& e = totals_[stage];
    e.first += seconds;
    e.second += 1;
  }
  // A part of a stage (the backward's time per autograd node type): reported under the stage,
  // not added to the total a second time.
  void add_detail(const std::string& stage, std::string_view part, double seconds) {
    auto& e = details_[stage][std::string(part)];
    e.first += seconds;
    e.second += 1;
  }
  void sync() const;
  void reset() {
    totals_.clear();
    details_.clear();
  }
  // stage -> (seconds, calls), in name order
  const std::map<std::string, std::pair<double, int64_t>>& totals() const { return totals_; }
  // stage -> part -> (seconds, calls)
  const std::map<std::string, std::map<std::string, std::pair<double, int64_t>>>& details() const { return details_; }

 private:
  bool enabled_ = false;
  Device device_ = kCPU;
  std::map<std::string, std::pair<double, int64_t>> totals_;
  std::map<std::string, std::map<std::string, std::pair<double, int64_t>>> details_;
};

// Profiling off for a scope (validation inside a profiled training run), back on after.
class ProfilerPause {
 public:
  ProfilerPause() : was_(Profiler::instance().enabled()) { Profiler::instance().disable(); }
  ~ProfilerPause() {
    if (was_) Profiler::instance().resume();
  }
  ProfilerPause(const ProfilerPause&) = delete;
  ProfilerPause& operator=(const ProfilerPause&) = delete;

 private:
  bool was_;
};

class ProfileStage {
 public:
  explicit ProfileStage(const char* name) : name_(name) {
    Profiler& p = Profiler::instance();
    if (!p.enabled()) return;
    active_ = true;
    p.sync();
    start_ = std::chrono::steady_clock::now();
  }
  ~ProfileStage() {
    if (!active_) return;
    Profiler& p = Profiler::instance();
    p.sync();
    p.add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ProfileStage(const ProfileStage&) = delete;
  ProfileStage& operator=(const ProfileStage&) = delete;

 private:
  const char* name_;
  bool active_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace attn

#define ATTN_PROFILE_CONCAT2(a, b) a##b
#define ATTN_PROFILE_CONCAT(a, b) ATTN_PROFILE_CONCAT2(a, b)
#define PROFILE_STAGE(name) ::attn::ProfileStage ATTN_PROFILE_CONCAT(attn_profile_stage_, __LINE__)(name)
