// Optimizers with PyTorch's update formulas (torch.optim.SGD, Adam, AdamW) and gradient-norm
// clipping (torch.nn.utils.clip_grad_norm_). Each update is one fused backend kernel per
// parameter. Parameters without a gradient are skipped, as in PyTorch.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/backend.h"

namespace attn::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  // One update. The gradients are used times grad_scale (clip_coefficient's result: clipping
  // fused into the update instead of a pass that rescales every gradient first).
  virtual void step(double grad_scale) = 0;
  void step() { step(1.0); }
  void zero_grad();  // drops the gradients (set to none)
  const std::vector<Tensor>& params() const { return params_; }
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
  // Every state tensor with a stable name ("<param index>.<slot>"), for checkpoints.
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  // Restores a state saved by state(). Strict: a slot whose shape or dtype is not its
  // parameter's, a step count that is not one int64 >= 0, a missing slot or a name the optimizer
  // does not know raise ShapeError / DTypeError / ValueError naming the slot, and leave the state
  // as it was.
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state) = 0;

 protected:
  std::vector<Tensor> params_;
};

struct SgdOptions {
  double lr = 0.01, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};

class SGD final : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SgdOptions opt);
  using Optimizer::step;
  void step(double grad_scale) override;
  double lr() const override { return opt_.lr; }
  void set_lr(double lr) override { opt_.lr = lr; }
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;

 private:
  SgdOptions opt_;
  std::vector<Tensor> momentum_;  // undefined until a param's first step
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // true: AdamW
};

class Adam final : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions opt);
  using Optimizer::step;
  void step(double grad_scale) override;
  double lr() const override { return opt_.lr; }
  void set_lr(double lr) override { opt_.lr = lr; }
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;
  int64_t steps(size_t param) const { return steps_[param]; }

 private:
  AdamOptions opt_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  std::vector<int64_t> steps_;
};

// Scales all gradients so that their joint L2 norm is at most max_norm; returns the norm before
// clipping. Same formula as PyTorch: coef = min(1, max_norm / (norm + 1e-6)); a NaN norm makes
// every gradient NaN, as there.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// The same clipping without touching the gradients: the joint L2 norm (out) and the factor to
// apply, min(1, max_norm / (norm + 1e-6)), for Optimizer::step(grad_scale).
double clip_coefficient(const std::vector<Tensor>& params, double max_norm, double* norm = nullptr);

}  // namespace attn::optim
