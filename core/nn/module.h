// Module: a tree of named parameters and submodules, with PyTorch's dotted names
// ("encoder.embedding.weight") and train/eval mode. A module registers pointers to its own
// Tensor members, so the registry and the members can never disagree.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace attn::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Parameters in registration order, depth first, with dotted names.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  // Looks a parameter up by dotted name; ValueError naming it when absent.
  Tensor& parameter(const std::string& dotted_name);
  int64_t num_parameters() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();           // drops every parameter's .grad
  void to(Device device);     // moves every parameter (keeps requires_grad)

 protected:
  // `slot` must be a member of this module; it becomes a leaf that requires grad.
  void register_parameter(std::string name, Tensor* slot);
  template <typename M>
  M* register_module(std::string name, std::unique_ptr<M> m) {
    M* raw = m.get();
    children_.emplace_back(std::move(name), std::move(m));
    return raw;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out) const;

  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace attn::nn
