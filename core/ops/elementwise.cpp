// Elementwise ops and their backward rules: arithmetic with broadcasting, math functions,
// comparisons, where and masked_fill.
#include "core/autograd/node.h"
#include "core/ops/op_utils.h"
#include "core/ops/ops.h"
#include "kernels/backend.h"

namespace attn {

using kernels::BinaryOp;
using kernels::UnaryOp;

// ------------------------------------------------------------------ helpers

Tensor binary_out(BinaryOp op, const Tensor& a, const Tensor& b) {
  const std::string_view name = kernels::op_name(op);
  check_defined(a, name);
  check_defined(b, name);
  ATTN_CHECK(a.dtype() == b.dtype(), DTypeError, "{}: dtypes differ ({} and {}), for shapes {} and {}",
             name, a.dtype(), b.dtype(), a.shape(), b.shape());
  auto& be = kernels::dispatch(name, {&a, &b});
  const DType out_dtype = kernels::is_comparison(op) ? DType::Bool : a.dtype();
  Tensor out = a.shape() == b.shape() ? empty(a.shape(), {out_dtype, a.device()})
                                      : empty(broadcast_shapes(a.shape(), b.shape(), name),
                                              {out_dtype, a.device()});
  be.binary(op, out, a, b);
  return out;
}

Tensor unary_out(UnaryOp op, const Tensor& x, double scalar) {
  check_defined(x, kernels::op_name(op));
  const bool arithmetic = op == UnaryOp::AddScalar || op == UnaryOp::MulScalar || op == UnaryOp::RSubScalar;
  ATTN_CHECK(!arithmetic || holds_value(x.dtype(), scalar), DTypeError,
             "{}: a {} tensor and the scalar {}, which is not a {} value: the result would be cut to {} (PyTorch "
             "promotes to float); convert the tensor to a floating dtype first",
             kernels::op_name(op), x.dtype(), scalar, x.dtype(), x.dtype());
  const DType out_dtype = kernels::is_comparison(op) ? DType::Bool : x.dtype();
  Tensor out = empty(x.shape(), {out_dtype, x.device()});
  kernels::backend(x.device()).unary(op, out, x, scalar);
  return out;
}

// ------------------------------------------------------------------ add / sub

namespace {

struct AddBackward final : Node {
  Shape a_shape, b_shape;
  double b_sign = 1.0;  // -1 for sub
  std::string_view name() const override { return b_sign > 0 ? "AddBackward" : "SubBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(2);
    if (should_compute(0)) out[0] = sum_to(g[0], a_shape);
    if (should_compute(1)) out[1] = sum_to(b_sign > 0 ? g[0] : neg(g[0]), b_shape);
    return out;
  }
};

Tensor add_sub(const Tensor& a, const Tensor& b, BinaryOp op) {
  Tensor out = binary_out(op, a, b);
  if (needs_grad(a, b)) {
    auto node = make_node<AddBackward>({&a, &b});
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    node->b_sign = op == BinaryOp::Add ? 1.0 : -1.0;
    set_history(out, node);
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return add_sub(a, b, BinaryOp::Add); }
Tensor sub(const Tensor& a, const Tensor& b) { return add_sub(a, b, BinaryOp::Sub); }

// ------------------------------------------------------------------ mul / div

namespace {

struct MulBackward final : Node {
  SavedTensor a, b;
  Shape a_shape, b_shape;
  std::string_view name() const override { return "MulBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(2);
    if (should_compute(0)) out[0] = sum_to(mul(g[0], b.unpack(name())), a_shape);
    if (should_compute(1)) out[1] = sum_to(mul(g[0], a.unpack(name())), b_shape);
    return out;
  }
  void release_saved() override {
    a.release();
    b.release();
  }
};

struct DivBackward final : Node {
  SavedTensor a, b;
  Shape a_shape, b_shape;
  std::string_view name() const override { return "DivBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(2);
    Tensor bb = b.unpack(name());
    if (should_compute(0)) out[0] = sum_to(div(g[0], bb), a_shape);
    if (should_compute(1)) {
      // d(a/b)/db = -a / b^2
      out[1] = sum_to(neg(div(mul(g[0], a.unpack(name())), mul(bb, bb))), b_shape);
    }
    return out;
  }
  void release_saved() override {
    a.release();
    b.release();
  }
};

}  // namespace

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_out(BinaryOp::Mul, a, b);
  if (needs_grad(a, b)) {
    auto node = make_node<MulBackward>({&a, &b});
    if (needs_grad(b)) node->a = SavedTensor(a);
    if (needs_grad(a)) node->b = SavedTensor(b);
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    set_history(out, node);
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_out(BinaryOp::Div, a, b);
  if (needs_grad(a, b)) {
    auto node = make_node<DivBackward>({&a, &b});
    if (needs_grad(b)) node->a = SavedTensor(a);
    node->b = SavedTensor(b);
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    set_history(out, node);
  }
  return out;
}

// ------------------------------------------------------------------ maximum

namespace {
// As PyTorch: a tie splits the gradient in halves; where a or b is NaN (no order) both get it
// all; otherwise the larger one.
struct MaximumBackward final : Node {
  SavedTensor a_lt_b, a_gt_b, tie;  // bool
  Shape a_shape, b_shape;
  std::string_view name() const override { return "MaximumBackward"; }
  TensorList apply(TensorList& g) override {
    const Tensor halved = where(tie.unpack(name()), mul(g[0], 0.5), g[0]);
    TensorList out(2);
    if (should_compute(0)) out[0] = sum_to(masked_fill(halved, a_lt_b.unpack(name()), 0.0), a_shape);
    if (should_compute(1)) out[1] = sum_to(masked_fill(halved, a_gt_b.unpack(name()), 0.0), b_shape);
    return out;
  }
  void release_saved() override {
    a_lt_b.release();
    a_gt_b.release();
    tie.release();
  }
};
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_out(BinaryOp::Maximum, a, b);
  if (needs_grad(a, b)) {
    auto node = make_node<MaximumBackward>({&a, &b});
    node->a_lt_b = SavedTensor(lt(a, b));
    node->a_gt_b = SavedTensor(gt(a, b));
    node->tie = SavedTensor(eq(a, b));
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    set_history(out, node);
  }
  return out;
}

// ------------------------------------------------------------------ scalar forms

namespace {

// Backward of x -> f(x, s) for the affine scalar ops: grad * factor.
struct ScaleBackward final : Node {
  double factor = 1.0;
  std::string_view op;
  std::string_view name() const override { return op; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    out[0] = factor == 1.0 ? g[0] : mul(g[0], factor);
    return out;
  }
};

Tensor scalar_affine(UnaryOp op, const Tensor& a, double s, double grad_factor,
                     std::string_view node_name) {
  Tensor out = unary_out(op, a, s);
  if (needs_grad(a)) {
    auto node = make_node<ScaleBackward>({&a});
    node->factor = grad_factor;
    node->op = node_name;
    set_history(out, node);
  }
  return out;
}

struct RDivBackward final : Node {
  SavedTensor x;
  double s = 1.0;
  std::string_view name() const override { return "RDivBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor xx = x.unpack(name());
    TensorList out(1);
    out[0] = div(mul(g[0], -s), mul(xx, xx));  // d(s/x)/dx = -s/x^2
    return out;
  }
  void release_saved() override { x.release(); }
};

struct PowBackward final : Node {
  SavedTensor x;
  double e = 1.0;
  std::string_view name() const override { return "PowBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    // x^0 is constant: its gradient is 0 everywhere, also at x = 0 (where x^-1 * 0 is NaN)
    out[0] = e == 0.0 ? zeros_like(g[0]) : mul(g[0], mul(pow(x.unpack(name()), e - 1.0), e));
    return out;
  }
  void release_saved() override { x.release(); }
};

}  // namespace

Tensor add(const Tensor& a, double s) { return scalar_affine(UnaryOp::AddScalar, a, s, 1.0, "AddScalarBackward"); }
Tensor sub(const Tensor& a, double s) { return scalar_affine(UnaryOp::AddScalar, a, -s, 1.0, "SubScalarBackward"); }
Tensor mul(const Tensor& a, double s) { return scalar_affine(UnaryOp::MulScalar, a, s, s, "MulScalarBackward"); }
Tensor div(const Tensor& a, double s) { return scalar_affine(UnaryOp::DivScalar, a, s, 1.0 / s, "DivScalarBackward"); }
Tensor rsub(double s, const Tensor& a) { return scalar_affine(UnaryOp::RSubScalar, a, s, -1.0, "RSubBackward"); }
Tensor neg(const Tensor& a) { return scalar_affine(UnaryOp::Neg, a, 0.0, -1.0, "NegBackward"); }

Tensor rdiv(double s, const Tensor& a) {
  Tensor out = unary_out(UnaryOp::RDivScalar, a, s);
  if (needs_grad(a)) {
    auto node = make_node<RDivBackward>({&a});
    node->x = SavedTensor(a);
    node->s = s;
    set_history(out, node);
  }
  return out;
}

Tensor pow(const Tensor& a, double exponent) {
  Tensor out = unary_out(UnaryOp::PowScalar, a, exponent);
  if (needs_grad(a)) {
    auto node = make_node<PowBackward>({&a});
    node->x = SavedTensor(a);
    node->e = exponent;
    set_history(out, node);
  }
  return out;
}

// ------------------------------------------------------------------ math functions

namespace {

// Backward rules that need the op's output y (exp, tanh, sigmoid, relu, sqrt) or input x
// (log, square).
enum class MathRule { Exp, Tanh, Sigmoid, Relu, Sqrt, Log, Square };

struct MathBackward final : Node {
  SavedTensor saved;  // y or x, by rule
  MathRule rule;
  explicit MathBackward(MathRule r) : rule(r) {}
  std::string_view name() const override {
    switch (rule) {
      case MathRule::Exp: return "ExpBackward";
      case MathRule::Tanh: return "TanhBackward";
      case MathRule::Sigmoid: return "SigmoidBackward";
      case MathRule::Relu: return "ReluBackward";
      case MathRule::Sqrt: return "SqrtBackward";
      case MathRule::Log: return "LogBackward";
      case MathRule::Square: return "SquareBackward";
    }
    return "?";
  }
  TensorList apply(TensorList& g) override {
    Tensor s = saved.unpack(name());
    TensorList out(1);
    switch (rule) {
      case MathRule::Exp: out[0] = mul(g[0], s); break;
      case MathRule::Tanh: out[0] = binary_out(BinaryOp::TanhBackward, g[0], s); break;
      case MathRule::Sigmoid: out[0] = binary_out(BinaryOp::SigmoidBackward, g[0], s); break;
      case MathRule::Relu: out[0] = binary_out(BinaryOp::ReluBackward, g[0], s); break;
      case MathRule::Sqrt: out[0] = div(g[0], mul(s, 2.0)); break;
      case MathRule::Log: out[0] = div(g[0], s); break;
      case MathRule::Square: out[0] = mul(g[0], mul(s, 2.0)); break;
    }
    return out;
  }
  void release_saved() override { saved.release(); }
};

Tensor math(UnaryOp op, MathRule rule, const Tensor& x) {
  Tensor y = unary_out(op, x, 0.0);
  if (needs_grad(x)) {
    auto node = make_node<MathBackward>({&x}, rule);
    const bool saves_input = rule == MathRule::Log || rule == MathRule::Square;
    node->saved = saves_input ? SavedTensor(x) : SavedTensor(y, /*is_output=*/true);
    set_history(y, node);
  }
  return y;
}

}  // namespace

Tensor exp(const Tensor& x) { return math(UnaryOp::Exp, MathRule::Exp, x); }
Tensor log(const Tensor& x) { return math(UnaryOp::Log, MathRule::Log, x); }
Tensor tanh(const Tensor& x) { return math(UnaryOp::Tanh, MathRule::Tanh, x); }
Tensor sigmoid(const Tensor& x) { return math(UnaryOp::Sigmoid, MathRule::Sigmoid, x); }
Tensor relu(const Tensor& x) { return math(UnaryOp::Relu, MathRule::Relu, x); }
Tensor sqrt(const Tensor& x) { return math(UnaryOp::Sqrt, MathRule::Sqrt, x); }
Tensor square(const Tensor& x) { return math(UnaryOp::Square, MathRule::Square, x); }

// ------------------------------------------------------------------ comparisons

Tensor eq(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::Ge, a, b); }
Tensor eq(const Tensor& a, double s) { return unary_out(UnaryOp::EqScalar, a, s); }
Tensor ne(const Tensor& a, double s) { return unary_out(UnaryOp::NeScalar, a, s); }
Tensor lt(const Tensor& a, double s) { return unary_out(UnaryOp::LtScalar, a, s); }
Tensor le(const Tensor& a, double s) { return unary_out(UnaryOp::LeScalar, a, s); }
Tensor gt(const Tensor& a, double s) { return unary_out(UnaryOp::GtScalar, a, s); }
Tensor ge(const Tensor& a, double s) { return unary_out(UnaryOp::GeScalar, a, s); }
Tensor logical_not(const Tensor& a) { return unary_out(UnaryOp::LogicalNot, a, 0.0); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::LogicalAnd, a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return binary_out(BinaryOp::LogicalOr, a, b); }

// ------------------------------------------------------------------ where / masked_fill

namespace {

struct WhereBackward final : Node {
  SavedTensor cond;
  Shape a_shape, b_shape;
  std::string_view name() const override { return "WhereBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor c = cond.unpack(name());
    TensorList out(2);
    if (should_compute(0)) out[0] = sum_to(masked_fill(g[0], logical_not(c), 0.0), a_shape);
    if (should_compute(1)) out[1] = sum_to(masked_fill(g[0], c, 0.0), b_shape);
    return out;
  }
  void release_saved() override { cond.release(); }
};

struct MaskedFillBackward final : Node {
  SavedTensor mask;
  Shape x_shape;
  std::string_view name() const override { return "MaskedFillBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    out[0] = sum_to(masked_fill(g[0], mask.unpack(name()), 0.0), x_shape);
    return out;
  }
  void release_saved() override { mask.release(); }
};

void check_mask(const Tensor& mask, std::string_view op) {
  check_defined(mask, op);
  ATTN_CHECK(mask.dtype() == DType::Bool, DTypeError, "{}: the mask must be bool, got {} (shape {})",
             op, mask.dtype(), mask.shape());
}

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_mask(cond, "where");
  check_defined(a, "where");
  check_defined(b, "where");
  ATTN_CHECK(a.dtype() == b.dtype(), DTypeError, "where: dtypes differ ({} and {})", a.dtype(), b.dtype());
  auto& be = kernels::dispatch("where", {&cond, &a, &b});
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, {a.dtype(), a.device()});
  be.where(out, cond, a, b);
  if (needs_grad(a, b)) {
    auto node = make_node<WhereBackward>({&a, &b});
    node->cond = SavedTensor(cond);
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    set_history(out, node);
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined(x, "masked_fill");
  check_mask(mask, "masked_fill");
  check_fill_value(x.dtype(), value, "masked_fill");
  auto& be = kernels::dispatch("masked_fill", {&x, &mask});
  Tensor out = empty(broadcast_shapes(x.shape(), mask.shape(), "masked_fill"), {x.dtype(), x.device()});
  be.masked_fill(out, x, mask, value);
  if (needs_grad(x)) {
    auto node = make_node<MaskedFillBackward>({&x});
    node->mask = SavedTensor(mask);
    node->x_shape = x.shape();
    set_history(out, node);
  }
  return out;
}

}  // namespace attn
