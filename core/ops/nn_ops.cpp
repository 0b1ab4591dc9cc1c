// Neural-network ops: embedding lookup, dropout, nll_loss and cross_entropy.
#include "core/autograd/node.h"
#include "core/ops/op_utils.h"
#include "core/ops/ops.h"

namespace attn {

// ------------------------------------------------------------------ embedding

namespace {

struct EmbeddingBackward final : Node {
  SavedTensor indices;  // flat (N)
  int64_t num_rows = 0, padding_idx = -1;
  std::string_view name() const override { return "EmbeddingBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor idx = indices.unpack(name());
    const int64_t D = g[0].size(-1);
    Tensor g2 = g[0].reshape(Shape{idx.numel(), D});  // (not -1: ambiguous when D is 0)
    // A leaf weight (a decoder embeds one token per step: T calls per batch) gets its rows added
    // straight into its .grad: a dense (V, D) gradient per call, which the engine then summed,
    // cost a V x D fill and add per call (5% of a training step). With a padding row, whose
    // gradient must stay out of this call's sum only, the dense path.
    if (padding_idx < 0 && !next_edges.empty())
      if (auto* acc = dynamic_cast<AccumulateGrad*>(next_edges[0].fn.get()); acc && acc->index_add(idx, g2))
        return TensorList(1);
    Tensor gw = zeros(Shape{num_rows, D}, {g2.dtype(), g2.device()});
    kernels::dispatch(name(), {&gw, &idx, &g2}).index_add(gw, idx, g2);
    if (padding_idx >= 0) gw.select(0, padding_idx).zero_();
    TensorList out(1);
    out[0] = gw;
    return out;
  }
  void release_saved() override { indices.release(); }
};

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  check_defined(weight, "embedding");
  check_defined(indices, "embedding");
  ATTN_CHECK(weight.dim() == 2, ShapeError, "embedding: weight must be (num_embeddings, dim), got shape {}",
             weight.shape());
  ATTN_CHECK(indices.dtype() == DType::Int64, DTypeError,
             "embedding: indices must be int64, got {} (shape {})", indices.dtype(), indices.shape());
  const int64_t V = weight.size(0), D = weight.size(1);
  ATTN_CHECK(padding_idx < V, IndexError, "embedding: padding_idx {} out of range for {} rows",
             padding_idx, V);
  auto& be = kernels::dispatch("embedding", {&weight, &indices});
  Tensor flat = indices.reshape(Shape{-1});
  const int64_t N = flat.size(0);
  Tensor out2 = empty(Shape{N, D}, {weight.dtype(), weight.device()});
  if (N > 0) be.index_select(out2, weight, flat);
  Shape out_shape = indices.shape();
  out_shape.push_back(D);
  Tensor out = alias(out2, out_shape, contiguous_strides(out_shape), 0);
  if (needs_grad(weight)) {
    auto node = make_node<EmbeddingBackward>({&weight});
    node->indices = SavedTensor(flat);
    node->num_rows = V;
    node->padding_idx = padding_idx;
    set_history(out, node);
  }
  return out;
}

Tensor index_rows(const Tensor& x, const Tensor& index) {
  check_defined(x, "index_rows");
  ATTN_CHECK(x.dim() >= 1, ShapeError, "index_rows: needs at least one dim, got a 0-d tensor");
  Shape row_shape(x.shape().begin() + 1, x.shape().end());
  const int64_t row = numel_of(row_shape);
  Tensor table = x.contiguous().reshape(Shape{x.size(0), row});
  Tensor out = embedding(table, index);  // (..., row)
  Shape out_shape = index.shape();
  for (int64_t d : row_shape) out_shape.push_back(d);
  return out.reshape(out_shape);
}

// ------------------------------------------------------------------ dropout

namespace {

struct DropoutBackward final : Node {
  SavedTensor mask;
  std::string_view name() const override { return "DropoutBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    out[0] = mul(g[0], mask.unpack(name()));
    return out;
  }
  void release_saved() override { mask.release(); }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_defined(x, "dropout");
  ATTN_CHECK(p >= 0.0 && p <= 1.0, ValueError, "dropout: probability must be in [0, 1], got {}", p);
  if (!training || p == 0.0) return x;
  check_floating(x, "dropout");
  Tensor mask = empty(x.shape(), {x.dtype(), x.device()});
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(x.numel()));
  auto& be = kernels::backend(x.device());
  be.dropout_mask(mask, gen.seed(), offset, p);
  Tensor out = binary_out(kernels::BinaryOp::Mul, x, mask);
  if (needs_grad(x)) {
    auto node = make_node<DropoutBackward>({&x});
    node->mask = SavedTensor(mask);
    set_history(out, node);
  }
  return out;
}

Tensor dropout(const Tensor& x, double p, bool training) {
  return dropout(x, p, training, default_generator());
}

// ------------------------------------------------------------------ nll_loss / cross_entropy

ReducedLoss reduce_losses(const Tensor& losses, const Tensor& target, int64_t ignore_index, Reduction reduction) {
  NoGradGuard g;
  if (reduction == Reduction::None) return {losses, Tensor()};
  Tensor total = sum(losses);
  if (reduction == Reduction::Sum) return {total, Tensor()};
  // Counted exactly, as the kernels compare: an index beyond 2^53 would round as a double scalar,
  // so it is compared as an int64 tensor (a host-to-device copy: only then, not every step).
  constexpr int64_t kExact = int64_t{1} << 53;
  const Tensor kept = ignore_index >= -kExact && ignore_index <= kExact
                          ? ne(target, static_cast<double>(ignore_index))
                          : ne(target, from_vector(std::vector<int64_t>{ignore_index}, Shape{}).to(target.device()));
  Tensor count = sum(kept.to(losses.dtype()));
  return {div(total, count), count};
}

Tensor expand_loss_grad(const Tensor& grad, const Tensor& count, int64_t rows, Reduction reduction) {
  if (reduction == Reduction::None) return grad;
  Tensor g = reduction == Reduction::Mean ? div(grad, count) : grad;
  return g.reshape(Shape{1}).expand(Shape{rows});
}

namespace {

struct NllLossBackward final : Node {
  SavedTensor target, count;  // count: number of counted targets (mean only)
  int64_t ignore_index = -100, num_classes = 0;
  Reduction reduction = Reduction::Mean;
  std::string_view name() const override { return "NllLossBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor t = target.unpack(name());
    const int64_t N = t.size(0);
    Tensor grad_losses = expand_loss_grad(g[0], count.unpack(name()), N, reduction);
    Tensor gl = zeros(Shape{N, num_classes}, {grad_losses.dtype(), grad_losses.device()});
    kernels::dispatch(name(), {&gl, &grad_losses, &t}).nll_loss_backward(gl, grad_losses, t, ignore_index);
    TensorList out(1);
    out[0] = gl;
    return out;
  }
  void release_saved() override {
    target.release();
    count.release();
  }
};

}  // namespace

Tensor nll_loss(const Tensor& logp, const Tensor& target, int64_t ignore_index, Reduction reduction) {
  check_defined(logp, "nll_loss");
  check_defined(target, "nll_loss");
  check_floating(logp, "nll_loss");
  ATTN_CHECK(logp.dim() == 2, ShapeError, "nll_loss: log-probabilities must be (N, C), got shape {}",
             logp.shape());
  ATTN_CHECK(target.dtype() == DType::Int64, DTypeError, "nll_loss: target must be int64, got {}",
             target.dtype());
  ATTN_CHECK(target.dim() == 1 && target.size(0) == logp.size(0), ShapeError,
             "nll_loss: target of shape {} does not match log-probabilities of shape {}",
             target.shape(), logp.shape());
  auto& be = kernels::dispatch("nll_loss", {&logp, &target});
  const int64_t N = logp.size(0);
  Tensor losses = empty(Shape{N}, {logp.dtype(), logp.device()});
  be.nll_loss(losses, logp, target, ignore_index);
  auto [out, count] = reduce_losses(losses, target, ignore_index, reduction);
  if (needs_grad(logp)) {
    auto node = make_node<NllLossBackward>({&logp});
    node->target = SavedTensor(target);
    if (count.defined()) node->count = SavedTensor(count);
    node->ignore_index = ignore_index;
    node->num_classes = logp.size(1);
    node->reduction = reduction;
    set_history(out, node);
  }
  return out;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     Reduction reduction) {
  check_defined(logits, "cross_entropy");
  ATTN_CHECK(logits.dim() == 2, ShapeError, "cross_entropy: logits must be (N, C), got shape {}",
             logits.shape());
  return nll_loss(log_softmax(logits, 1), target, ignore_index, reduction);
}

}  // namespace attn
