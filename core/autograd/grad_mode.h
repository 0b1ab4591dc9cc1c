// Grad mode: when off (inside a NoGradGuard), ops record no graph. Per thread, like PyTorch.
#pragma once

namespace attn {

class GradMode {
 public:
  static bool is_enabled() { return enabled_; }
  static void set_enabled(bool on) { enabled_ = on; }

 private:
  static thread_local bool enabled_;
};

// RAII scope that sets grad mode and restores the previous one on exit.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(on); }
  ~GradModeGuard() { GradMode::set_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

// Grad mode off: `{ NoGradGuard g; ... }` (torch.no_grad()).
struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}
};

// Grad mode on (torch.enable_grad()): a node's backward, which runs in no-grad mode, that
// recomputes its forward to run a backward of its own (as checkpointing does).
struct EnableGradGuard : GradModeGuard {
  EnableGradGuard() : GradModeGuard(true) {}
};

}  // namespace attn
