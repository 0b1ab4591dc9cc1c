// Reductions: sum, mean, max / argmax, softmax and log_softmax, with their backward rules.
#include <algorithm>

#include "core/autograd/node.h"
#include "core/ops/op_utils.h"
#include "core/ops/ops.h"

namespace attn {

Shape normalize_dims(const Shape& dims, int64_t rank, std::string_view op) {
  Shape out;
  if (dims.empty()) {
    for (int64_t d = 0; d < rank; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, rank, op));
  if (rank == 0) return Shape{};  // dim 0 / -1 of a scalar: nothing to reduce (as in PyTorch)
  std::sort(out.begin(), out.end());
  for (size_t i = 1; i < out.size(); ++i) {
    ATTN_CHECK(out[i] != out[i - 1], ValueError, "{}: dim {} appears twice in {}", op, out[i], dims);
  }
  return out;
}

Tensor sum_keepdim(const Tensor& x, const Shape& dims) {
  Shape out_shape = x.shape();
  for (int64_t d : dims) out_shape[d] = 1;
  Tensor out = empty(out_shape, {x.dtype(), x.device()});
  kernels::backend(x.device()).sum(out, x);
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  ATTN_ASSERT(lead >= 0, "sum_to: {} to {}", x.shape(), shape);
  Shape dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && x.size(d) != 1)) dims.push_back(d);
  }
  Tensor s = dims.empty() ? x : sum_keepdim(x, dims);
  const Tensor c = s.contiguous();
  return alias(c, shape, contiguous_strides(shape), c.offset());
}

namespace {

// The keepdim shape of a reduction over sorted `dims`.
Shape keep_shape(const Shape& shape, const Shape& dims) {
  Shape s = shape;
  for (int64_t d : dims) s[d] = 1;
  return s;
}

Shape drop_dims(const Shape& shape, const Shape& dims) {
  Shape s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) s.push_back(shape[d]);
  }
  return s;
}

// grad of a sum: broadcast the (possibly squeezed) gradient back over the summed dims.
struct SumBackward final : Node {
  Shape x_shape, keep;
  double scale = 1.0;  // 1/count for mean
  std::string_view name() const override { return scale == 1.0 ? "SumBackward" : "MeanBackward"; }
  TensorList apply(TensorList& g) override {
    // (a slice of a larger gradient, e.g. through cat or stack, keeps its offset)
    Tensor gk = g[0].contiguous();
    gk = alias(gk, keep, contiguous_strides(keep), gk.offset());
    if (scale != 1.0) gk = mul(gk, scale);
    TensorList out(1);
    out[0] = gk.expand(x_shape);
    return out;
  }
};

Tensor reduce_sum(const Tensor& x, const Shape& dims_in, bool keepdim, bool is_mean) {
  const std::string_view op = is_mean ? "mean" : "sum";
  check_defined(x, op);
  const Shape dims = normalize_dims(dims_in, x.dim(), op);
  Tensor out = sum_keepdim(x, dims);
  int64_t count = 1;
  for (int64_t d : dims) count *= x.size(d);
  if (is_mean) {
    check_floating(x, op);
    kernels::backend(x.device()).unary(kernels::UnaryOp::DivScalar, out, out, static_cast<double>(count));
  }
  const Shape keep = out.shape();
  if (!keepdim) {
    Shape s = drop_dims(x.shape(), dims);
    out = alias(out, s, contiguous_strides(s), 0);
  }
  if (needs_grad(x)) {
    auto node = make_node<SumBackward>({&x});
    node->x_shape = x.shape();
    node->keep = keep;
    node->scale = is_mean ? 1.0 / static_cast<double>(count) : 1.0;
    set_history(out, node);
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce_sum(x, {}, false, false); }
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) { return reduce_sum(x, dims, keepdim, false); }
Tensor mean(const Tensor& x) { return reduce_sum(x, {}, false, true); }
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) { return reduce_sum(x, dims, keepdim, true); }

// ------------------------------------------------------------------ max

namespace {

// The gradient goes to the position of the maximum: a one-hot mask along `dim` built by
// comparing positions with the saved argmax.
struct MaxBackward final : Node {
  SavedTensor indices;  // keepdim shape
  Shape x_shape, keep;
  int64_t dim = 0;
  std::string_view name() const override { return "MaxBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor idx = indices.unpack(name());
    Shape pos_shape(x_shape.size(), 1);
    pos_shape[dim] = x_shape[dim];
    Tensor pos = arange(x_shape[dim], {DType::Int64, idx.device()}).view(pos_shape);
    Tensor hit = eq(pos, idx);  // (x_shape) by broadcasting
    const Tensor gc = g[0].contiguous();
    const Tensor gk = alias(gc, keep, contiguous_strides(keep), gc.offset());
    TensorList out(1);
    out[0] = masked_fill(gk.expand(x_shape), logical_not(hit), 0.0);
    return out;
  }
  void release_saved() override { indices.release(); }
};

// max over all elements: the gradient is shared evenly by the elements equal to the maximum
// (every NaN when it is NaN), as PyTorch's x.max() does; the max over a dim picks one index.
struct MaxAllBackward final : Node {
  SavedTensor x, value;  // value: the 0-d maximum
  std::string_view name() const override { return "MaxBackward"; }
  TensorList apply(TensorList& g) override {
    const Tensor xs = x.unpack(name()), m = value.unpack(name());
    const Tensor hit = logical_or(eq(xs, m), logical_and(ne(xs, xs), ne(m, m)));
    const Tensor share = div(g[0], sum(hit.to(xs.dtype())));  // 0-d
    TensorList out(1);
    out[0] = where(hit, share.expand(xs.shape()), zeros_like(xs));
    return out;
  }
  void release_saved() override {
    x.release();
    value.release();
  }
};

}  // namespace

ValuesIndices max(const Tensor& x, int64_t dim_in, bool keepdim) {
  check_defined(x, "max");
  const int64_t dim = wrap_dim(dim_in, x.dim(), "max");
  if (x.dim() == 0) return {x.clone(), zeros(Shape{}, {DType::Int64, x.device()})};
  ATTN_CHECK(x.size(dim) > 0, ShapeError, "max: cannot reduce dim {} of size 0 (shape {})", dim,
             x.shape());
  const Shape keep = keep_shape(x.shape(), Shape{dim});
  Tensor values = empty(keep, {x.dtype(), x.device()});
  Tensor indices = empty(keep, {DType::Int64, x.device()});
  kernels::backend(x.device()).max(values, indices, x, dim);
  ValuesIndices r{values, indices};
  if (!keepdim) {
    Shape s = drop_dims(x.shape(), Shape{dim});
    r.values = alias(values, s, contiguous_strides(s), 0);
    r.indices = alias(indices, s, contiguous_strides(s), 0);
  }
  if (needs_grad(x)) {
    auto node = make_node<MaxBackward>({&x});
    node->indices = SavedTensor(indices);
    node->x_shape = x.shape();
    node->keep = keep;
    node->dim = dim;
    set_history(r.values, node);
  }
  return r;
}

Tensor max(const Tensor& x) {
  check_defined(x, "max");
  ATTN_CHECK(x.numel() > 0, ShapeError, "max: tensor of shape {} has no elements", x.shape());
  Tensor value;
  {
    NoGradGuard g;
    value = max(x.reshape(Shape{x.numel()}), 0, false).values;
  }
  if (needs_grad(x)) {
    auto node = make_node<MaxAllBackward>({&x});
    node->x = SavedTensor(x);
    node->value = SavedTensor(value, /*is_output=*/true);
    set_history(value, node);
  }
  return value;
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard g;
  return max(x, dim, keepdim).indices;
}

// ------------------------------------------------------------------ softmax

namespace {

struct SoftmaxBackward final : Node {
  SavedTensor y;
  int64_t dim = 0;
  bool log = false;
  std::string_view name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor yy = y.unpack(name());
    Tensor gx = empty(yy.shape(), {yy.dtype(), yy.device()});
    kernels::dispatch(name(), {&g[0], &yy}).softmax_backward(gx, g[0], yy, dim, log);
    TensorList out(1);
    out[0] = gx;
    return out;
  }
  void release_saved() override { y.release(); }
};

Tensor softmax_impl(const Tensor& x, int64_t dim_in, bool log) {
  const std::string_view op = log ? "log_softmax" : "softmax";
  check_defined(x, op);
  check_floating(x, op);
  ATTN_CHECK(x.dim() > 0, ShapeError, "{}: needs at least one dim, got a 0-d tensor", op);
  const int64_t dim = wrap_dim(dim_in, x.dim(), op);
  Tensor y = empty(x.shape(), {x.dtype(), x.device()});
  if (x.numel() > 0) kernels::backend(x.device()).softmax(y, x, dim, log);
  if (needs_grad(x)) {
    auto node = make_node<SoftmaxBackward>({&x});
    node->y = SavedTensor(y, /*is_output=*/true);
    node->dim = dim;
    node->log = log;
    set_history(y, node);
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace attn
