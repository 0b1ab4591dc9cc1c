// Matrix products: matmul (numpy semantics, broadcast batch dims), bmm and linear. All go to the
// backend's bmm kernel, which takes transposed operands as strides rather than copies.
#include "core/autograd/node.h"
#include "core/ops/op_utils.h"
#include "core/ops/ops.h"

namespace attn {

namespace {

// out (B, M, N) = a (Ba, M, K) @ b (Bb, K, N) with Ba, Bb in {1, B}; no autograd.
Tensor bmm_raw(const Tensor& a, const Tensor& b) {
  const int64_t B = a.size(0) == 1 ? b.size(0) : a.size(0);  // (not max: a batch of 0 against a broadcast 1 is 0)
  const int64_t M = a.size(1), N = b.size(2), K = a.size(2);
  auto& be = kernels::dispatch("matmul", {&a, &b});
  if (a.size(0) == B && b.size(0) == 1 && B > 1 && a.stride(0) == M * a.stride(1) && a.stride(2) == 1) {
    // A shared right operand (a weight): one (B*M, K) @ (K, N) product instead of B small ones.
    Tensor out = empty(Shape{1, B * M, N}, {a.dtype(), a.device()});
    be.bmm(out, alias(a, Shape{1, B * M, K}, Strides{0, a.stride(1), 1}, a.offset()), b, false);
    return alias(out, Shape{B, M, N}, contiguous_strides(Shape{B, M, N}), 0);
  }
  Tensor out = empty(Shape{B, M, N}, {a.dtype(), a.device()});
  be.bmm(out, a, b, false);
  return out;
}

struct BmmBackward final : Node {
  SavedTensor a, b;          // each saved only when the other operand needs a gradient
  Shape a_shape, b_shape;    // always: a gradient takes its operand's shape
  std::string_view name() const override { return "BmmBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor aa = a.unpack(name()), bb = b.unpack(name());
    const Tensor& gg = g[0];  // (B, M, N)
    TensorList out(2);
    if (should_compute(0)) {
      Tensor ga = bmm_raw(gg, bb.transpose(1, 2));  // (B, M, K)
      out[0] = sum_to(ga, a_shape);
    }
    if (should_compute(1)) {
      const int64_t B = gg.size(0), M = gg.size(1), N = gg.size(2), K = a_shape[2];
      if (b_shape[0] == 1 && B > 1) {
        // sum_i a_i^T g_i = (a as (B*M, K))^T @ (g as (B*M, N))
        Tensor a2 = aa.expand(Shape{B, M, K}).contiguous().view(Shape{1, B * M, K});
        Tensor g2 = gg.contiguous().view(Shape{1, B * M, N});
        out[1] = bmm_raw(a2.transpose(1, 2), g2);
      } else {
        out[1] = sum_to(bmm_raw(aa.transpose(1, 2), gg), b_shape);
      }
    }
    return out;
  }
  void release_saved() override {
    a.release();
    b.release();
  }
};

// Differentiable 3-d product with batch broadcasting of size-1 batches.
Tensor bmm_node(const Tensor& a, const Tensor& b) {
  Tensor out = bmm_raw(a, b);
  if (needs_grad(a, b)) {
    auto node = make_node<BmmBackward>({&a, &b});
    if (needs_grad(b)) node->a = SavedTensor(a);
    if (needs_grad(a)) node->b = SavedTensor(b);
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    set_history(out, node);
  }
  return out;
}

void check_matmul_dtypes(const Tensor& a, const Tensor& b, std::string_view op) {
  check_defined(a, op);
  check_defined(b, op);
  check_floating(a, op);
  ATTN_CHECK(a.dtype() == b.dtype(), DTypeError, "{}: dtypes differ ({} and {})", op, a.dtype(), b.dtype());
}

// (batch..., R, C) as (B, R, C) where B is the product of `batch` (a view when possible).
Tensor as_batched(const Tensor& t, const Shape& batch) {
  const int64_t R = t.size(-2), C = t.size(-1);
  const int64_t tb = t.dim() - 2;
  bool all_one = true;
  for (int64_t d = 0; d < tb; ++d) all_one = all_one && t.size(d) == 1;
  if (all_one) return t.reshape(Shape{1, R, C});
  Shape full = batch;
  full.push_back(R);
  full.push_back(C);
  return t.expand(full).reshape(Shape{numel_of(batch), R, C});
}

}  // namespace

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_matmul_dtypes(a, b, "bmm");
  ATTN_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError, "bmm: expects 3-d tensors, got shapes {} and {}",
             a.shape(), b.shape());
  ATTN_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), ShapeError,
             "bmm: shapes {} and {} cannot be multiplied", a.shape(), b.shape());
  return bmm_node(a, b);
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_matmul_dtypes(a_in, b_in, "matmul");
  ATTN_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, ShapeError,
             "matmul: both operands need at least one dim, got shapes {} and {}", a_in.shape(),
             b_in.shape());
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  Tensor a = a_vec ? a_in.unsqueeze(0) : a_in;   // (1, K)
  Tensor b = b_vec ? b_in.unsqueeze(-1) : b_in;  // (K, 1)
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  ATTN_CHECK(b.size(-2) == K, ShapeError,
             "matmul: shapes {} and {} cannot be multiplied ({} columns vs {} rows)", a_in.shape(),
             b_in.shape(), K, b.size(-2));
  Shape a_batch(a.shape().begin(), a.shape().end() - 2);
  Shape b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  Tensor out = bmm_node(as_batched(a, batch), as_batched(b, batch));  // (B, M, N)
  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(M);
  if (!b_vec) out_shape.push_back(N);
  return out.reshape(out_shape);
}

// ------------------------------------------------------------------ linear

namespace {

// Rows of t seen as a matrix over its last dimension: the product of the others (reshape with -1
// cannot infer it when the last dimension is 0).
int64_t leading_rows(const Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) n *= t.size(d);
  return n;
}

struct LinearBackward final : Node {
  SavedTensor x2, weight;  // x as (N, in); weight (out, in)
  Shape x_shape;
  std::string_view name() const override { return "LinearBackward"; }
  TensorList apply(TensorList& g) override {
    const int64_t out_f = g[0].size(-1);
    Tensor g2 = g[0].reshape(Shape{leading_rows(g[0]), out_f});  // (N, out)
    const int64_t N = g2.size(0);
    auto& be = kernels::backend(g2.device());
    TensorList out(next_edges.size());
    if (should_compute(0)) {
      Tensor w = weight.unpack(name());
      const int64_t in_f = w.size(1);
      Tensor gx = empty(Shape{1, N, in_f}, {g2.dtype(), g2.device()});
      be.bmm(gx, g2.unsqueeze(0), w.unsqueeze(0), false);  // (N, out) @ (out, in)
      out[0] = alias(gx, x_shape, contiguous_strides(x_shape), 0);
    }
    if (should_compute(1)) {
      Tensor x = x2.unpack(name());
      const int64_t in_f = x.size(1);
      // into a leaf weight's .grad where it can (a decoder's weights: one call per step)
      out[1] = gradient_into_leaf_or_new(*this, 1, Shape{out_f, in_f}, g2.dtype(), g2.device(),
                                         [&](Tensor& gw, bool accumulate) {  // (out, N) @ (N, in)
                                           be.bmm(gw.unsqueeze(0), g2.t().unsqueeze(0), x.unsqueeze(0), accumulate);
                                         });
    }
    if (next_edges.size() > 2 && should_compute(2)) out[2] = sum(g2, Shape{0}, false);
    return out;
  }
  void release_saved() override {
    x2.release();
    weight.release();
  }
};

}  // namespace

namespace {

// weight (out, in) as the (in, out) right-hand side of x @ weight^T, without a copy: BLAS reads
// it with a transpose flag, the packed GEMM packs it as it is.
Tensor transposed_view(const Tensor& weight) {
  return alias(weight, Shape{weight.size(1), weight.size(0)}, Strides{weight.stride(1), weight.stride(0)}, weight.offset());
}

void check_weight_and_bias(const Tensor& weight, const Tensor& bias, std::string_view op) {
  ATTN_CHECK(weight.dim() == 2, ShapeError, "{}: weight must be (out, in), got shape {}", op, weight.shape());
  if (bias.defined()) {
    ATTN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), ShapeError,
               "{}: bias of shape {} does not match weight of shape {}", op, bias.shape(), weight.shape());
    ATTN_CHECK(bias.dtype() == weight.dtype(), DTypeError, "{}: bias is {}, weight is {}", op, bias.dtype(),
               weight.dtype());
  }
}

// Records y = linear(x, weight, bias) for the backward, where a gradient is wanted; x2 is x as
// (rows, in) when the caller has it.
void record_linear(Tensor& y, const Tensor& x, Tensor x2, const Tensor& weight, const Tensor& bias) {
  if (!needs_grad(x, weight, bias)) return;
  auto node = bias.defined() ? make_node<LinearBackward>({&x, &weight, &bias}) : make_node<LinearBackward>({&x, &weight});
  if (needs_grad(weight)) {
    if (!x2.defined()) {
      NoGradGuard g;
      x2 = x.reshape(Shape{leading_rows(x), x.size(-1)});
    }
    node->x2 = SavedTensor(x2);
  }
  if (needs_grad(x)) node->weight = SavedTensor(weight);
  node->x_shape = x.shape();
  set_history(y, node);
}

// x (..., in) @ weight^T + bias: by BLAS, or by the packed GEMM from `packed` (prepare_linear).
Tensor linear_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, const kernels::PreparedMatrix* packed) {
  check_matmul_dtypes(x, weight, "linear");
  check_weight_and_bias(weight, bias, "linear");
  ATTN_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), ShapeError,
             "linear: input of shape {} does not match weight of shape {} (expects last dim {})",
             x.shape(), weight.shape(), weight.size(1));
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  auto& be = kernels::dispatch("linear", {&x, &weight, &bias});
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = empty(out_shape, {x.dtype(), x.device()});
  Tensor x2;
  {
    NoGradGuard g;  // record_linear below records the whole op
    x2 = x.reshape(Shape{leading_rows(x), in_f});
    const Tensor out2 = alias(out, Shape{x2.size(0), out_f}, Strides{out_f, 1}, 0);
    if (bias.defined()) be.copy(out2, bias);  // rows start as the bias, the product adds on
    if (packed) {
      be.matmul_prepared(out2, x2.contiguous(), transposed_view(weight), packed, bias.defined());
    } else {
      be.bmm(out2.unsqueeze(0), x2.unsqueeze(0), transposed_view(weight).unsqueeze(0), bias.defined());
    }
  }
  record_linear(out, x, x2, weight, bias);
  return out;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) { return linear_impl(x, weight, bias, nullptr); }

Tensor linear_with_output(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y_in) {
  check_matmul_dtypes(x, weight, "linear_with_output");
  Shape expect = x.shape();
  expect.back() = weight.size(0);
  ATTN_CHECK(y_in.defined() && y_in.shape() == expect && x.size(-1) == weight.size(1), ShapeError,
             "linear_with_output: input {} and weight {} give {}, but the output given is {}", x.shape(), weight.shape(),
             expect, y_in.defined() ? y_in.shape() : Shape{});
  Tensor y = y_in.detach();
  record_linear(y, x, Tensor(), weight, bias);
  return y;
}

PreparedLinear prepare_linear(const Tensor& weight, const Tensor& bias) {
  check_defined(weight, "prepare_linear");
  check_weight_and_bias(weight, bias, "prepare_linear");
  PreparedLinear p{weight, bias, nullptr, weight.version()};
  p.packed = kernels::dispatch("prepare_linear", {&weight, &bias}).prepare_rhs(transposed_view(weight));
  return p;
}

Tensor linear(const Tensor& x, const PreparedLinear& layer) {
  ATTN_CHECK(!layer.packed || layer.weight.version() == layer.version, ValueError,
             "linear: the weight of shape {} changed in place after prepare_linear (version {} then, {} now)",
             layer.weight.shape(), layer.version, layer.weight.version());
  return linear_impl(x, layer.weight, layer.bias, layer.packed.get());
}

}  // namespace attn
