// The fused LSTM layer: one autograd node over all time steps of one direction.
//
// Forward:  xproj = x W_ih^T + (b_ih + b_hh)              one GEMM, (B*S, I) x (I, 4H)
//           for each step t:  gates = h W_hh^T            one GEMM, (B, H) x (H, 4H)
//                             fused cell (kernels)        activations, c, h, output, saves
// Backward: for each step t, last first:
//                             fused cell backward         dgates_t, dc, carry of dh
//                             dh += dgates_t W_hh         one GEMM
//           dx = dG W_ih, dW_ih = dG^T x, dW_hh = dG^T hprev, db = sum(dG)   three GEMMs + a sum
// Saved for the backward: the gate activations (B, S, 4H) and the state before each step
// (hprev, cprev: (B, S, H)); c_t is recomputed from them.
#include "core/autograd/node.h"
#include "core/ops/fused.h"
#include "core/ops/lengths.h"
#include "core/ops/op_utils.h"

namespace attn {

namespace {

// (B, C) view of step t of a (B, S, C) buffer.
Tensor step_view(const Tensor& buf, int64_t t) {
  const int64_t B = buf.size(0), S = buf.size(1), C = buf.size(2);
  return alias(buf, Shape{B, C}, Strides{S * C, 1}, buf.offset() + t * C);
}

Tensor as3(const Tensor& m) {  // (R, C) -> (1, R, C) without autograd
  return alias(m, Shape{1, m.size(0), m.size(1)}, Strides{0, m.stride(0), m.stride(1)}, m.offset());
}

Tensor transposed3(const Tensor& w) {  // (R, C) -> (1, C, R) transposed view
  return alias(w, Shape{1, w.size(1), w.size(0)}, Strides{0, w.stride(1), w.stride(0)}, w.offset());
}

// The recurrent weight multiplies the batch at every step: prepared once (packed, on the CPU)
// when there are enough steps to pay for it.
std::shared_ptr<const kernels::PreparedMatrix> prepare_recurrent(kernels::Backend& be, const Tensor& w, int64_t steps) {
  return steps >= 4 ? be.prepare_rhs(w) : nullptr;
}

struct LstmLayerBackward final : Node {
  SavedTensor x, w_ih, w_hh, lengths;
  Tensor act, hprev, cprev;  // internal buffers, never visible outside the op
  bool reverse = false;
  LstmLayerBackward() { num_outputs = 3; }
  std::string_view name() const override { return "LstmLayerBackward"; }

  TensorList apply(TensorList& g) override {
    const Tensor xx = x.unpack(name()), wih = w_ih.unpack(name()), whh = w_hh.unpack(name());
    const Tensor lens = lengths.unpack(name());
    const int64_t B = xx.size(0), S = xx.size(1), I = xx.size(2), H = whh.size(1);
    const Options opt{xx.dtype(), xx.device()};
    auto& be = kernels::dispatch(name(), {&xx, &act});
    Tensor dh = g[1].defined() ? g[1].contiguous().clone() : zeros(Shape{B, H}, opt);
    Tensor dc = g[2].defined() ? g[2].contiguous().clone() : zeros(Shape{B, H}, opt);
    const Tensor dout = g[0].defined() ? g[0].contiguous() : Tensor();
    Tensor dG = empty(Shape{B, S, 4 * H}, opt);
    const auto whh_prepared = prepare_recurrent(be, whh, S);
    for (int64_t step = 0; step < S; ++step) {
      const int64_t t = reverse ? step : S - 1 - step;  // the forward's order, backwards
      Tensor dg_t = step_view(dG, t);
      be.lstm_cell_backward(step_view(act, t), step_view(cprev, t), lens, t,
                            dout.defined() ? step_view(dout, t) : Tensor(), dh, dc, dg_t);
      be.matmul_prepared(dh, dg_t, whh, whh_prepared.get(), /*accumulate=*/true);  // dh += dgates_t W_hh
    }
    const Tensor dG2 = alias(dG, Shape{B * S, 4 * H}, Strides{4 * H, 1}, 0);
    TensorList out(7);
    if (should_compute(0)) {
      Tensor dx = empty(Shape{1, B * S, I}, opt);
      be.bmm(dx, as3(dG2), as3(wih), false);
      out[0] = alias(dx, Shape{B, S, I}, contiguous_strides(Shape{B, S, I}), 0);
    }
    if (should_compute(1)) out[1] = dh;
    if (should_compute(2)) out[2] = dc;
    // dW_ih = dG^T x and dW_hh = dG^T hprev: into a leaf weight's .grad where it can (the
    // decoder runs one step per call), else returned
    auto weight_grad = [&](size_t input, const Tensor& rhs) {  // rhs (B*S, C)
      out[input] = gradient_into_leaf_or_new(*this, input, Shape{4 * H, rhs.size(1)}, opt.dtype, opt.device,
                                             [&](Tensor& dw, bool accumulate) {
                                               be.bmm(as3(dw), transposed3(dG2), as3(rhs), accumulate);
                                             });
    };
    if (should_compute(3)) weight_grad(3, alias(xx, Shape{B * S, I}, Strides{I, 1}, xx.offset()));
    if (should_compute(4)) weight_grad(4, alias(hprev, Shape{B * S, H}, Strides{H, 1}, 0));
    if (should_compute(5) || should_compute(6)) {
      Tensor db = sum_keepdim(dG2, Shape{0});
      db = alias(db, Shape{4 * H}, Strides{1}, 0);
      if (should_compute(5)) out[5] = db;
      if (should_compute(6)) out[6] = should_compute(5) ? db.clone() : db;
    }
    return out;
  }
  void release_saved() override {
    x.release();
    w_ih.release();
    w_hh.release();
    lengths.release();
    act = hprev = cprev = Tensor();
  }
};

void check_lstm_args(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                     const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  for (const Tensor* t : {&x, &lengths, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh}) check_defined(*t, "lstm_layer");
  check_floating(x, "lstm_layer");
  ATTN_CHECK(x.dim() == 3, ShapeError, "lstm_layer: input must be (B, S, I), got shape {}", x.shape());
  const int64_t B = x.size(0), S = x.size(1), I = x.size(2);
  ATTN_CHECK(w_hh.dim() == 2 && w_hh.size(0) % 4 == 0 && w_hh.size(0) == 4 * w_hh.size(1), ShapeError,
             "lstm_layer: weight_hh must be (4H, H), got shape {}", w_hh.shape());
  const int64_t H = w_hh.size(1);
  ATTN_CHECK(w_ih.dim() == 2 && w_ih.size(0) == 4 * H && w_ih.size(1) == I, ShapeError,
             "lstm_layer: weight_ih must be (4H, I) = ({}, {}) for input of shape {}, got shape {}", 4 * H, I,
             x.shape(), w_ih.shape());
  ATTN_CHECK(b_ih.shape() == Shape{4 * H} && b_hh.shape() == Shape{4 * H}, ShapeError,
             "lstm_layer: biases must be ({}), got shapes {} and {}", 4 * H, b_ih.shape(), b_hh.shape());
  ATTN_CHECK(h0.shape() == (Shape{B, H}) && c0.shape() == (Shape{B, H}), ShapeError,
             "lstm_layer: initial states must be (B, H) = ({}, {}), got shapes {} and {}", B, H, h0.shape(),
             c0.shape());
  for (const Tensor* t : {&h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh}) {
    ATTN_CHECK(t->dtype() == x.dtype(), DTypeError, "lstm_layer: all tensors must be {}, got one of {}",
               x.dtype(), t->dtype());
  }
  ATTN_CHECK(lengths.dtype() == DType::Int64 && lengths.shape() == Shape{B}, ShapeError,
             "lstm_layer: lengths must be int64 ({}), got {} {}", B, lengths.dtype(), lengths.shape());
  kernels::dispatch("lstm_layer", {&x, &lengths, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh});
  check_lengths(lengths, S, "lstm_layer");
}

}  // namespace

LstmLayerOutput lstm_layer(const Tensor& x_in, const Tensor& lengths, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           bool reverse) {
  check_lstm_args(x_in, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh);
  const Tensor lens = lengths.contiguous();  // the kernels index lengths[b] directly
  const Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), S = x.size(1), I = x.size(2), H = w_hh.size(1);
  const Options opt{x.dtype(), x.device()};
  auto& be = kernels::backend(x.device());
  const bool grad = needs_grad(x_in, h0, c0, w_ih, w_hh, b_ih, b_hh);

  // All input projections at once, both biases folded in.
  Tensor xproj = empty(Shape{B, S, 4 * H}, opt);
  {
    Tensor xproj2 = alias(xproj, Shape{1, B * S, 4 * H}, Strides{0, 4 * H, 1}, 0);
    be.binary(kernels::BinaryOp::Add, xproj2, b_ih, b_hh);
    be.bmm(xproj2, as3(alias(x, Shape{B * S, I}, Strides{I, 1}, x.offset())), transposed3(w_ih), true);
  }
  // The running state, updated in place by the cell kernel (copies without history).
  Tensor h = h0.detach().clone(), c = c0.detach().clone();
  Tensor output = empty(Shape{B, S, H}, opt);
  // Saved per step for the backward; without autograd, one step's worth of scratch suffices.
  const int64_t saved_steps = grad ? S : 1;
  Tensor act = empty(Shape{B, saved_steps, 4 * H}, opt);
  Tensor hprev = empty(Shape{B, saved_steps, H}, opt), cprev = empty(Shape{B, saved_steps, H}, opt);
  Tensor gates = empty(Shape{B, 4 * H}, opt);
  const Tensor whh_t = alias(w_hh, Shape{H, 4 * H}, Strides{w_hh.stride(1), w_hh.stride(0)}, w_hh.offset());  // W_hh^T
  const auto whh_prepared = prepare_recurrent(be, whh_t, S);
  for (int64_t step = 0; step < S; ++step) {
    const int64_t t = reverse ? S - 1 - step : step;
    const int64_t st = grad ? t : 0;
    be.matmul_prepared(gates, h, whh_t, whh_prepared.get(), false);  // gates = h W_hh^T
    be.lstm_cell_forward(step_view(xproj, t), gates, lens, t, h, c, step_view(output, t), step_view(act, st),
                         step_view(hprev, st), step_view(cprev, st));
  }
  LstmLayerOutput out{output, h, c};
  if (grad) {
    auto node = make_node<LstmLayerBackward>({&x_in, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh});
    node->x = SavedTensor(x);
    node->w_ih = SavedTensor(w_ih);
    node->w_hh = SavedTensor(w_hh);
    node->lengths = SavedTensor(lens);
    node->act = act;
    node->hprev = hprev;
    node->cprev = cprev;
    node->reverse = reverse;
    set_history(out.output, node, 0);
    set_history(out.h_n, node, 1);
    set_history(out.c_n, node, 2);
  }
  return out;
}

}  // namespace attn
