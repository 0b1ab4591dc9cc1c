// The autograd graph. Every differentiable op that sees an input requiring grad creates a Node
// holding what its backward needs; the output tensor points at the node (grad_fn) and the node
// points at the nodes of its inputs (next_edges). Leaves end in an AccumulateGrad node.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/autograd/grad_mode.h"
#include "core/small_vector.h"
#include "core/tensor.h"

namespace attn {

using TensorList = SmallVector<Tensor, 2>;

struct Edge {
  std::shared_ptr<Node> fn;  // null: this input needs no gradient
  uint32_t input_nr = 0;     // which output of `fn` the input was
};

class Node {
 public:
  // Frees a long chain of nodes without recursion (engine.cpp): a graph of 200k steps
  // overflowed the stack when each node's destructor ran the next one's.
  virtual ~Node();
  virtual std::string_view name() const = 0;
  // `grads` has one entry per forward output (undefined where that output got no gradient);
  // returns one gradient per next_edge (undefined where none is needed). Runs in no-grad mode.
  virtual TensorList apply(TensorList& grads) = 0;
  // Frees what the forward saved; called after a backward without retain_graph.
  virtual void release_saved() {}

  SmallVector<Edge, 2> next_edges;
  uint32_t num_outputs = 1;
  // Set by the engine for the apply() in progress: whether what the node saved must survive it
  // (a later backward through the same graph); if not, apply() may write over it.
  bool retain_graph = false;

  // Engine bookkeeping for the backward in progress.
  int32_t pending = 0;
  uint64_t epoch = 0;
  TensorList buffer;  // gradients arriving for each output, summed
  bool should_compute(size_t input) const { return next_edges[input].fn != nullptr; }
};

// A tensor saved for backward, with the storage version at save time: unpack() fails if the
// tensor was changed in place since, or if the graph was already freed by an earlier backward.
// An op's own output is saved as a history-free alias (is_output), which avoids the reference
// cycle output -> node -> output; inputs are kept as they are.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t, bool is_output = false)
      : data_(!t.defined() ? Tensor() : is_output ? t.detach() : t),
        version_(t.defined() ? t.version() : 0), saved_(true) {}
  Tensor unpack(std::string_view node) const;
  void release() { data_ = Tensor(); released_ = true; }

 private:
  Tensor data_;
  uint64_t version_ = 0;
  bool saved_ = false;
  bool released_ = false;
};

// Leaves: adds the incoming gradient into tensor.grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::string_view name() const override { return "AccumulateGrad"; }
  TensorList apply(TensorList& grads) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }
  // Lets a backward put its gradient straight into the leaf's .grad instead of returning it for
  // the engine to sum: a GEMM adds into it with beta 1. (A weight used at every decoder step got
  // one dense gradient per step, zero-filled by BLAS and then summed by the engine: 4% of a
  // training step.) write(grad, accumulate) adds into every element of `grad` when accumulate
  // is true; otherwise `grad` is a new tensor, to be set whole, which then becomes the .grad
  // (the leaf had none). false, with nothing done, where the .grad is not a plain contiguous
  // tensor of the leaf's shape, dtype and device (or dtype / device differ from the leaf's).
  // A leaf set to requires_grad_(false) since the forward gets nothing (true, nothing written),
  // as in apply(). Adding into the .grad bumps its version, as add_ does, so that a graph that
  // saved the .grad sees the change.
  template <typename Write>
  bool write_grad(DType dtype, Device device, Write&& write) {
    if (!leaf_->meta().requires_grad) return true;
    bool fresh = false;
    Tensor target = grad_target(dtype, device, fresh);
    if (!target.defined()) return false;
    write(target, !fresh);
    if (fresh) leaf_->meta().grad = std::move(target);
    else target.storage()->bump_version();
    return true;
  }
  // grad[index[i]] += rows[i] straight into the leaf's .grad (zeros first if it has none), for
  // a sparse gradient such as an embedding's; false as for write_grad.
  bool index_add(const Tensor& index, const Tensor& rows);

 private:
  // The .grad to add into (fresh false), a new uninitialized tensor of the leaf's geometry
  // where there is none (fresh true), or undefined where write_grad must refuse.
  Tensor grad_target(DType dtype, Device device, bool& fresh);
  std::shared_ptr<TensorImpl> leaf_;
};

// The accumulator of the leaf behind input `input` of `node`, or null (not a leaf, or no
// gradient wanted there).
inline AccumulateGrad* leaf_accumulator(const Node& node, size_t input) {
  return input < node.next_edges.size() ? dynamic_cast<AccumulateGrad*>(node.next_edges[input].fn.get()) : nullptr;
}

// The gradient of input `input` of `node`, made by write(grad, accumulate) as
// AccumulateGrad::write_grad describes: straight into the leaf's .grad where it can (returns
// undefined: nothing to hand to the engine), else into a new tensor of `shape` (returned).
template <typename Write>
Tensor gradient_into_leaf_or_new(const Node& node, size_t input, const Shape& shape, DType dtype, Device device,
                                 Write&& write) {
  if (AccumulateGrad* acc = leaf_accumulator(node, input); acc && acc->write_grad(dtype, device, write)) return Tensor();
  Tensor grad = empty(shape, {dtype, device});
  write(grad, false);
  return grad;
}

// ---- helpers for ops that record history ----

// Whether an op with these inputs must record a node.
inline bool needs_grad(const Tensor& a) { return GradMode::is_enabled() && a.defined() && a.requires_grad(); }
template <typename... Ts>
bool needs_grad(const Tensor& a, const Ts&... rest) {
  return needs_grad(a) || (needs_grad(rest) || ...);
}

// The edge that carries a gradient into `t`: its grad_fn, its accumulator, or nothing.
Edge gradient_edge(const Tensor& t);

// Creates node N (constructed from args), wires edges to `inputs`, and returns it.
template <typename N, typename... Args>
std::shared_ptr<N> make_node(std::initializer_list<const Tensor*> inputs, Args&&... args) {
  auto node = std::make_shared<N>(std::forward<Args>(args)...);
  node->next_edges.reserve(inputs.size());
  for (const Tensor* t : inputs) node->next_edges.push_back(gradient_edge(*t));
  return node;
}

// Marks `out` as output `output_nr` of `node`.
void set_history(Tensor& out, const std::shared_ptr<Node>& node, uint32_t output_nr = 0);

// Runs backward from `roots` (seeded with `grads`) through the graph.
void run_backward(const TensorList& roots, const TensorList& grads, bool retain_graph);

}  // namespace attn
