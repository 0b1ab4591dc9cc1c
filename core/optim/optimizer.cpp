#include "core/optim/optimizer.h"

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

#include "core/autograd/grad_mode.h"
#include "core/ops/ops.h"

namespace attn::optim {

namespace {

void check_grad(const Tensor& p, const Tensor& g, size_t i) {
  ATTN_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(),
             ShapeError, "optimizer: parameter {} is {} {} on {}, its gradient {} {} on {}", i,
             p.dtype(), p.shape(), p.device(), g.dtype(), g.shape(), g.device());
  ATTN_CHECK(p.is_contiguous(), ValueError, "optimizer: parameter {} (shape {}) is not contiguous", i,
             p.shape());
}

const Tensor* find_slot(const std::vector<std::pair<std::string, Tensor>>& state, const std::string& name) {
  for (const auto& [n, t] : state) {
    if (n == name) return &t;
  }
  return nullptr;
}

// Copies a saved slot into a new state tensor (allocated like the parameter); an undefined tensor
// when the slot is absent and not required.
Tensor restore(const std::vector<std::pair<std::string, Tensor>>& state, const std::string& name, const Tensor& param,
               bool required) {
  const Tensor* saved = find_slot(state, name);
  if (!saved) {
    ATTN_CHECK(!required, ValueError, "optimizer state: slot '{}' is missing", name);
    return Tensor();
  }
  ATTN_CHECK(saved->defined() && saved->shape() == param.shape(), ShapeError,
             "optimizer state: slot '{}' has shape {}, its parameter has shape {}", name,
             saved->defined() ? saved->shape() : Shape{}, param.shape());
  ATTN_CHECK(saved->dtype() == param.dtype(), DTypeError,
             "optimizer state: slot '{}' has dtype {}, its parameter has dtype {}", name, saved->dtype(),
             param.dtype());
  Tensor slot = empty(param.shape(), {param.dtype(), param.device()});
  NoGradGuard g;
  slot.copy_(*saved);
  return slot;
}

// Every name of `state` must be "<param index>.<slot>" with an index below n and a known slot.
void check_names(const std::vector<std::pair<std::string, Tensor>>& state, size_t n,
                 std::initializer_list<const char*> slots, const char* optimizer) {
  std::vector<std::string> seen;
  for (const auto& [name, t] : state) {
    const size_t dot = name.find('.');
    bool ok = dot != std::string::npos && dot > 0 && dot < 10;
    size_t index = 0;
    for (size_t i = 0; ok && i < dot; ++i) {
      ok = name[i] >= '0' && name[i] <= '9' && !(i == 0 && name[i] == '0' && dot > 1);
      index = index * 10 + static_cast<size_t>(name[i] - '0');
    }
    ok = ok && index < n;
    bool known = false;
    for (const char* s : slots) known = known || (ok && name.compare(dot + 1, std::string::npos, s) == 0);
    ATTN_CHECK(known, ValueError,
               "optimizer state: unexpected tensor '{}' ({} with {} parameters keeps <index>.{{{}}})", name,
               optimizer, n, fmt::join(slots, ","));
    ATTN_CHECK(std::find(seen.begin(), seen.end(), name) == seen.end(), ValueError,
               "optimizer state: tensor '{}' appears twice", name);
    seen.push_back(name);
  }
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) {
  for (size_t i = 0; i < params_.size(); ++i) {
    ATTN_CHECK(params_[i].defined() && params_[i].is_leaf(), ValueError,
               "optimizer: parameter {} must be a defined leaf tensor", i);
  }
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.set_grad(Tensor());
}

// ------------------------------------------------------------------ SGD

SGD::SGD(std::vector<Tensor> params, SgdOptions opt)
    : Optimizer(std::move(params)), opt_(opt), momentum_(params_.size()) {
  ATTN_CHECK(opt.lr >= 0 && opt.momentum >= 0 && opt.weight_decay >= 0, ValueError,
             "SGD: lr {}, momentum {} and weight_decay {} must be non-negative", opt.lr, opt.momentum,
             opt.weight_decay);
  ATTN_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0), ValueError,
             "SGD: nesterov needs momentum > 0 and dampening 0");
}

void SGD::step(double grad_scale) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    check_grad(p, g, i);
    Tensor grad = g.contiguous();
    kernels::SgdConfig cfg{opt_.lr, opt_.momentum, opt_.dampening, opt_.weight_decay, grad_scale, opt_.nesterov,
                           false};
    if (opt_.momentum != 0.0 && !momentum_[i].defined()) {
      momentum_[i] = empty(p.shape(), {p.dtype(), p.device()});
      cfg.first_step = true;
    }
    kernels::dispatch("sgd", {&p, &grad}).sgd_step(p, grad, momentum_[i], cfg);
    p.storage()->bump_version();
  }
}

std::vector<std::pair<std::string, Tensor>> SGD::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < momentum_.size(); ++i) {
    if (momentum_[i].defined()) out.emplace_back(fmt::format("{}.momentum_buffer", i), momentum_[i]);
  }
  return out;
}

void SGD::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  check_names(state, params_.size(), {"momentum_buffer"}, "SGD");
  std::vector<Tensor> momentum(params_.size());  // all checked before any is replaced
  for (size_t i = 0; i < params_.size(); ++i)
    momentum[i] = restore(state, fmt::format("{}.momentum_buffer", i), params_[i], false);
  momentum_ = std::move(momentum);
}

// ------------------------------------------------------------------ Adam

Adam::Adam(std::vector<Tensor> params, AdamOptions opt)
    : Optimizer(std::move(params)), opt_(opt), exp_avg_(params_.size()), exp_avg_sq_(params_.size()),
      steps_(params_.size(), 0) {
  ATTN_CHECK(opt.lr >= 0 && opt.eps >= 0 && opt.weight_decay >= 0, ValueError,
             "Adam: lr {}, eps {} and weight_decay {} must be non-negative", opt.lr, opt.eps,
             opt.weight_decay);
  ATTN_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1, ValueError,
             "Adam: betas must be in [0, 1), got ({}, {})", opt.beta1, opt.beta2);
}

void Adam::step(double grad_scale) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    check_grad(p, g, i);
    Tensor grad = g.contiguous();
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = zeros(p.shape(), {p.dtype(), p.device()});
      exp_avg_sq_[i] = zeros(p.shape(), {p.dtype(), p.device()});
    }
    kernels::AdamConfig cfg{opt_.lr,       opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay,
                            grad_scale,    opt_.decoupled_weight_decay, ++steps_[i]};
    kernels::dispatch("adam", {&p, &grad}).adam_step(p, grad, exp_avg_[i], exp_avg_sq_[i], cfg);
    p.storage()->bump_version();
  }
}

std::vector<std::pair<std::string, Tensor>> Adam::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    out.emplace_back(fmt::format("{}.exp_avg", i), exp_avg_[i]);
    out.emplace_back(fmt::format("{}.exp_avg_sq", i), exp_avg_sq_[i]);
    out.emplace_back(fmt::format("{}.step", i),
                     from_vector(std::vector<int64_t>{steps_[i]}, Shape{}));
  }
  return out;
}

void Adam::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  check_names(state, params_.size(), {"exp_avg", "exp_avg_sq", "step"}, "Adam");
  // All checked before any is replaced: a bad state leaves the optimizer as it was.
  std::vector<Tensor> exp_avg(params_.size()), exp_avg_sq(params_.size());
  std::vector<int64_t> steps(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string step_name = fmt::format("{}.step", i);
    const Tensor* step = find_slot(state, step_name);
    exp_avg[i] = restore(state, fmt::format("{}.exp_avg", i), params_[i], step != nullptr);
    exp_avg_sq[i] = restore(state, fmt::format("{}.exp_avg_sq", i), params_[i], step != nullptr);
    if (!step) {
      ATTN_CHECK(!exp_avg[i].defined() && !exp_avg_sq[i].defined(), ValueError,
                 "optimizer state: slot '{}' is missing", step_name);
      continue;
    }
    ATTN_CHECK(step->defined() && step->dtype() == DType::Int64 && step->numel() == 1, DTypeError,
               "optimizer state: slot '{}' must be one int64, found {} {}", step_name,
               step->defined() ? dtype_name(step->dtype()) : "undefined", step->defined() ? step->shape() : Shape{});
    steps[i] = step->to(kCPU).item<int64_t>();
    ATTN_CHECK(steps[i] >= 0, ValueError, "optimizer state: slot '{}' is {} (a step count, >= 0)", step_name,
               steps[i]);
  }
  exp_avg_ = std::move(exp_avg);
  exp_avg_sq_ = std::move(exp_avg_sq);
  steps_ = std::move(steps);
}

// ------------------------------------------------------------------ clipping

double clip_coefficient(const std::vector<Tensor>& params, double max_norm, double* norm_out) {
  NoGradGuard no_grad;
  Tensor total;
  for (const Tensor& p : params) {
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (!total.defined()) total = zeros(Shape{}, {.dtype = DType::Float64, .device = g.device()});
    const Tensor gc = g.contiguous();
    kernels::dispatch("clip_grad_norm", {&total, &gc}).sum_squares(total, gc);
  }
  const double norm = total.defined() ? std::sqrt(total.item<double>()) : 0.0;
  if (norm_out) *norm_out = norm;
  // As PyTorch's clamp(max=1): a NaN norm gives a NaN factor (std::min(1.0, NaN) is 1.0, which
  // took an unclipped step with whatever was finite)
  const double coef = max_norm / (norm + 1e-6);
  return std::isnan(coef) ? coef : std::min(1.0, coef);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  double norm = 0.0;
  const double coef = clip_coefficient(params, max_norm, &norm);
  if (!(coef >= 1.0)) {  // (NaN too)
    NoGradGuard no_grad;
    for (const Tensor& p : params) {
      if (p.grad().defined()) {
        Tensor g = p.grad();
        g.mul_(coef);
      }
    }
  }
  return norm;
}

}  // namespace attn::optim
