#include "core/nn/module.h"

#include "core/autograd/grad_mode.h"

namespace attn::nn {

void Module::register_parameter(std::string name, Tensor* slot) {
  ATTN_CHECK(slot && slot->defined(), ValueError, "register_parameter: '{}' is undefined", name);
  for (const auto& [n, _] : params_) {
    ATTN_CHECK(n != name, ValueError, "register_parameter: '{}' registered twice", name);
  }
  slot->requires_grad_(true);
  params_.emplace_back(std::move(name), slot);
}

void Module::collect(const std::string& prefix,
                     std::vector<std::pair<std::string, Tensor*>>& out) const {
  for (const auto& [name, slot] : params_) out.emplace_back(prefix + name, slot);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", slots);
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(slots.size());
  for (auto& [n, s] : slots) out.emplace_back(std::move(n), *s);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", slots);
  std::vector<Tensor> out;
  out.reserve(slots.size());
  for (auto& [n, s] : slots) out.push_back(*s);
  return out;
}

Tensor& Module::parameter(const std::string& dotted_name) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", slots);
  for (auto& [n, s] : slots) {
    if (n == dotted_name) return *s;
  }
  throw ValueError(fmt::format("no parameter named '{}'", dotted_name));
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.set_grad(Tensor());
}

void Module::to(Device device) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", slots);
  NoGradGuard g;
  for (auto& [n, s] : slots) {
    if (s->device() == device) continue;
    *s = s->to(device);  // a new leaf on the device
    s->requires_grad_(true);
  }
}

}  // namespace attn::nn
