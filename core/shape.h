// Shapes and strides. Strides are in elements, as in PyTorch.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/small_vector.h"

namespace attn {

using Shape = SmallVector<int64_t, 6>;
using Strides = SmallVector<int64_t, 6>;

inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Row-major strides; a zero dim counts as one, as in PyTorch. Past INT64_MAX (only a tensor
// with no elements gets that far: empty() refuses larger ones) a stride saturates instead of
// overflowing, e.g. the first of (0, 2^32, 2^32); no element is ever addressed through it.
inline Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    if (__builtin_mul_overflow(acc, s[i] > 0 ? s[i] : 1, &acc)) acc = INT64_MAX;
  }
  return st;
}

// Wraps a negative dim (-1 = last) and checks its range; `rank_for_insert` is one more for
// unsqueeze-like ops that accept dim == rank.
inline int64_t wrap_dim(int64_t dim, int64_t rank, std::string_view op) {
  int64_t r = rank == 0 ? 1 : rank;
  ATTN_CHECK(dim >= -r && dim < r, IndexError, "{}: dim {} out of range for a tensor of rank {}",
             op, dim, rank);
  return dim < 0 ? dim + r : dim;
}

// wrap_dim for the ops that index an existing dim (size, stride, narrow, cat, split): a 0-d
// tensor has none (wrap_dim lets dim 0 / -1 through for it, as reductions over "all" of a scalar).
inline int64_t wrap_existing_dim(int64_t dim, int64_t rank, std::string_view op) {
  ATTN_CHECK(rank > 0, IndexError, "{}: dim {} of a 0-d tensor, which has no dims", op, dim);
  return wrap_dim(dim, rank, op);
}

// The shape two operands broadcast to (numpy / PyTorch rules); ShapeError when they cannot.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

}  // namespace attn

template <>
struct fmt::formatter<attn::Shape> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(const attn::Shape& s, fmt::format_context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "[");
    for (size_t i = 0; i < s.size(); ++i) {
      if (i) out = fmt::format_to(out, ", ");
      out = fmt::format_to(out, "{}", s[i]);
    }
    return fmt::format_to(out, "]");
  }
};
