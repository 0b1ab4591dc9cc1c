// The fused kernels the engine exists for: each is one autograd op with a fused forward and a
// fused backward, on the CPU and on CUDA, with the same computation composed from primitive ops
// kept in core/ops/composed.h as its test oracle and benchmark baseline.
// Shapes: B batch, S source length, T target length, H hidden size, A attention size, V vocab.
#pragma once

#include "core/ops/ops.h"

namespace attn {

// ---------------------------------------------------------------- LSTM

struct LstmLayerOutput {
  Tensor output;  // (B, S, H): h_t at valid steps, 0 at padded ones
  Tensor h_n;     // (B, H): the state after the last valid step of each sequence
  Tensor c_n;     // (B, H)
};

// One LSTM layer in one direction over a padded batch, PyTorch's gate order (i, f, g, o) and
// weight layout: w_ih (4H, I), w_hh (4H, H), b_ih (4H), b_hh (4H). x (B, S, I); lengths (B)
// int64 in [1, S] on x's device; h0, c0 (B, H). Steps t >= lengths[b] carry h and c unchanged,
// so `reverse` (right to left) starts each sequence at its last valid token. One GEMM computes
// the input projections of all steps; each step is one GEMM (h W_hh^T) and the fused cell.
LstmLayerOutput lstm_layer(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           bool reverse = false);

// ---------------------------------------------------------------- attention

struct AttentionOutput {
  Tensor context;  // (B, H), or (B, T, H) for queries (B, T, .)
  Tensor weights;  // (B, S), or (B, T, S); exactly 0 at padded source positions
};

// Additive scoring (Bahdanau; the article's Luong "concat"):
//   score[b, t, s] = v . tanh(query[b, t] + keys[b, s]),
// with query = W_dec q (B, A) or (B, T, A) and keys = E W_enc^T (B, S, A) computed once per batch
// by the caller; values = E (B, S, H); lengths (B) int64 in [1, S]. Masked softmax over s < len,
// context = sum_s weights[s] values[s].
AttentionOutput additive_attention(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                                   const Tensor& lengths);

// The keys of additive attention prepared once per batch for the decoder steps that score
// against them. On the CPU it holds exp(2 keys): each step then computes
//   tanh(q + k) = 1 - 2 / (1 + exp(2q) exp(2k))
// with one multiply and one divide per term instead of a rational function (2.4x fewer cycles
// per term, max abs error 1.8e-7 against 3.3e-7; only absolute near q + k = 0, where it can give
// -1.2e-7 for +4.7e-10: harmless in v . tanh). That form is exact as long as no factor
// overflows, so it is used only while every |key| and the step's |query| entries are <= 40
// (exp(80) is finite); other rows, CUDA (whose kernels compute tanh directly) and keys
// over 40 take the plain path. Gradients flow to `keys` as with the plain op. The keys must not
// change in place after preparation (the op checks the version).
struct AdditiveKeys {
  Tensor keys;           // (B, S, A), differentiable
  Tensor exp2;           // exp(2 keys), no grad; undefined where the plain path is used
  uint64_t version = 0;  // keys.version() when prepared
};
AdditiveKeys prepare_additive_keys(const Tensor& keys);
AttentionOutput additive_attention(const Tensor& query, const AdditiveKeys& keys, const Tensor& v,
                                   const Tensor& values, const Tensor& lengths);

// Multiplicative scoring (Luong dot; general with query = W q): score[b, t, s] = query[b, t] . values[b, s].
AttentionOutput dot_attention(const Tensor& query, const Tensor& values, const Tensor& lengths);

// ---------------------------------------------------------------- softmax + NLL

// log_softmax over V and the negative log-likelihood of `target` in one op: logits (N, V),
// target (N) int64. With label smoothing e, the target distribution is (1 - e) onehot + e / V.
// Rows whose target is ignore_index count for nothing; Mean divides by the number of others.
// Saves only the log-sum-exp of each row; the backward writes softmax - target distribution.
Tensor softmax_nll(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                   double label_smoothing = 0.0, Reduction reduction = Reduction::Mean);

}  // namespace attn
