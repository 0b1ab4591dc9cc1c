// The boundary between the CUDA backend's host code (cuda_backend.cpp, compiled by g++, which
// knows Tensor, fmt and the iteration plans) and its kernels (*.cu, compiled by nvcc, which see
// only these plain structs). Every launcher queues its kernels on `stream` and returns
// cudaGetLastError(), which the caller checks with the file and line of the call.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype_base.h"
#include "kernels/ops_enum.h"

namespace attn::cuda {

using kernels::BinaryOp;
using kernels::UnaryOp;

inline constexpr int kMaxDims = 8;      // dims left after coalescing; more is refused up front
inline constexpr int kMaxOperands = 4;

// Maps a linear index of an iteration space to per-operand offsets (bytes or elements, as the
// kernel that reads it documents).
struct OffsetCalc {
  int ndim = 0;
  int nops = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxOperands][kMaxDims] = {};
};

// An elementwise launch: out = f(in...), operand 0 is out. `contiguous`: every operand is a
// dense run of n elements (or, with stride 0, one repeated element is not contiguous).
struct ElementwiseArgs {
  int64_t n = 0;
  bool contiguous = false;
  OffsetCalc calc;  // byte offsets
  void* ptr[kMaxOperands] = {};
};

cudaError_t launch_fill(DType dtype, const ElementwiseArgs& a, double value, cudaStream_t stream);
cudaError_t launch_copy(DType dst, DType src, const ElementwiseArgs& a, cudaStream_t stream);
cudaError_t launch_unary(UnaryOp op, DType in, double scalar, const ElementwiseArgs& a, cudaStream_t stream);
cudaError_t launch_binary(BinaryOp op, DType in, const ElementwiseArgs& a, cudaStream_t stream);
cudaError_t launch_where(DType dtype, const ElementwiseArgs& a, cudaStream_t stream);  // out, cond, a, b
cudaError_t launch_masked_fill(DType dtype, const ElementwiseArgs& a, double value, cudaStream_t stream);  // out, x, mask
// Whether the kernels define `op` for dtype (host-side check before launching).
bool unary_supported(UnaryOp op, DType in);
bool binary_supported(BinaryOp op, DType in);

// A sum: out[k] = sum over r of x[kept(k) + red(r)]. Offsets in elements; kept has operands
// (x, out), red has operand x only. `partial` (float64, n_out * chunks) is scratch for splitting
// long reductions over several blocks; chunks = 1 means no split.
struct SumArgs {
  int64_t n_out = 0, n_red = 0, chunks = 1;
  OffsetCalc kept, red;
  const void* x = nullptr;
  void* out = nullptr;
  double* partial = nullptr;
  bool inner_kept_contiguous = false;  // neighbouring outputs read neighbouring inputs
};
cudaError_t launch_sum(DType dtype, const SumArgs& a, cudaStream_t stream);

// Rows along one dim: row r of operand k starts at offset(r)[k] and steps by step[k] (elements).
struct RowArgs {
  int64_t rows = 0, len = 0;
  OffsetCalc calc;  // over the row index, element offsets
  int64_t step[kMaxOperands] = {};
  void* ptr[kMaxOperands] = {};
};
cudaError_t launch_max(DType dtype, const RowArgs& a, cudaStream_t stream);  // x, values, indices
cudaError_t launch_softmax(DType dtype, const RowArgs& a, bool log, cudaStream_t stream);  // x, out
cudaError_t launch_softmax_backward(DType dtype, const RowArgs& a, bool log, cudaStream_t stream);  // gx, gy, y

// Indexing. `bad` receives the position of the first index outside [0, rows) (or -1); with
// use_ignore, an index equal to `ignore` is not a bad one.
cudaError_t launch_find_bad_index(const int64_t* idx, int64_t idx_stride, int64_t n, int64_t rows, bool use_ignore,
                                  int64_t ignore, int64_t* bad, cudaStream_t stream);
struct GatherArgs {
  int64_t n = 0, d = 0;
  const int64_t* idx = nullptr;
  int64_t idx_stride = 1;
  void* rows = nullptr;        // (V, D) table: weight (gather) or grad_weight (scatter)
  int64_t rows_s0 = 0, rows_s1 = 1;
  void* vec = nullptr;         // (N, D): out (gather) or grad (scatter)
  int64_t vec_s0 = 0, vec_s1 = 1;
};
cudaError_t launch_index_select(DType dtype, const GatherArgs& a, cudaStream_t stream);
cudaError_t launch_index_add(DType dtype, const GatherArgs& a, cudaStream_t stream);

// Random numbers: element i of the contiguous output takes Philox word (offset + i) of seed.
cudaError_t launch_uniform(DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double low,
                           double high, cudaStream_t stream);
cudaError_t launch_normal(DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double mean,
                          double stddev, cudaStream_t stream);
cudaError_t launch_dropout_mask(DType dtype, void* mask, int64_t n, uint64_t seed, uint64_t offset, double p,
                                cudaStream_t stream);

// Negative log-likelihood rows (N, C); strides in elements.
struct NllArgs {
  int64_t n = 0, c = 0, ignore_index = -100;
  void* logp = nullptr;  // logp (forward) or grad_logp (backward)
  int64_t s0 = 0, s1 = 1;
  void* vec = nullptr;   // losses (forward) or grad_losses (backward)
  int64_t vs = 1;
  const int64_t* target = nullptr;
  int64_t ts = 1;
};
cudaError_t launch_nll(DType dtype, const NllArgs& a, cudaStream_t stream);
cudaError_t launch_nll_backward(DType dtype, const NllArgs& a, cudaStream_t stream);

// Optimizers over n contiguous elements.
struct SgdArgs {
  double lr, momentum, dampening, weight_decay, grad_scale;
  bool nesterov, first_step;
};
cudaError_t launch_sgd(DType dtype, void* p, const void* g, void* buf, int64_t n, const SgdArgs& a,
                       cudaStream_t stream);
struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
  bool decoupled;
};
cudaError_t launch_adam(DType dtype, void* p, const void* g, void* m, void* v, int64_t n, const AdamArgs& a,
                        cudaStream_t stream);

// Fused LSTM cell over the B rows running one step. Row strides (elements) per operand; unit
// inner stride. Pointers as in Backend::lstm_cell_forward / lstm_cell_backward.
struct LstmCellArgs {
  int64_t B = 0, H = 0;
  const void* xproj = nullptr;  // forward: pre-activation inputs
  int64_t xproj_s = 0;
  const void* gates = nullptr;
  int64_t gates_s = 0;
  void* h = nullptr;            // forward: state (in place); backward: dh
  int64_t h_s = 0;
  void* c = nullptr;            // forward: state; backward: dc
  int64_t c_s = 0;
  void* y = nullptr;            // forward: output at t; backward: dy (may be null)
  int64_t y_s = 0;
  void* act = nullptr;
  int64_t act_s = 0;
  void* hprev = nullptr;        // forward only
  int64_t hprev_s = 0;
  void* cprev = nullptr;
  int64_t cprev_s = 0;
  void* dgates = nullptr;       // backward only
  int64_t dgates_s = 0;
};
cudaError_t launch_lstm_cell_forward(DType dtype, const LstmCellArgs& a, cudaStream_t stream);
cudaError_t launch_lstm_cell_backward(DType dtype, const LstmCellArgs& a, cudaStream_t stream);

// Fused attention; all tensors contiguous: query (B, T, D), keys (B, S, D) and v (D) when
// additive (null for dot), values (B, S, H), context (B, T, H), weights (B, T, S).
struct AttentionArgs {
  int64_t B = 0, T = 0, S = 0, D = 0, H = 0;
  const int64_t* lengths = nullptr;
  const void* query = nullptr;
  const void* keys = nullptr;
  const void* v = nullptr;
  const void* values = nullptr;
  void* context = nullptr;
  void* weights = nullptr;
  // backward
  const void* d_context = nullptr;
  const void* d_weights = nullptr;  // may be null
  void* dquery = nullptr;
  void* dkeys = nullptr;
  void* dv = nullptr;
  void* dvalues = nullptr;
  void* scratch = nullptr;  // B * T * S: forward, the raw scores (element type); backward, d(score) (float64)
  void* tanh_cache = nullptr;  // optional (B, T, S, D): written by the forward, read by the backward
};
cudaError_t launch_attention_forward(DType dtype, const AttentionArgs& a, cudaStream_t stream);
cudaError_t launch_attention_backward(DType dtype, const AttentionArgs& a, cudaStream_t stream);

// Fused softmax + NLL over contiguous logits (N, V).
struct SoftmaxNllArgs {
  int64_t N = 0, V = 0, ignore_index = -100;
  double smoothing = 0.0;
  const void* logits = nullptr;
  const int64_t* target = nullptr;
  int64_t target_s = 1;
  void* losses = nullptr;  // forward
  void* lse = nullptr;     // (N, 2): max, log_sum per row; forward out, backward in
  const void* grad_losses = nullptr;  // backward
  int64_t grad_losses_s = 1;
  void* grad_logits = nullptr;
};
cudaError_t launch_softmax_nll_forward(DType dtype, const SoftmaxNllArgs& a, cudaStream_t stream);
cudaError_t launch_softmax_nll_backward(DType dtype, const SoftmaxNllArgs& a, cudaStream_t stream);

// total (one double on the device) += sum of x^2 over n contiguous elements.
cudaError_t launch_sum_squares(DType dtype, const void* x, int64_t n, double* total, cudaStream_t stream);

// Grid size for a grid-stride loop of n items with `threads` per block.
int grid_for(int64_t n, int threads);

// The most blocks a grid's x dimension takes (y and z: 65535). Kernels with one block per row
// check it on the host: a count past it failed to launch, and one past 2^32 wrapped to a
// smaller grid that silently left rows unwritten.
inline constexpr int64_t kMaxGridX = 2147483647;

}  // namespace attn::cuda
