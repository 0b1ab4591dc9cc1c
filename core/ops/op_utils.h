// Helpers shared by the op implementations (not part of the public API).
#pragma once

#include <string_view>

#include "core/autograd/grad_mode.h"
#include "core/ops/ops.h"
#include "core/tensor.h"
#include "kernels/backend.h"

namespace attn {

inline void check_defined(const Tensor& t, std::string_view op) {
  ATTN_CHECK(t.defined(), ValueError, "{}: got an undefined tensor", op);
}

inline void check_floating(const Tensor& t, std::string_view op) {
  ATTN_CHECK(is_floating(t.dtype()), DTypeError, "{}: expects a float32 or float64 tensor, got {} (shape {})",
             op, t.dtype(), t.shape());
}

// A fill value (full, fill_, masked_fill) the dtype cannot hold is a ValueError, as in PyTorch
// (core/dtype_base.h: fill_value_fits); the C++ conversion out of range is undefined.
inline void check_fill_value(DType dtype, double value, std::string_view op) {
  ATTN_CHECK(fill_value_fits(dtype, value), ValueError, "{}: the value {} cannot be converted to {} without overflow", op,
             value, dtype);
}

// New output of a binary / unary kernel, with broadcasting; no autograd.
Tensor binary_out(kernels::BinaryOp op, const Tensor& a, const Tensor& b);
Tensor unary_out(kernels::UnaryOp op, const Tensor& x, double scalar);

// The keepdim-shaped sum of x over `dims` (no autograd, used by backward rules too).
Tensor sum_keepdim(const Tensor& x, const Shape& dims);

}  // namespace attn

namespace attn {

// A new tensor over base's storage with the given geometry, without autograd history, which
// remembers its base. Made in no-grad mode from a tensor that requires grad, it is marked (see
// TensorImpl).
inline Tensor alias(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  Tensor out(std::make_shared<TensorImpl>(base.storage(), std::move(shape), std::move(strides), offset, base.dtype()));
  if (!GradMode::is_enabled() && (base.requires_grad() || base.impl()->no_grad_view_of_grad_base))
    out.impl()->no_grad_view_of_grad_base = true;
  std::shared_ptr<TensorImpl> root = base.impl()->view_base.lock();
  out.impl()->view_base = root ? std::move(root) : base.impl_ptr();
  return out;
}

// The reduction shared by the NLL losses: per-row losses (N) -> None: as is; Sum: their sum;
// Mean: their sum over the number of targets != ignore_index (`count`, kept for the backward).
struct ReducedLoss {
  Tensor out, count;
};
ReducedLoss reduce_losses(const Tensor& losses, const Tensor& target, int64_t ignore_index, Reduction reduction);
// The gradient of each row's loss from the gradient of the reduced one (a stride-0 view for
// Sum and Mean: no copy).
Tensor expand_loss_grad(const Tensor& grad, const Tensor& count, int64_t rows, Reduction reduction);

// Sorted, unique, wrapped dims; an empty list means all dims.
Shape normalize_dims(const Shape& dims, int64_t rank, std::string_view op);

}  // namespace attn
