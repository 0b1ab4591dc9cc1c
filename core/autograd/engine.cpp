// The backward engine: finds the nodes reachable from the roots, counts how many gradients each
// waits for, then runs them in dependency order (Kahn's algorithm), summing gradients that
// arrive at one output from several uses. Saved tensors are freed as each node finishes unless
// retain_graph is set.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

#include "core/autograd/node.h"
#include "core/profiler.h"
#include "core/ops/ops.h"
#include "kernels/backend.h"

namespace attn {

namespace {
uint64_t g_epoch = 0;  // marks the nodes of the backward in progress
// The epochs of the backwards in progress, outermost first: more than one where a node's
// backward runs a backward of its own (as checkpointing does). Guarded by run_backward's lock.
std::vector<uint64_t> g_running;
// Guards the creation of a leaf's accumulator: ops on a shared leaf (a model's weights) in two
// threads' forwards both looked for it, outside the backward's lock (a data race, ThreadSanitizer).
std::mutex g_accumulator_mutex;
}

Tensor SavedTensor::unpack(std::string_view node) const {
  if (released_) {
    throw AutogradError(fmt::format(
        "{}: trying to run backward through the graph a second time, but its saved tensors were "
        "freed by the first backward; pass retain_graph=true to the first backward",
        node));
  }
  if (saved_ && data_.defined() && data_.version() != version_) {
    throw AutogradError(fmt::format(
        "{}: a tensor of shape {} saved for backward was modified by an in-place operation (it is "
        "at version {}, it was saved at version {})",
        node, data_.shape(), data_.version(), version_));
  }
  return data_;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.impl()->autograd) return {};
  AutogradMeta& meta = *t.impl()->autograd;
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  if (!meta.requires_grad) return {};
  std::lock_guard<std::mutex> lock(g_accumulator_mutex);
  std::shared_ptr<Node> acc = meta.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    meta.grad_accumulator = acc;
  }
  return {std::move(acc), 0};
}

void set_history(Tensor& out, const std::shared_ptr<Node>& node, uint32_t output_nr) {
  AutogradMeta& meta = out.impl()->meta();
  meta.requires_grad = true;
  meta.grad_fn = node;
  meta.output_nr = output_nr;
}

Node::~Node() {
  // The members of the derived node (its saved tensors) are gone by now. The nodes that only this
  // one still holds are moved onto a local stack and freed one at a time, each first dropping
  // its saved tensors (which can hold the same nodes through their grad_fn) and giving up its
  // own only-held nodes, so no node's destructor runs inside another's.
  std::vector<std::shared_ptr<Node>> dying;
  // An edge to a node that other edges also hold is dropped at once: two edges of one node to the
  // same input (a + a) each saw a count of 2, so neither adopted it, and a long chain of them was
  // freed recursively again (a stack overflow at ~100k steps).
  auto adopt = [&dying](Node& n) {
    for (Edge& e : n.next_edges) {
      if (e.fn && e.fn.use_count() == 1) dying.push_back(std::move(e.fn));
      else e.fn.reset();
    }
  };
  adopt(*this);
  while (!dying.empty()) {
    std::shared_ptr<Node> n = std::move(dying.back());
    dying.pop_back();
    n->release_saved();
    adopt(*n);
  }  // n is freed here with none of its edges left to free
}

TensorList AccumulateGrad::apply(TensorList& grads) {
  Tensor& g = grads[0];
  AutogradMeta& meta = leaf_->meta();
  // requires_grad_(false) after the forward: no gradient (PyTorch's AccumulateGrad drops it too)
  if (!g.defined() || !meta.requires_grad) return {};
  ATTN_ASSERT(g.shape() == leaf_->shape, "gradient of shape {} for a leaf of shape {}", g.shape(),
              leaf_->shape);
  if (g.dtype() != leaf_->dtype) g = g.to(leaf_->dtype);
  if (!meta.grad.defined()) {
    // Keep the buffer if nothing else can see it; otherwise copy, so that later in-place
    // accumulation never writes into a tensor shared with another leaf or with the user.
    const bool exclusive = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 &&
                           g.is_contiguous() && g.offset() == 0;
    meta.grad = exclusive ? std::move(g) : g.clone();
  } else if (meta.grad.has_internal_overlap()) {
    meta.grad = add(meta.grad, g);  // a .grad set to an expanded view: elements share memory
  } else {
    meta.grad.add_(g);
  }
  return {};
}

Tensor AccumulateGrad::grad_target(DType dtype, Device device, bool& fresh) {
  AutogradMeta& meta = leaf_->meta();
  const Device leaf_device = leaf_->storage->device();
  if (dtype != leaf_->dtype || device != leaf_device) return Tensor();
  fresh = !meta.grad.defined();
  if (fresh) return empty(leaf_->shape, {leaf_->dtype, leaf_device});
  const bool plain = meta.grad.shape() == leaf_->shape && meta.grad.dtype() == leaf_->dtype &&
                     meta.grad.device() == leaf_device && meta.grad.is_contiguous();
  return plain ? meta.grad : Tensor();
}

bool AccumulateGrad::index_add(const Tensor& index, const Tensor& rows) {
  return write_grad(rows.dtype(), rows.device(), [&](Tensor& grad, bool accumulate) {
    if (!accumulate) grad.zero_();
    kernels::dispatch("AccumulateGrad", {&grad, &index, &rows}).index_add(grad, index, rows);
  });
}

// A node's bookkeeping as an outer backward left it, while a nested backward uses the node.
struct StashedState {
  Node* node;
  uint64_t epoch;
  int32_t pending;
  TensorList buffer;
};

void run_backward(const TensorList& roots, const TensorList& grads, bool retain_graph) {
  // One backward at a time: nodes keep their pass's bookkeeping (epoch, pending, buffer) and
  // leaves their .grad, which two threads' backwards through a shared leaf (a model's weights)
  // corrupted. Recursive: a node's backward may run a backward of its own (checkpointing).
  static std::recursive_mutex one_at_a_time;
  std::lock_guard<std::recursive_mutex> lock(one_at_a_time);
  NoGradGuard no_grad;
  const uint64_t epoch = ++g_epoch;
  // This pass's own lists (they were thread_local and shared: a nested backward emptied the
  // outer one's queue, whose remaining nodes then never ran). A node that an outer pass still
  // running has visited (a shared weight's accumulator) gets its state back when this one ends.
  std::vector<Node*> stack, ready;
  std::vector<StashedState> stashed;
  g_running.push_back(epoch);
  struct Restore {
    std::vector<StashedState>& stashed;
    ~Restore() {
      for (auto it = stashed.rbegin(); it != stashed.rend(); ++it) {
        it->node->epoch = it->epoch;
        it->node->pending = it->pending;
        it->node->buffer = std::move(it->buffer);
      }
      g_running.pop_back();
    }
  } restore{stashed};

  auto visit = [&](Node* n) {
    if (n->epoch == epoch) return;
    if (g_running.size() > 1 && std::find(g_running.begin(), g_running.end() - 1, n->epoch) != g_running.end() - 1)
      stashed.push_back({n, n->epoch, n->pending, std::move(n->buffer)});
    n->epoch = epoch;
    n->pending = 0;
    n->buffer.clear();
    n->buffer.resize(n->num_outputs);
    stack.push_back(n);
  };

  SmallVector<Edge, 2> root_edges;
  for (const Tensor& r : roots) {
    Edge e = gradient_edge(r);
    ATTN_CHECK(e.fn != nullptr, AutogradError,
               "backward: tensor of shape {} does not require grad", r.shape());
    visit(e.fn.get());
    root_edges.push_back(std::move(e));
  }
  // Count, for every reachable node, the edges that will deliver a gradient to it.
  for (size_t i = 0; i < stack.size(); ++i) {
    Node* n = stack[i];
    for (const Edge& e : n->next_edges) {
      if (!e.fn) continue;
      visit(e.fn.get());
      ++e.fn->pending;
    }
  }
  auto accumulate = [](Tensor& slot, Tensor&& g) {
    if (!slot.defined())
      slot = std::move(g);
    else
      slot = add(slot, g);
  };
  for (size_t i = 0; i < root_edges.size(); ++i) {
    Node* n = root_edges[i].fn.get();
    accumulate(n->buffer[root_edges[i].input_nr], Tensor(grads[i]));
  }
  for (const Edge& e : root_edges) {
    if (e.fn->pending == 0 && e.fn->epoch == epoch) {
      e.fn->pending = -1;  // queued
      ready.push_back(e.fn.get());
    }
  }

  Profiler& prof = Profiler::instance();
  const bool profiling = prof.enabled();
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    bool any = false;
    for (const Tensor& g : n->buffer) any = any || g.defined();
    TensorList outs;
    n->retain_graph = retain_graph;
    if (any) {
      if (profiling) {
        // attn train --profile: the backward's time per node type (waits for the device).
        prof.sync();
        const auto t0 = std::chrono::steady_clock::now();
        outs = n->apply(n->buffer);
        prof.sync();
        prof.add_detail("backward", n->name(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      } else {
        outs = n->apply(n->buffer);
      }
    }
    n->buffer.clear();
    if (!retain_graph) n->release_saved();
    for (size_t j = 0; j < n->next_edges.size(); ++j) {
      const Edge& e = n->next_edges[j];
      if (!e.fn) continue;
      Node* m = e.fn.get();
      if (j < outs.size() && outs[j].defined()) accumulate(m->buffer[e.input_nr], std::move(outs[j]));
      if (--m->pending == 0) ready.push_back(m);
    }
  }
}

}  // namespace attn
