// Element types. float32 is the working type; float64 exists so gradient checks can use exact
// finite differences; int64 holds indices (token ids, targets, lengths); bool holds masks.
// Half types have a slot in the enum so the layout of Tensor does not change when they arrive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace attn {

enum class DType : uint8_t { Float32, Float64, Int64, Bool, BFloat16, Float16 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
    case DType::BFloat16:
    case DType::Float16: return 2;
  }
  return 0;
}

inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }

template <typename T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::Float32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::Float64;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::Int64;
};
template <>
struct dtype_of<bool> {
  static constexpr DType value = DType::Bool;
};

}  // namespace attn

template <>
struct fmt::formatter<attn::DType> : fmt::formatter<std::string_view> {
  auto format(attn::DType t, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(attn::dtype_name(t), ctx);
  }
};

namespace attn {

// Calls the generic lambda `fn` with a value of the C++ type of `dtype`:
//   dispatch_float(x.dtype(), "softmax", [&](auto tag) { using T = decltype(tag); ... });
// dispatch_float: float32, float64. dispatch_numeric: also int64. dispatch_all: also bool.
template <typename F>
decltype(auto) dispatch_float(DType dtype, std::string_view op, F&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    default:
      throw DTypeError(fmt::format("{}: dtype {} is not supported (float32 or float64 expected)", op, dtype));
  }
}

template <typename F>
decltype(auto) dispatch_numeric(DType dtype, std::string_view op, F&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int64: return fn(int64_t{});
    default:
      throw DTypeError(fmt::format("{}: dtype {} is not supported (float32, float64 or int64)", op, dtype));
  }
}

template <typename F>
decltype(auto) dispatch_all(DType dtype, std::string_view op, F&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int64: return fn(int64_t{});
    case DType::Bool: return fn(bool{});
    default: throw DTypeError(fmt::format("{}: dtype {} is not supported", op, dtype));
  }
}

}  // namespace attn
