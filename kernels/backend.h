// The one dispatch point between ops and devices.
//
// An op (core/ops/*) checks its arguments, allocates its outputs and calls the kernels of the
// Backend that owns its tensors' device: kernels/cpu/ implements every method with OpenMP and
// OpenBLAS, kernels/cuda/ with CUDA kernels and cuBLAS. Kernels never allocate outputs and never
// touch autograd; they read inputs with any strides (stride 0 = broadcast) and write outputs.
// Adding a kernel = one pure virtual here, one override per backend, one line in the backend
// parity test (tests/test_backend_ops.cpp).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops_enum.h"

namespace attn::kernels {

struct SgdConfig {
  double lr = 0.01, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  double grad_scale = 1.0;  // the gradient is used times this (clipping, fused)
  bool nesterov = false;
  bool first_step = true;  // the momentum buffer starts as a copy of the gradient
};

struct AdamConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double grad_scale = 1.0;              // the gradient is used times this (clipping, fused)
  bool decoupled_weight_decay = false;  // AdamW
  int64_t step = 1;                     // 1-based step count after this update
};

// What the cuDNN LSTM returns (see core/nn/lstm.h).
struct CudnnLstmOutput {
  Tensor output, h_n, c_n;
};

// A right-hand matrix prepared once for many products with it (see Backend::prepare_rhs).
struct PreparedMatrix {
  virtual ~PreparedMatrix() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- memory ----
  virtual void fill(const Tensor& out, double value) = 0;
  // dst = src elementwise; src broadcast to dst's shape; dtypes may differ (cast).
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  // Contiguous copy between this device and the host (either direction; same dtype and numel).
  virtual void copy_to_host(void* host_dst, const Tensor& src) = 0;
  virtual void copy_from_host(const Tensor& dst, const void* host_src) = 0;
  virtual void synchronize() = 0;

  // ---- elementwise (inputs broadcast to out's shape) ----
  virtual void unary(UnaryOp op, const Tensor& out, const Tensor& x, double scalar) = 0;
  virtual void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  virtual void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) = 0;
  virtual void masked_fill(const Tensor& out, const Tensor& x, const Tensor& mask, double value) = 0;

  // ---- reductions ----
  // out has x's rank; dims where out has size 1 and x does not are summed.
  virtual void sum(const Tensor& out, const Tensor& x) = 0;
  // values/indices have x's rank with size 1 at `dim`.
  virtual void max(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t dim) = 0;
  virtual void softmax(const Tensor& out, const Tensor& x, int64_t dim, bool log) = 0;
  virtual void softmax_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& y,
                                int64_t dim, bool log) = 0;

  // ---- matrix products ----
  // out (B, M, N) = a (B, M, K) @ b (B, K, N) (+ out if accumulate). Any strides: a unit
  // stride in either of the last two dims is passed to BLAS as a transpose flag, not copied;
  // a batch stride of 0 broadcasts.
  virtual void bmm(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) = 0;
  // For a b (K, N) that multiplies many a's (the recurrent weight of an LSTM, at every time
  // step): prepare it once (the CPU packs float matrices for its small-batch kernel; nullptr
  // where a backend has nothing to prepare), then out (M, N) = a (M, K) @ b (+ out if
  // accumulate), 2-d, with the same b and its preparation (or nullptr: a plain bmm).
  virtual std::shared_ptr<const PreparedMatrix> prepare_rhs(const Tensor& b) { return nullptr; }
  virtual void matmul_prepared(const Tensor& out, const Tensor& a, const Tensor& b, const PreparedMatrix* prepared,
                               bool accumulate);

  // ---- indexing ----
  // out (N, D) = weight[indices] with weight (V, D), indices (N) int64; IndexError when out of range.
  virtual void index_select(const Tensor& out, const Tensor& weight, const Tensor& indices) = 0;
  // The same gather for indices the caller built and knows to be in range: unchecked (on a GPU
  // the check is a synchronizing read). The LSTM layer packs padded batches with it.
  virtual void gather_rows(const Tensor& out, const Tensor& rows, const Tensor& indices) = 0;
  // grad_weight (V, D) += scatter of grad (N, D) rows at indices (N).
  virtual void index_add(const Tensor& grad_weight, const Tensor& indices, const Tensor& grad) = 0;

  // ---- random (Philox, stream position `offset` of `seed`; element i takes word offset+i) ----
  virtual void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low,
                              double high) = 0;
  virtual void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean,
                             double stddev) = 0;
  // mask = (uniform >= p) / (1 - p), the scaled keep-mask of inverted dropout.
  virtual void dropout_mask(const Tensor& mask, uint64_t seed, uint64_t offset, double p) = 0;

  // ---- losses ----
  // losses (N) = -logp[i, target[i]], 0 where target == ignore_index; IndexError out of range.
  virtual void nll_loss(const Tensor& losses, const Tensor& logp, const Tensor& target,
                        int64_t ignore_index) = 0;
  // grad_logp (N, C), zero on entry: grad_logp[i, target[i]] = -grad_losses[i].
  virtual void nll_loss_backward(const Tensor& grad_logp, const Tensor& grad_losses,
                                 const Tensor& target, int64_t ignore_index) = 0;

  // ---- fused LSTM cell: one time step over the rows still running (core/ops/lstm.cpp) ----
  // Pre-activations z = xproj_t + gates (both (R, 4H), gate order i, f, g, o):
  // c = s(f) c + s(i) tanh(g), h = s(o) tanh(c), y_t = h. Saves act_t = (s(i), s(f), tanh(g),
  // s(o)) and the state before the step (hprev_t, cprev_t). h and c (R, H) are updated in place;
  // all tensors have a unit inner stride and any row stride. Padding never reaches the cell: the
  // layer leaves finished (or not yet started) sequences out of the step's rows.
  virtual void lstm_cell_forward(const Tensor& xproj_t, const Tensor& gates, const Tensor& h, const Tensor& c,
                                 const Tensor& y_t, const Tensor& act_t, const Tensor& hprev_t,
                                 const Tensor& cprev_t) = 0;
  // Backward of that step. dh, dc (R, H) hold the gradients w.r.t. the state after the step and
  // are replaced by those w.r.t. the state before it, except dh's path through W_hh, which the
  // caller adds with one GEMM (dgates_t W_hh). dgates_t (R, 4H) is written. dy_t may be undefined.
  virtual void lstm_cell_backward(const Tensor& act_t, const Tensor& cprev_t, const Tensor& dy_t, const Tensor& dh,
                                  const Tensor& dc, const Tensor& dgates_t) = 0;

  // ---- fused attention (core/ops/attention.cpp) ----
  // query (B, T, D); keys (B, S, D) and v (D) for additive scoring, undefined for dot scoring
  // (then D = H); values (B, S, H); lengths (B). Writes context (B, T, H) and weights (B, T, S).
  // tanh_cache (B, T, S, D), additive only and optional: receives tanh(query + keys) at the
  // unmasked positions, for the backward to read instead of recomputing. keys_exp2 (B, S, D),
  // optional, CPU only: exp(2 keys) with every |key| <= 40 (AdditiveKeys in core/ops/fused.h),
  // for tanh(q + k) = 1 - 2 / (1 + exp(2q) exp(2k)) at rows whose |query| entries are <= 40.
  virtual void attention_forward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                                 const Tensor& values, const Tensor& lengths, const Tensor& context,
                                 const Tensor& weights, const Tensor& tanh_cache) = 0;
  // exp(2 keys) for attention_forward's keys_exp2, in one pass, or undefined where a backend does
  // not use that form (CUDA) or some |key| > 40 (or is NaN). keys contiguous.
  virtual Tensor additive_keys_exp2(const Tensor& keys) { return Tensor(); }
  // Gradients, written (not accumulated): dquery (B, T, D), dkeys (B, S, D) and dv (D) (additive
  // only), dvalues (B, S, H). d_weights, keys_exp2 and tanh_cache may be undefined; without a
  // cache the tanh terms are recomputed (from keys_exp2 where the forward used it).
  virtual void attention_backward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                                  const Tensor& values, const Tensor& lengths, const Tensor& weights,
                                  const Tensor& tanh_cache,
                                  const Tensor& d_context, const Tensor& d_weights, const Tensor& dquery,
                                  const Tensor& dkeys, const Tensor& dv, const Tensor& dvalues) = 0;

  // ---- fused softmax + NLL (core/ops/softmax_nll.cpp) ----
  // losses (N): per-row loss (0 at ignored rows); lse (N, 2): each row's log-sum-exp as its max and
  // log(sum exp(x - max)) (the backward's (x - max) - log_sum keeps the precision of large logits).
  virtual void softmax_nll_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                   double smoothing, const Tensor& losses, const Tensor& lse) = 0;
  // grad_logits (N, V) = grad_losses[i] * (softmax(logits[i]) - q_i), 0 at ignored rows.
  virtual void softmax_nll_backward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                    double smoothing, const Tensor& lse, const Tensor& grad_losses,
                                    const Tensor& grad_logits) = 0;

  // ---- cuDNN's LSTM for a whole stack (CUDA only; the CPU backend raises DeviceError) ----
  // x (B, S, I), lengths (B), hx/cx (L*D, B, H), params = (w_ih, w_hh, b_ih, b_hh) per layer and
  // direction in PyTorch's order. Records its own autograd node. Dropout between layers draws
  // its masks from `dropout_seed` (callers pass a fresh one per call).
  virtual CudnnLstmOutput cudnn_lstm(const Tensor& x, const Tensor& lengths, const Tensor& hx, const Tensor& cx,
                                     const std::vector<Tensor>& params, int64_t num_layers, bool bidirectional,
                                     double dropout, uint64_t dropout_seed = 0);

  // ---- optimizers (contiguous tensors of one shape, updated in place) ----
  // total (0-d float64) += sum of x^2 over a contiguous x (gradient-norm clipping).
  virtual void sum_squares(const Tensor& total, const Tensor& x) = 0;
  virtual void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                        const SgdConfig& cfg) = 0;
  virtual void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                         const Tensor& exp_avg_sq, const AdamConfig& cfg) = 0;
};

// TF32 tensor-core math for float32 GEMMs on GPUs that have it (off by default, so that GPU
// results stay within float32 rounding of the CPU's).
void set_allow_tf32(bool on);
bool allow_tf32();

// The backend of a device; DeviceError when the engine was built without it or no device is
// present.
Backend& backend(Device device);
bool has_backend(DeviceType type);
// Why has_backend(type) is false (built without it, no device, the driver's error).
std::string backend_unavailable_reason(DeviceType type);

// The dispatch point: checks that all defined tensors live on one device and returns its
// backend. Mixed devices are a DeviceError naming the op and the devices.
Backend& dispatch(std::string_view op, std::initializer_list<const Tensor*> tensors);

}  // namespace attn::kernels
