// The elementwise math of every unary and binary op, written once for both backends: each op
// is a small functor callable on the host and on the device, and visit_unary / visit_binary map
// an op code to its functor. The CPU backend runs them in OpenMP loops, the CUDA backend in its
// grid-stride kernels, so the two cannot drift apart.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/dtype_base.h"
#include "core/philox.h"  // ATTN_HD
#include "kernels/cpu/fast_math.h"
#include "kernels/ops_enum.h"

namespace attn::kernels::fn {

// ---- math: the device's float functions on the GPU, the vectorizable ones of
// kernels/cpu/fast_math.h for float on the CPU, the C library for double ----
#if defined(__CUDA_ARCH__)
ATTN_HD float exp_(float x) { return ::expf(x); }
ATTN_HD float tanh_(float x) { return ::tanhf(x); }
#else
inline float exp_(float x) { return cpu::fast_exp(x); }
inline float tanh_(float x) { return cpu::fast_tanh(x); }
#endif
ATTN_HD double exp_(double x) { return ::exp(x); }
ATTN_HD float log_(float x) { return ::logf(x); }
ATTN_HD double log_(double x) { return ::log(x); }
ATTN_HD double tanh_(double x) { return ::tanh(x); }
ATTN_HD float sqrt_(float x) { return ::sqrtf(x); }
ATTN_HD double sqrt_(double x) { return ::sqrt(x); }
ATTN_HD float pow_(float x, float y) { return ::powf(x, y); }
ATTN_HD double pow_(double x, double y) { return ::pow(x, y); }
template <typename T>
ATTN_HD T sigmoid_(T x) {
  return T(1) / (T(1) + exp_(-x));
}

#define ATTN_UNARY(Name, OutT, expr)                      \
  template <typename T>                                   \
  struct Name {                                           \
    using out_t = OutT;                                   \
    T s;                                                  \
    ATTN_HD out_t operator()(T x) const { return expr; } \
  };
ATTN_UNARY(Neg, T, static_cast<T>(-x))
ATTN_UNARY(Abs, T, x < T(0) ? static_cast<T>(-x) : x)
ATTN_UNARY(Square, T, static_cast<T>(x * x))
ATTN_UNARY(Relu, T, x > T(0) || x != x ? x : T(0))  // NaN stays NaN, as in PyTorch
ATTN_UNARY(Exp, T, exp_(x))
ATTN_UNARY(Log, T, log_(x))
ATTN_UNARY(Tanh, T, tanh_(x))
ATTN_UNARY(Sigmoid, T, sigmoid_(x))
ATTN_UNARY(Sqrt, T, sqrt_(x))
ATTN_UNARY(AddScalar, T, static_cast<T>(x + s))
ATTN_UNARY(MulScalar, T, static_cast<T>(x * s))
ATTN_UNARY(RSubScalar, T, static_cast<T>(s - x))
ATTN_UNARY(DivScalar, T, x / s)
ATTN_UNARY(RDivScalar, T, s / x)
ATTN_UNARY(PowScalar, T, pow_(x, s))
ATTN_UNARY(EqScalar, bool, x == s)
ATTN_UNARY(NeScalar, bool, x != s)
ATTN_UNARY(LtScalar, bool, x < s)
ATTN_UNARY(LeScalar, bool, x <= s)
ATTN_UNARY(GtScalar, bool, x > s)
ATTN_UNARY(GeScalar, bool, x >= s)
ATTN_UNARY(LogicalNot, bool, !x)
#undef ATTN_UNARY

#define ATTN_BINARY(Name, OutT, expr)                            \
  template <typename T>                                          \
  struct Name {                                                  \
    using out_t = OutT;                                          \
    ATTN_HD out_t operator()(T a, T b) const { return expr; }   \
  };
ATTN_BINARY(Add, T, static_cast<T>(a + b))
ATTN_BINARY(Sub, T, static_cast<T>(a - b))
ATTN_BINARY(Mul, T, static_cast<T>(a * b))
ATTN_BINARY(Div, T, static_cast<T>(a / b))
ATTN_BINARY(Maximum, T, a < b || b != b ? b : a)  // a NaN on either side propagates, as in PyTorch
ATTN_BINARY(Minimum, T, b < a || b != b ? b : a)
ATTN_BINARY(TanhBackward, T, static_cast<T>(a * (T(1) - b * b)))      // a = grad, b = tanh(x)
ATTN_BINARY(SigmoidBackward, T, static_cast<T>(a * b * (T(1) - b)))   // a = grad, b = sigmoid(x)
ATTN_BINARY(ReluBackward, T, b <= T(0) ? T(0) : a)  // a = grad, b = x or relu(x); NaN passes a, as in PyTorch
ATTN_BINARY(Eq, bool, a == b)
ATTN_BINARY(Ne, bool, a != b)
ATTN_BINARY(Lt, bool, a < b)
ATTN_BINARY(Le, bool, a <= b)
ATTN_BINARY(Gt, bool, a > b)
ATTN_BINARY(Ge, bool, a >= b)
ATTN_BINARY(LogicalAnd, bool, a && b)
ATTN_BINARY(LogicalOr, bool, a || b)
#undef ATTN_BINARY

template <typename T>
struct Where {
  using out_t = T;
  ATTN_HD T operator()(bool c, T a, T b) const { return c ? a : b; }
};
template <typename T>
struct MaskedFill {
  using out_t = T;
  T value;
  ATTN_HD T operator()(T a, bool m) const { return m ? value : a; }
};
template <typename D, typename S>
struct Cast {
  using out_t = D;
  ATTN_HD D operator()(S x) const { return static_cast<D>(x); }
};
template <typename T>
struct Fill {
  using out_t = T;
  T value;
  ATTN_HD T operator()() const { return value; }
};

}  // namespace attn::kernels::fn

namespace attn::kernels {

// An integer tensor compared with a scalar that is not an integer of its range (2.5, 1e19, NaN)
// cannot cast the scalar to the element type (2.5 would become 2); the same comparison is made
// with an integer scalar instead, exactly: x < 2.5 is x < 3, x <= 2.5 is x <= 2, x == 2.5 is
// never true, and beyond the range everything is on one side. Returns false when nothing changed.
inline bool integer_comparison(UnaryOp& op, double& scalar) {
  constexpr double kLow = -9223372036854775808.0, kHigh = 9223372036854775808.0;  // -2^63, 2^63
  if (holds_value(DType::Int64, scalar)) return false;  // exact as it is
  auto all = [&](bool value) {  // x >= min (all true) or x < min (all false)
    op = value ? UnaryOp::GeScalar : UnaryOp::LtScalar;
    scalar = kLow;
  };
  if (scalar != scalar) {  // NaN: only != holds
    all(op == UnaryOp::NeScalar);
  } else if (scalar >= kHigh || scalar < kLow) {
    const bool above = scalar >= kHigh;  // every x lies below the scalar
    switch (op) {
      case UnaryOp::LtScalar: case UnaryOp::LeScalar: all(above); break;
      case UnaryOp::GtScalar: case UnaryOp::GeScalar: all(!above); break;
      case UnaryOp::EqScalar: all(false); break;
      case UnaryOp::NeScalar: all(true); break;
      default: return false;
    }
  } else {  // not an integer, inside the range
    const double below = std::floor(scalar);
    switch (op) {
      case UnaryOp::LtScalar: op = UnaryOp::LeScalar; scalar = below; break;
      case UnaryOp::LeScalar: scalar = below; break;
      case UnaryOp::GtScalar: scalar = below; break;
      case UnaryOp::GeScalar: op = UnaryOp::GtScalar; scalar = below; break;
      case UnaryOp::EqScalar: all(false); break;
      case UnaryOp::NeScalar: all(true); break;
      default: return false;
    }
  }
  return true;
}

// Calls visit(functor) with the functor for `op` on elements of type T and returns true; returns
// false when the op is not defined for T (exp of int64, ...), for the caller to report.
template <typename T, typename Visit>
bool visit_unary(UnaryOp op, double scalar, Visit&& visit) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (is_comparison(op)) integer_comparison(op, scalar);
  }
  const T s = static_cast<T>(scalar);
  if constexpr (std::is_same_v<T, bool>) {
    if (op == UnaryOp::LogicalNot) return visit(fn::LogicalNot<bool>{s}), true;
  } else {
    switch (op) {
      case UnaryOp::Neg: return visit(fn::Neg<T>{s}), true;
      case UnaryOp::Abs: return visit(fn::Abs<T>{s}), true;
      case UnaryOp::Square: return visit(fn::Square<T>{s}), true;
      case UnaryOp::Relu: return visit(fn::Relu<T>{s}), true;
      case UnaryOp::AddScalar: return visit(fn::AddScalar<T>{s}), true;
      case UnaryOp::MulScalar: return visit(fn::MulScalar<T>{s}), true;
      case UnaryOp::RSubScalar: return visit(fn::RSubScalar<T>{s}), true;
      case UnaryOp::EqScalar: return visit(fn::EqScalar<T>{s}), true;
      case UnaryOp::NeScalar: return visit(fn::NeScalar<T>{s}), true;
      case UnaryOp::LtScalar: return visit(fn::LtScalar<T>{s}), true;
      case UnaryOp::LeScalar: return visit(fn::LeScalar<T>{s}), true;
      case UnaryOp::GtScalar: return visit(fn::GtScalar<T>{s}), true;
      case UnaryOp::GeScalar: return visit(fn::GeScalar<T>{s}), true;
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case UnaryOp::Exp: return visit(fn::Exp<T>{s}), true;
        case UnaryOp::Log: return visit(fn::Log<T>{s}), true;
        case UnaryOp::Tanh: return visit(fn::Tanh<T>{s}), true;
        case UnaryOp::Sigmoid: return visit(fn::Sigmoid<T>{s}), true;
        case UnaryOp::Sqrt: return visit(fn::Sqrt<T>{s}), true;
        case UnaryOp::DivScalar: return visit(fn::DivScalar<T>{s}), true;
        case UnaryOp::RDivScalar: return visit(fn::RDivScalar<T>{s}), true;
        case UnaryOp::PowScalar: return visit(fn::PowScalar<T>{s}), true;
        default: break;
      }
    }
  }
  return false;
}

template <typename T, typename Visit>
bool visit_binary(BinaryOp op, Visit&& visit) {
  if constexpr (std::is_same_v<T, bool>) {
    if (op == BinaryOp::LogicalAnd) return visit(fn::LogicalAnd<bool>{}), true;
    if (op == BinaryOp::LogicalOr) return visit(fn::LogicalOr<bool>{}), true;
    if (op == BinaryOp::Eq) return visit(fn::Eq<bool>{}), true;
    if (op == BinaryOp::Ne) return visit(fn::Ne<bool>{}), true;
  } else {
    switch (op) {
      case BinaryOp::Add: return visit(fn::Add<T>{}), true;
      case BinaryOp::Sub: return visit(fn::Sub<T>{}), true;
      case BinaryOp::Mul: return visit(fn::Mul<T>{}), true;
      case BinaryOp::Maximum: return visit(fn::Maximum<T>{}), true;
      case BinaryOp::Minimum: return visit(fn::Minimum<T>{}), true;
      case BinaryOp::TanhBackward: return visit(fn::TanhBackward<T>{}), true;
      case BinaryOp::SigmoidBackward: return visit(fn::SigmoidBackward<T>{}), true;
      case BinaryOp::ReluBackward: return visit(fn::ReluBackward<T>{}), true;
      case BinaryOp::Eq: return visit(fn::Eq<T>{}), true;
      case BinaryOp::Ne: return visit(fn::Ne<T>{}), true;
      case BinaryOp::Lt: return visit(fn::Lt<T>{}), true;
      case BinaryOp::Le: return visit(fn::Le<T>{}), true;
      case BinaryOp::Gt: return visit(fn::Gt<T>{}), true;
      case BinaryOp::Ge: return visit(fn::Ge<T>{}), true;
      default: break;
    }
    // Division only for floating types: integer division truncates where PyTorch's div divides
    // exactly, and an integer division by zero is a hardware trap (SIGFPE), not an error.
    if constexpr (std::is_floating_point_v<T>) {
      if (op == BinaryOp::Div) return visit(fn::Div<T>{}), true;
    }
  }
  return false;
}

// Calls visit(value of the element type) for the types the elementwise kernels take; false for
// others.
template <typename Visit>
bool visit_elementwise_dtype(DType dtype, Visit&& visit) {
  switch (dtype) {
    case DType::Float32: return visit(float{}), true;
    case DType::Float64: return visit(double{}), true;
    case DType::Int64: return visit(int64_t{}), true;
    case DType::Bool: return visit(bool{}), true;
    default: return false;
  }
}

}  // namespace attn::kernels
