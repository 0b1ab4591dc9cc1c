// Fused log_softmax + negative log-likelihood (with label smoothing) over the vocabulary.
// The forward keeps two numbers per row (the log-sum-exp as max + log_sum); the backward recomputes
// softmax - q from the logits and that number, so no second (N, V) tensor is ever stored.
#include "core/autograd/node.h"
#include "core/ops/fused.h"
#include "core/ops/op_utils.h"

namespace attn {

namespace {

struct SoftmaxNllBackward final : Node {
  SavedTensor logits, target, lse, count;
  int64_t ignore_index = -100;
  double smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
  std::string_view name() const override { return "SoftmaxNllBackward"; }
  TensorList apply(TensorList& g) override {
    const Tensor x = logits.unpack(name()), t = target.unpack(name()), l = lse.unpack(name());
    const int64_t N = x.size(0);
    Tensor gl = expand_loss_grad(g[0], count.unpack(name()), N, reduction);
    Tensor gx = empty(x.shape(), {x.dtype(), x.device()});
    kernels::dispatch(name(), {&x, &gl}).softmax_nll_backward(x, t, ignore_index, smoothing, l, gl, gx);
    TensorList out(1);
    out[0] = gx;
    return out;
  }
  void release_saved() override {
    logits.release();
    target.release();
    lse.release();
    count.release();
  }
};

}  // namespace

Tensor softmax_nll(const Tensor& logits_in, const Tensor& target, int64_t ignore_index, double label_smoothing,
                   Reduction reduction) {
  check_defined(logits_in, "softmax_nll");
  check_defined(target, "softmax_nll");
  check_floating(logits_in, "softmax_nll");
  ATTN_CHECK(logits_in.dim() == 2 && logits_in.size(1) > 0, ShapeError,
             "softmax_nll: logits must be (N, V) with V > 0, got shape {}", logits_in.shape());
  ATTN_CHECK(target.dtype() == DType::Int64, DTypeError, "softmax_nll: target must be int64, got {}", target.dtype());
  ATTN_CHECK(target.dim() == 1 && target.size(0) == logits_in.size(0), ShapeError,
             "softmax_nll: target of shape {} does not match logits of shape {}", target.shape(), logits_in.shape());
  ATTN_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, ValueError,
             "softmax_nll: label_smoothing must be in [0, 1], got {}", label_smoothing);
  auto& be = kernels::dispatch("softmax_nll", {&logits_in, &target});
  const Tensor logits = logits_in.contiguous();
  const int64_t N = logits.size(0);
  const Options opt{logits.dtype(), logits.device()};
  // lse: (N, 2), each row's max and log(sum exp(x - max)): the backward's exp((x - max) - log_sum)
  // keeps the precision that exp(x - lse) loses when the logits are large
  Tensor losses = empty(Shape{N}, opt), lse = empty(Shape{N, 2}, opt);
  be.softmax_nll_forward(logits, target, ignore_index, label_smoothing, losses, lse);
  auto [out, count] = reduce_losses(losses, target, ignore_index, reduction);
  if (needs_grad(logits_in)) {
    auto node = make_node<SoftmaxNllBackward>({&logits_in});
    node->logits = SavedTensor(logits);
    node->target = SavedTensor(target);
    node->lse = SavedTensor(lse);
    if (count.defined()) node->count = SavedTensor(count);
    node->ignore_index = ignore_index;
    node->smoothing = label_smoothing;
    node->reduction = reduction;
    set_history(out, node);
  }
  return out;
}

}  // namespace attn
