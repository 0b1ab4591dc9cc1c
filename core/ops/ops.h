// The differentiable ops. Each one checks its arguments (clear errors naming shapes and values),
// computes through the device's backend (kernels/backend.h), and records a backward node when an
// input requires grad. Broadcasting follows numpy/PyTorch; inputs may be strided views.
#pragma once

#include <memory>
#include <vector>

#include "core/autograd/grad_mode.h"
#include "core/random.h"
#include "core/tensor.h"

namespace attn {

namespace kernels {
struct PreparedMatrix;
}

// ---- elementwise arithmetic (broadcasting) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a
Tensor neg(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to the larger; halves on ties, all to both at NaN (as PyTorch)

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return div(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(double s, const Tensor& a) { return rdiv(s, a); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// ---- elementwise math ----
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);

// ---- comparisons and logic (bool results, no gradient) ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);
Tensor logical_not(const Tensor& a);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

// ---- selection ----
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond bool, broadcasting
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- reductions ----
Tensor sum(const Tensor& x);  // all elements, 0-d result
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
struct ValuesIndices {
  Tensor values;
  Tensor indices;  // int64
};
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x);  // the largest element, 0-d
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- matrix products ----
// matmul: 1-d and 2-d as in numpy; (..., M, K) @ (..., K, N) with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);  // (B, M, K) @ (B, K, N)
// x (..., in) @ weight (out, in)^T + bias (out); weight stays untransposed in memory.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// linear()'s backward for an output `y` the caller already computed without a graph (for
// example step by step, to pick tokens): returns y recorded as linear(x, weight, bias), so the
// weight gradient is one GEMM over all rows of x. y must equal linear(x, weight, bias).
Tensor linear_with_output(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y);
// A linear layer prepared for many products in a row with the same weight, as the decoder's
// classifier is at every step of a batch: on the CPU, float weights are packed once into the
// panels of the small-batch GEMM (kernels/cpu/packed_gemm.h), which OpenBLAS redid at every
// call (the classifier: 12 MB per step); elsewhere nothing is prepared and linear() is plain.
// linear(x, prepared) equals linear(x, weight, bias), gradients included. The weight must not
// change in place while prepared (an error names it).
struct PreparedLinear {
  Tensor weight, bias;
  std::shared_ptr<const kernels::PreparedMatrix> packed;  // W^T packed; null: the plain path
  uint64_t version = 0;                                  // weight.version() when prepared
};
PreparedLinear prepare_linear(const Tensor& weight, const Tensor& bias = Tensor());
Tensor linear(const Tensor& x, const PreparedLinear& layer);

// ---- shape ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);  // views
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// Rows `index` (int64, any shape) of x along dim 0: out[i...] = x[index[i...]]; differentiable
// (the gradient is scattered back with additions). Built on the embedding kernels.
Tensor index_rows(const Tensor& x, const Tensor& index);

// ---- nn ----
// weight (V, D), indices (...) int64 -> (..., D). Rows at padding_idx (if >= 0) get no gradient.
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);
// Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p); identity when
// !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
Tensor dropout(const Tensor& x, double p, bool training);

enum class Reduction { None, Mean, Sum };
// logp (N, C), target (N) int64. Mean divides by the number of targets not equal to ignore_index.
Tensor nll_loss(const Tensor& logp, const Tensor& target, int64_t ignore_index = -100,
                Reduction reduction = Reduction::Mean);
// logits (N, C): log_softmax over C, then nll_loss.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::Mean);

// Reduces a gradient of a broadcast result back to `shape` (sums the broadcast dims).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace attn
