// CPU elementwise kernels: fill, copy (with casts), unary and binary maps, where, masked_fill.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"

namespace attn::cpu {

using kernels::BinaryOp;
using kernels::UnaryOp;

void CpuBackend::fill(const Tensor& out, double value) {
  StridedIter it = make_iter(out, {});
  dispatch_all(out.dtype(), "fill", [&](auto tag) {
    using T = decltype(tag);
    const T v = static_cast<T>(value);
    elementwise<T>(it, [v]() { return v; });
  });
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() &&
      dst.shape() == src.shape()) {
    const int64_t es = static_cast<int64_t>(dtype_size(dst.dtype()));
    char* d = static_cast<char*>(dst.raw_data());
    const char* s = static_cast<const char*>(src.raw_data());
    parallel_for(dst.numel(), kParallelGrain * 4, [&](int64_t b, int64_t e) {
      std::memcpy(d + b * es, s + b * es, static_cast<size_t>((e - b) * es));
    });
    return;
  }
  StridedIter it = make_iter(dst, {&src});
  dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src.dtype(), "copy", [&](auto stag) {
      using S = decltype(stag);
      elementwise<D, S>(it, [](S x) { return static_cast<D>(x); });
    });
  });
}

void CpuBackend::copy_to_host(void* host_dst, const Tensor& src) {
  ATTN_ASSERT(src.is_contiguous(), "copy_to_host needs a contiguous tensor");
  std::memcpy(host_dst, src.raw_data(), static_cast<size_t>(src.numel()) * dtype_size(src.dtype()));
}

void CpuBackend::copy_from_host(const Tensor& dst, const void* host_src) {
  ATTN_ASSERT(dst.is_contiguous(), "copy_from_host needs a contiguous tensor");
  std::memcpy(dst.raw_data(), host_src, static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype()));
}

namespace {

template <typename T>
void unary_typed(UnaryOp op, const StridedIter& it, double scalar) {
  const T s = static_cast<T>(scalar);
  constexpr bool is_float = std::is_floating_point_v<T>;
  switch (op) {
    case UnaryOp::Neg: return elementwise<T, T>(it, [](T x) { return static_cast<T>(-x); });
    case UnaryOp::Abs: return elementwise<T, T>(it, [](T x) { return x < 0 ? static_cast<T>(-x) : x; });
    case UnaryOp::Square: return elementwise<T, T>(it, [](T x) { return static_cast<T>(x * x); });
    case UnaryOp::Relu: return elementwise<T, T>(it, [](T x) { return x > 0 ? x : T(0); });
    case UnaryOp::AddScalar: return elementwise<T, T>(it, [s](T x) { return static_cast<T>(x + s); });
    case UnaryOp::MulScalar: return elementwise<T, T>(it, [s](T x) { return static_cast<T>(x * s); });
    case UnaryOp::RSubScalar: return elementwise<T, T>(it, [s](T x) { return static_cast<T>(s - x); });
    case UnaryOp::EqScalar: return elementwise<bool, T>(it, [s](T x) { return x == s; });
    case UnaryOp::NeScalar: return elementwise<bool, T>(it, [s](T x) { return x != s; });
    case UnaryOp::LtScalar: return elementwise<bool, T>(it, [s](T x) { return x < s; });
    case UnaryOp::LeScalar: return elementwise<bool, T>(it, [s](T x) { return x <= s; });
    case UnaryOp::GtScalar: return elementwise<bool, T>(it, [s](T x) { return x > s; });
    case UnaryOp::GeScalar: return elementwise<bool, T>(it, [s](T x) { return x >= s; });
    default: break;
  }
  if constexpr (is_float) {
    switch (op) {
      case UnaryOp::Exp: return elementwise<T, T>(it, [](T x) { return std::exp(x); });
      case UnaryOp::Log: return elementwise<T, T>(it, [](T x) { return std::log(x); });
      case UnaryOp::Tanh: return elementwise<T, T>(it, [](T x) { return std::tanh(x); });
      case UnaryOp::Sigmoid:
        return elementwise<T, T>(it, [](T x) { return T(1) / (T(1) + std::exp(-x)); });
      case UnaryOp::Sqrt: return elementwise<T, T>(it, [](T x) { return std::sqrt(x); });
      case UnaryOp::DivScalar: return elementwise<T, T>(it, [s](T x) { return x / s; });
      case UnaryOp::RDivScalar: return elementwise<T, T>(it, [s](T x) { return s / x; });
      case UnaryOp::PowScalar: return elementwise<T, T>(it, [s](T x) { return std::pow(x, s); });
      default: break;
    }
  }
  throw DTypeError(fmt::format("{}: not defined for dtype {}", kernels::op_name(op),
                               dtype_of<T>::value));
}

template <typename T>
void binary_typed(BinaryOp op, const StridedIter& it) {
  switch (op) {
    case BinaryOp::Add: return elementwise<T, T, T>(it, [](T a, T b) { return static_cast<T>(a + b); });
    case BinaryOp::Sub: return elementwise<T, T, T>(it, [](T a, T b) { return static_cast<T>(a - b); });
    case BinaryOp::Mul: return elementwise<T, T, T>(it, [](T a, T b) { return static_cast<T>(a * b); });
    case BinaryOp::Div: return elementwise<T, T, T>(it, [](T a, T b) { return static_cast<T>(a / b); });
    case BinaryOp::Maximum: return elementwise<T, T, T>(it, [](T a, T b) { return a < b ? b : a; });
    case BinaryOp::Minimum: return elementwise<T, T, T>(it, [](T a, T b) { return b < a ? b : a; });
    case BinaryOp::TanhBackward:
      return elementwise<T, T, T>(it, [](T g, T y) { return static_cast<T>(g * (T(1) - y * y)); });
    case BinaryOp::SigmoidBackward:
      return elementwise<T, T, T>(it, [](T g, T y) { return static_cast<T>(g * y * (T(1) - y)); });
    case BinaryOp::ReluBackward:
      return elementwise<T, T, T>(it, [](T g, T x) { return x > 0 ? g : T(0); });
    case BinaryOp::Eq: return elementwise<bool, T, T>(it, [](T a, T b) { return a == b; });
    case BinaryOp::Ne: return elementwise<bool, T, T>(it, [](T a, T b) { return a != b; });
    case BinaryOp::Lt: return elementwise<bool, T, T>(it, [](T a, T b) { return a < b; });
    case BinaryOp::Le: return elementwise<bool, T, T>(it, [](T a, T b) { return a <= b; });
    case BinaryOp::Gt: return elementwise<bool, T, T>(it, [](T a, T b) { return a > b; });
    case BinaryOp::Ge: return elementwise<bool, T, T>(it, [](T a, T b) { return a >= b; });
    default: break;
  }
  throw DTypeError(fmt::format("{}: not defined for dtype {}", kernels::op_name(op),
                               dtype_of<T>::value));
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& out, const Tensor& x, double scalar) {
  StridedIter it = make_iter(out, {&x});
  if (op == UnaryOp::LogicalNot) {
    ATTN_CHECK(x.dtype() == DType::Bool, DTypeError, "logical_not: expects bool, got {}", x.dtype());
    return elementwise<bool, bool>(it, [](bool v) { return !v; });
  }
  dispatch_numeric(x.dtype(), kernels::op_name(op), [&](auto tag) {
    unary_typed<decltype(tag)>(op, it, scalar);
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  StridedIter it = make_iter(out, {&a, &b});
  if (op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr) {
    ATTN_CHECK(a.dtype() == DType::Bool && b.dtype() == DType::Bool, DTypeError,
               "{}: expects bool tensors, got {} and {}", kernels::op_name(op), a.dtype(), b.dtype());
    if (op == BinaryOp::LogicalAnd)
      return elementwise<bool, bool, bool>(it, [](bool x, bool y) { return x && y; });
    return elementwise<bool, bool, bool>(it, [](bool x, bool y) { return x || y; });
  }
  dispatch_numeric(a.dtype(), kernels::op_name(op), [&](auto tag) {
    binary_typed<decltype(tag)>(op, it);
  });
}

void CpuBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  StridedIter it = make_iter(out, {&cond, &a, &b});
  dispatch_all(out.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    elementwise<T, bool, T, T>(it, [](bool c, T x, T y) { return c ? x : y; });
  });
}

void CpuBackend::masked_fill(const Tensor& out, const Tensor& x, const Tensor& mask, double value) {
  StridedIter it = make_iter(out, {&x, &mask});
  dispatch_all(out.dtype(), "masked_fill", [&](auto tag) {
    using T = decltype(tag);
    const T v = static_cast<T>(value);
    elementwise<T, T, bool>(it, [v](T a, bool m) { return m ? v : a; });
  });
}

}  // namespace attn::cpu
