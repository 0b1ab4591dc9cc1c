// Op codes of the elementwise kernels, with no other dependency (CUDA sources include this).
#pragma once

#include <cstdint>

namespace attn::kernels {

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Tanh, Sigmoid, Relu, Sqrt, Square, Abs,
  AddScalar,   // x + s
  MulScalar,   // x * s
  RSubScalar,  // s - x
  DivScalar,   // x / s
  RDivScalar,  // s / x
  PowScalar,   // x ^ s
  // comparisons with a scalar, bool output
  EqScalar, NeScalar, LtScalar, LeScalar, GtScalar, GeScalar,
  LogicalNot,  // bool -> bool
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Maximum, Minimum,
  // fused backward rules: (grad, saved) -> grad_in
  TanhBackward,     // g * (1 - y^2), y = tanh(x)
  SigmoidBackward,  // g * y * (1 - y), y = sigmoid(x)
  ReluBackward,     // x > 0 ? g : 0
  // comparisons, bool output
  Eq, Ne, Lt, Le, Gt, Ge,
  LogicalAnd, LogicalOr,  // bool x bool -> bool
};

bool is_comparison(UnaryOp op);
bool is_comparison(BinaryOp op);
std::string_view op_name(UnaryOp op);
std::string_view op_name(BinaryOp op);

}  // namespace attn::kernels
