// The fused LSTM layer: one autograd node over all time steps of one direction.
//
// Forward:  xproj = x W_ih^T + (b_ih + b_hh)              one GEMM, (N, I) x (I, 4H)
//           for each step t:  gates = h W_hh^T            one GEMM, (R_t, H) x (H, 4H)
//                             fused cell (kernels)        activations, c, h, output, saves
// Backward: for each step t, last first:
//                             fused cell backward         dgates_t, dc, carry of dh
//                             dh += dgates_t W_hh         one GEMM
//           dx = dG W_ih, dW_ih = dG^T x, dW_hh = dG^T hprev, db = sum(dG)   three GEMMs + a sum
// Saved for the backward: the gate activations (N, 4H) and the state before each step
// (hprev, cprev: (N, H)); c_t is recomputed from them.
//
// Padding is left out, as cuDNN and PyTorch's packed sequences do (StepRows below): with
// lengths shorter than S, the positions are gathered time-major with the batch sorted longest
// first, so step t runs on the R_t = #{b : lengths[b] > t} sequences still going, which are the
// first R_t rows of the state; N = sum(lengths) rows in all instead of B*S. With every length
// equal to S nothing is copied: step t is a strided view of the (B, S, .) buffers.
#include <algorithm>
#include <array>

#include "core/autograd/node.h"
#include "core/ops/fused.h"
#include "core/ops/lengths.h"
#include "core/ops/op_utils.h"
#include "core/tensor_identity.h"

namespace attn {

namespace {

Tensor as3(const Tensor& m) {  // (R, C) -> (1, R, C) without autograd
  return alias(m, Shape{1, m.size(0), m.size(1)}, Strides{0, m.stride(0), m.stride(1)}, m.offset());
}

Tensor transposed(const Tensor& w) {  // (R, C) -> (C, R) view without autograd
  return alias(w, Shape{w.size(1), w.size(0)}, Strides{w.stride(1), w.stride(0)}, w.offset());
}

Tensor transposed3(const Tensor& w) { return as3(transposed(w)); }  // (R, C) -> (1, C, R)

Tensor as_rows(const Tensor& m) {  // contiguous (B, S, C) -> (B*S, C) without autograd
  return alias(m, Shape{m.size(0) * m.size(1), m.size(2)}, Strides{m.size(2), 1}, m.offset());
}

Tensor first_rows(const Tensor& m, int64_t rows) {  // (R, C) -> its first rows, no autograd
  return alias(m, Shape{rows, m.size(1)}, Strides{m.stride(0), m.stride(1)}, m.offset());
}

// Which rows of the step buffers (N rows of C columns, contiguous) step t runs on.
struct StepRows {
  int64_t B = 0, S = 0, N = 0;
  bool packed = false;
  std::vector<int64_t> running, start;  // packed: R_t and the first row of step t
  // Packed only, int64 on the op's device: order (B) sorted row -> batch entry; rank (B) its
  // inverse; gather (N) packed row -> b*S + t; scatter (B*S) b*S + t -> packed row, or N for
  // padding (the buffers it reads have a zero row N).
  Tensor order, rank, gather, scatter;

  StepRows(const Tensor& lengths, int64_t batch, int64_t steps, Device device) : B(batch), S(steps), N(batch * steps) {
    if (B == 0 || check_lengths(lengths, S, "lstm_layer").shortest == S) return;
    const std::vector<int64_t> len = host_lengths(lengths, S, "lstm_layer");
    if (*std::min_element(len.begin(), len.end()) == S) return;  // vouched for, unread until now
    packed = true;
    std::vector<int64_t> idx(static_cast<size_t>(2 * B + 2 * B * S));  // order | rank | scatter | gather (N <= B*S)
    int64_t* ord = idx.data();
    for (int64_t b = 0; b < B; ++b) ord[b] = b;
    std::stable_sort(ord, ord + B, [&](int64_t a, int64_t b) { return len[a] > len[b]; });
    int64_t* rnk = ord + B;
    for (int64_t k = 0; k < B; ++k) rnk[ord[k]] = k;
    running.resize(static_cast<size_t>(S));
    start.resize(static_cast<size_t>(S));
    N = 0;
    for (int64_t t = 0; t < S; ++t) {
      int64_t r = 0;
      while (r < B && len[ord[r]] > t) ++r;
      start[t] = N;
      running[t] = r;
      N += r;
    }
    int64_t* sct = rnk + B;
    int64_t* gth = sct + B * S;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < S; ++t) {
        const bool real = t < len[b];
        sct[b * S + t] = real ? start[t] + rnk[b] : N;
        if (real) gth[start[t] + rnk[b]] = b * S + t;
      }
    }
    idx.resize(static_cast<size_t>(2 * B + B * S + N));
    const Tensor all = from_vector(idx).to(device);
    order = all.narrow(0, 0, B);
    rank = all.narrow(0, B, B);
    scatter = all.narrow(0, 2 * B, B * S);
    gather = all.narrow(0, 2 * B + B * S, N);
  }

  int64_t rows(int64_t t) const { return packed ? running[t] : B; }
  // (rows(t), C) view of step t in a buffer of N (or more) rows of C columns.
  Tensor step(const Tensor& buf, int64_t t) const {
    const int64_t C = buf.size(buf.dim() - 1);
    if (packed) return alias(buf, Shape{running[t], C}, Strides{C, 1}, buf.offset() + start[t] * C);
    return alias(buf, Shape{B, C}, Strides{S * C, 1}, buf.offset() + t * C);
  }
  // Rows of m (B*S, C) (or of the batch state (B, C) with `index` order) in packed order.
  Tensor pack(kernels::Backend& be, const Tensor& m, const Tensor& index, int64_t rows) const {
    Tensor out = empty(Shape{rows, m.size(1)}, {m.dtype(), m.device()});
    be.gather_rows(out, m, index);
    return out;
  }
  // A batch state (B, C) in the step rows' order and back; a copy either way (the layer
  // updates its state in place).
  Tensor sorted(kernels::Backend& be, const Tensor& state) const {
    return packed ? pack(be, state, order, B) : state.detach().clone();
  }
  Tensor unsorted(kernels::Backend& be, const Tensor& state) const { return packed ? pack(be, state, rank, B) : state; }
  // A buffer of N rows for packed data plus a zero row N for the padding that unpack reads.
  Tensor padded_buffer(int64_t C, const Options& opt) const {
    Tensor buf = empty(Shape{N + (packed ? 1 : 0), C}, opt);
    if (packed) kernels::backend(opt.device).fill(alias(buf, Shape{1, C}, Strides{C, 1}, N * C), 0.0);
    return buf;
  }
  // (B*S, C) in batch-major order from a padded_buffer: zeros at padding.
  Tensor unpack(kernels::Backend& be, const Tensor& buf) const {
    if (!packed) return buf;
    return pack(be, buf, scatter, B * S);
  }
};

// The step rows for `lengths`: those of the previous call when it had the same lengths tensor
// (unchanged), S and device and its plan is still held (by its backward node), as for the
// layers and directions of one encoder; on a GPU each new plan costs a synchronizing copy.
std::shared_ptr<const StepRows> step_rows_for(const Tensor& lengths, int64_t B, int64_t S, Device device) {
  struct Last {
    TensorIdentity id;
    int64_t B = 0, S = 0;
    Device device;
    std::weak_ptr<const StepRows> rows;
  };
  thread_local Last last;
  if (auto held = last.rows.lock(); held && last.B == B && last.S == S && last.device == device && last.id.matches(lengths)) {
    return held;
  }
  auto rows = std::make_shared<const StepRows>(lengths, B, S, device);
  last = {TensorIdentity(lengths), B, S, device, rows};
  return rows;
}

// A weight packed for the small-batch kernel (CPU; other backends prepare nothing), reused
// while the weight is unchanged: within one call (the recurrent weight at every step) and
// across calls, as a decoder runs the layer one step per call with the same weights, forward
// and backward, T times per batch. The optimizer's update bumps the weight's version and so
// retires its packed copy. Which kernel a product runs on depends on the call's shape only,
// never on what ran before: the packed kernel and OpenBLAS round differently (on an AVX2
// machine), and packing on a weight's second sighting made a decode differ from the same
// decode run again, and a resumed training run from one that had validated in between.
std::shared_ptr<const kernels::PreparedMatrix> prepared_weight(kernels::Backend& be, const Tensor& w) {
  struct Entry {
    TensorIdentity id;
    std::shared_ptr<const kernels::PreparedMatrix> prepared;
    uint64_t last_use = 0;
  };
  // A decoder layer's four views (W_ih, W_hh, and their transposes) and an encoder's: a few
  // MB of packed floats at most, held until their slot is taken.
  thread_local std::array<Entry, 8> cache;
  thread_local uint64_t clock = 0;
  if (!w.device().is_cpu()) return nullptr;  // only the CPU backend packs
  Entry* slot = nullptr;
  for (Entry& e : cache) {
    if (e.id.matches(w)) {
      slot = &e;
      break;
    }
  }
  if (slot == nullptr) {  // the same view at an older version first, else the least recently used
    for (Entry& e : cache)
      if (e.id.same_view(w)) slot = &e;
    if (slot == nullptr) slot = &*std::min_element(cache.begin(), cache.end(), [](const Entry& a, const Entry& b) {
      return a.last_use < b.last_use;
    });
    *slot = {TensorIdentity(w), be.prepare_rhs(w), 0};
  }
  slot->last_use = ++clock;
  return slot->prepared;
}

struct LstmLayerBackward final : Node {
  SavedTensor x, w_ih, w_hh;
  Tensor x_rows, act, hprev, cprev;  // internal buffers (N rows), never visible outside the op
  std::shared_ptr<const StepRows> rows;
  bool reverse = false;
  LstmLayerBackward() { num_outputs = 3; }
  std::string_view name() const override { return "LstmLayerBackward"; }

  TensorList apply(TensorList& g) override {
    const Tensor wih = w_ih.unpack(name()), whh = w_hh.unpack(name());
    const StepRows& r = *rows;
    // x (B*S, I) as the forward read it: a packed copy, or the saved input itself
    const Tensor xr = r.packed ? x_rows : as_rows(x.unpack(name()));
    const int64_t B = r.B, S = r.S, N = r.N, I = wih.size(1), H = whh.size(1);
    const Options opt{act.dtype(), act.device()};
    auto& be = kernels::dispatch(name(), {&xr, &act});
    // The state gradients in the forward's row order.
    auto state_grad = [&](const Tensor& gs) { return gs.defined() ? r.sorted(be, gs) : zeros(Shape{B, H}, opt); };
    Tensor dh = state_grad(g[1]), dc = state_grad(g[2]);
    Tensor dy;  // (N, H) or undefined
    if (g[0].defined()) {
      const Tensor dout = as_rows(g[0].contiguous());
      dy = r.packed ? r.pack(be, dout, r.gather, N) : dout;
    }
    Tensor dG = empty(Shape{N, 4 * H}, opt);
    const auto whh_prepared = prepared_weight(be, whh);
    for (int64_t step = 0; step < S; ++step) {
      const int64_t t = reverse ? step : S - 1 - step;  // the forward's order, backwards
      const int64_t R = r.rows(t);
      const Tensor dg_t = r.step(dG, t), dh_t = first_rows(dh, R);
      be.lstm_cell_backward(r.step(act, t), r.step(cprev, t), dy.defined() ? r.step(dy, t) : Tensor(), dh_t,
                            first_rows(dc, R), dg_t);
      be.matmul_prepared(dh_t, dg_t, whh, whh_prepared.get(), /*accumulate=*/true);  // dh += dgates_t W_hh
    }
    TensorList out(7);
    if (should_compute(0)) {
      // dx = dG W_ih through the small-batch kernel, which ran this (N, 4H) x (4H, I) product
      // 1.15-1.5x faster than OpenBLAS at T2 (N 500, 4H 1024, I 256), and packs once for a
      // decoder's T one-row-per-sentence calls.
      Tensor dx = r.padded_buffer(I, opt);
      const auto wih_prepared = prepared_weight(be, wih);
      be.matmul_prepared(first_rows(dx, N), dG, wih, wih_prepared.get(), false);
      out[0] = alias(r.unpack(be, dx), Shape{B, S, I}, contiguous_strides(Shape{B, S, I}), 0);
    }
    if (should_compute(1)) out[1] = r.unsorted(be, dh);
    if (should_compute(2)) out[2] = r.unsorted(be, dc);
    // dW_ih = dG^T x and dW_hh = dG^T hprev: into a leaf weight's .grad where it can (the
    // decoder runs one step per call), else returned
    auto weight_grad = [&](size_t input, const Tensor& rhs) {  // rhs (N, C)
      out[input] = gradient_into_leaf_or_new(*this, input, Shape{4 * H, rhs.size(1)}, opt.dtype, opt.device,
                                             [&](Tensor& dw, bool accumulate) {
                                               be.bmm(as3(dw), transposed3(dG), as3(rhs), accumulate);
                                             });
    };
    if (should_compute(3)) weight_grad(3, xr);
    if (should_compute(4)) weight_grad(4, hprev);
    if (should_compute(5) || should_compute(6)) {
      Tensor db = sum_keepdim(dG, Shape{0});
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
    rows.reset();
    x_rows = act = hprev = cprev = Tensor();
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
  check_lengths(lengths, S, "lstm_layer");  // StepRows reads them again from the cache
}

}  // namespace

LstmLayerOutput lstm_layer(const Tensor& x_in, const Tensor& lengths, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           bool reverse) {
  check_lstm_args(x_in, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh);
  const Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), S = x.size(1), H = w_hh.size(1);
  const Options opt{x.dtype(), x.device()};
  auto& be = kernels::backend(x.device());
  const bool grad = needs_grad(x_in, h0, c0, w_ih, w_hh, b_ih, b_hh);
  const std::shared_ptr<const StepRows> rows = step_rows_for(lengths, B, S, x.device());
  const StepRows& r = *rows;
  const int64_t N = r.N;

  // All input projections at once, both biases folded in.
  const Tensor x_rows = r.packed ? r.pack(be, as_rows(x), r.gather, N) : as_rows(x);  // (N, I)
  Tensor xproj = empty(Shape{N, 4 * H}, opt);
  be.binary(kernels::BinaryOp::Add, as3(xproj), b_ih, b_hh);
  const Tensor wih_t = transposed(w_ih);
  // packed for a decoder's small calls (one per step, the packing reused): on T2's 500 rows
  // OpenBLAS is as fast without the packing
  const auto wih_prepared = N < 256 ? prepared_weight(be, wih_t) : nullptr;
  be.matmul_prepared(xproj, x_rows, wih_t, wih_prepared.get(), true);
  // The running state, updated in place by the cell kernel (copies without history), in the
  // order of the step rows.
  Tensor h = r.sorted(be, h0), c = r.sorted(be, c0);
  Tensor y = r.padded_buffer(H, opt);  // (N, H) outputs (+ the zero row of padding)
  // Saved per step for the backward; without autograd, one step's worth of scratch suffices.
  const int64_t saved_rows = grad ? N : B;
  Tensor act = empty(Shape{saved_rows, 4 * H}, opt);
  Tensor hprev = empty(Shape{saved_rows, H}, opt), cprev = empty(Shape{saved_rows, H}, opt);
  Tensor gates = empty(Shape{B, 4 * H}, opt);
  const Tensor whh_t = transposed(w_hh);
  const auto whh_prepared = prepared_weight(be, whh_t);
  for (int64_t step = 0; step < S; ++step) {
    const int64_t t = reverse ? S - 1 - step : step;
    const int64_t R = r.rows(t);
    auto saved = [&](const Tensor& buf) { return grad ? r.step(buf, t) : first_rows(buf, R); };
    const Tensor h_t = first_rows(h, R), gates_t = first_rows(gates, R);
    be.matmul_prepared(gates_t, h_t, whh_t, whh_prepared.get(), false);  // gates = h W_hh^T
    be.lstm_cell_forward(r.step(xproj, t), gates_t, h_t, first_rows(c, R), r.step(y, t), saved(act), saved(hprev),
                         saved(cprev));
  }
  const Tensor output = alias(r.unpack(be, y), Shape{B, S, H}, contiguous_strides(Shape{B, S, H}), 0);
  LstmLayerOutput out{output, r.unsorted(be, h), r.unsorted(be, c)};
  if (grad) {
    auto node = make_node<LstmLayerBackward>({&x_in, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh});
    if (r.packed) {
      node->x_rows = x_rows;
    } else {
      node->x = SavedTensor(x);
    }
    node->w_ih = SavedTensor(w_ih);
    node->w_hh = SavedTensor(w_hh);
    node->rows = rows;
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
