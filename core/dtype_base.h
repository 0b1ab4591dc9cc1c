// Element types, with no other dependency (CUDA sources include this, not core/dtype.h).
// float32 is the working type; float64 exists so gradient checks can use exact finite
// differences; int64 holds indices (token ids, targets, lengths); bool holds masks. Half types
// have a slot in the enum so the layout of Tensor does not change when they arrive.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

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

// Whether a double scalar is a value of the dtype: any finite or infinite number for floating
// types, an integer in [-2^63, 2^63) for int64, 0 or 1 for bool. Arithmetic with a scalar that
// is not (an int64 tensor times 0.5) would cut it to the element type.
inline bool holds_value(DType t, double v) {
  if (is_floating(t)) return true;
  if (t == DType::Bool) return v == 0.0 || v == 1.0;
  return v == std::floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0;  // (NaN: false)
}

// Whether a fill value (full, fill_, masked_fill) converts to the dtype without overflow, the
// check PyTorch makes: NaN, inf and anything up to the largest finite value for floating types,
// a finite number in (-2^63 - 1, 2^63) for int64 (fractions truncate toward zero, as in
// PyTorch), anything for bool (nonzero is true). The C++ conversion out of range is undefined.
inline bool fill_value_fits(DType t, double v) {
  switch (t) {
    case DType::Float32: return !(std::abs(v) > 3.4028234663852886e38) || std::isinf(v);
    case DType::Float16: return !(std::abs(v) > 65504.0) || std::isinf(v);
    case DType::Int64: return v > -9223372036854777856.0 && v < 9223372036854775808.0;  // (NaN: false)
    default: return true;
  }
}

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
