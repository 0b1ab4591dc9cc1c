// Element types: the enum (core/dtype_base.h), its fmt formatter and the dispatch helpers that
// turn a runtime dtype into a C++ type.
#pragma once

#include <string_view>

#include "core/dtype_base.h"
#include "core/error.h"

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
