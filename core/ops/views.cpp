// Views (reshape, permute, narrow, select, squeeze, unsqueeze, expand), copies (contiguous,
// clone, to) and the ops that join and split tensors (cat, stack, split, chunk).
// A view shares its base's storage; its backward maps the gradient back to the base's shape.
#include <fmt/ranges.h>

#include <numeric>
#include <optional>

#include "core/autograd/node.h"
#include "core/ops/op_utils.h"
#include "core/ops/ops.h"

namespace attn {

namespace {

// ------------------------------------------------------------------ geometry helpers

Shape infer_shape(const Shape& shape, int64_t numel, std::string_view op, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      ATTN_CHECK(infer_at < 0, ShapeError, "{}: only one dimension can be -1 in {}", op, shape);
      infer_at = static_cast<int64_t>(i);
    } else {
      ATTN_CHECK(out[i] >= 0, ShapeError, "{}: invalid dimension {} in shape {}", op, out[i], shape);
      known *= out[i];
    }
  }
  if (infer_at >= 0) {
    ATTN_CHECK(known != 0 && numel % known == 0, ShapeError,
               "{}: shape {} is invalid for a tensor of shape {} ({} elements)", op, shape, from, numel);
    out[infer_at] = numel / known;
  }
  ATTN_CHECK(numel_of(out) == numel, ShapeError,
             "{}: shape {} is invalid for a tensor of shape {} ({} elements)", op, shape, from, numel);
  return out;
}

// Strides that let `new_shape` view memory laid out as (old_shape, old_strides), if any exist:
// dims can be merged or split only inside runs that are contiguous with each other.
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides,
                                    const Shape& new_shape) {
  if (old_shape.empty() || numel_of(old_shape) == 0) return contiguous_strides(new_shape);
  Strides out(new_shape.size());
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = static_cast<int64_t>(old_shape.size()) - 1; td >= 0; --td) {
    tensor_numel *= old_shape[td];
    if (td == 0 || (old_shape[td - 1] != 1 && old_strides[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (td > 0) {
        chunk_base_stride = old_strides[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// ------------------------------------------------------------------ backward nodes

struct ReshapeBackward final : Node {
  Shape in_shape;
  std::string_view name() const override { return "ReshapeBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    out[0] = g[0].reshape(in_shape);
    return out;
  }
};

struct PermuteBackward final : Node {
  Shape inverse;
  std::string_view name() const override { return "PermuteBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    out[0] = g[0].permute(inverse);
    return out;
  }
};

// narrow / select: the gradient lands in a zero tensor of the input's shape.
struct NarrowBackward final : Node {
  Shape in_shape;
  int64_t dim = 0, start = 0;
  bool squeezed = false;  // select: the output lost `dim`
  std::string_view name() const override { return squeezed ? "SelectBackward" : "NarrowBackward"; }
  TensorList apply(TensorList& g) override {
    Tensor gx = zeros(in_shape, {g[0].dtype(), g[0].device()});
    Tensor slot = gx.narrow(dim, start, squeezed ? 1 : g[0].size(dim));
    slot.copy_(squeezed ? g[0].unsqueeze(dim) : g[0]);
    TensorList out(1);
    out[0] = gx;
    return out;
  }
};

struct ExpandBackward final : Node {
  Shape in_shape;
  std::string_view name() const override { return "ExpandBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out(1);
    out[0] = sum_to(g[0], in_shape);
    return out;
  }
};

struct IdentityBackward final : Node {
  std::string_view name() const override { return "CloneBackward"; }
  TensorList apply(TensorList& g) override { return {g[0]}; }
};

struct ToBackward final : Node {
  Device device;
  DType dtype;
  std::string_view name() const override { return "ToBackward"; }
  TensorList apply(TensorList& g) override { return {g[0].to(dtype).to(device)}; }
};

}  // namespace

// ------------------------------------------------------------------ views

Tensor Tensor::view(const Shape& shape_in) const {
  check_defined(*this, "view");
  const Shape shape = infer_shape(shape_in, numel(), "view", this->shape());
  std::optional<Strides> st = view_strides(this->shape(), strides(), shape);
  ATTN_CHECK(st.has_value(), ShapeError,
             "view: a tensor of shape {} with strides {} cannot be viewed as {}; use reshape()",
             this->shape(), strides(), shape);
  Tensor out = alias(*this, shape, std::move(*st), offset());
  if (needs_grad(*this)) {
    auto node = make_node<ReshapeBackward>({this});
    node->in_shape = this->shape();
    set_history(out, node);
  }
  return out;
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  check_defined(*this, "reshape");
  const Shape shape = infer_shape(shape_in, numel(), "reshape", this->shape());
  if (view_strides(this->shape(), strides(), shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  check_defined(*this, "flatten");
  const int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  if (dim() == 0) return reshape(Shape{1});  // (after the dims' check: 0 and -1 only, as PyTorch)
  ATTN_CHECK(s <= e, ValueError, "flatten: start_dim {} after end_dim {}", s, e);
  Shape out;
  for (int64_t d = 0; d < s; ++d) out.push_back(shape()[d]);
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= shape()[d];
  out.push_back(merged);
  for (int64_t d = e + 1; d < dim(); ++d) out.push_back(shape()[d]);
  return reshape(out);
}

Tensor Tensor::permute(const Shape& dims) const {
  check_defined(*this, "permute");
  ATTN_CHECK(static_cast<int64_t>(dims.size()) == dim(), ShapeError,
             "permute: {} dims given for a tensor of shape {}", dims.size(), shape());
  Shape new_shape(dims.size()), inverse(dims.size());
  Strides new_strides(dims.size());
  SmallVector<bool, 6> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    ATTN_CHECK(!seen[d], ValueError, "permute: dim {} repeated in {}", d, dims);
    seen[d] = true;
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
    inverse[d] = static_cast<int64_t>(i);
  }
  Tensor out = alias(*this, new_shape, new_strides, offset());
  if (needs_grad(*this)) {
    auto node = make_node<PermuteBackward>({this});
    node->inverse = inverse;
    set_history(out, node);
  }
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  check_defined(*this, "transpose");
  Shape dims(static_cast<size_t>(dim()));
  std::iota(dims.begin(), dims.end(), 0);
  const int64_t w0 = wrap_dim(d0, dim(), "transpose"), w1 = wrap_dim(d1, dim(), "transpose");
  if (dim() == 0) return *this;  // (dims 0 and -1 only, as PyTorch)
  std::swap(dims[w0], dims[w1]);
  return permute(dims);
}

Tensor Tensor::t() const {
  check_defined(*this, "t");
  ATTN_CHECK(dim() <= 2, ShapeError, "t: expects a tensor of rank <= 2, got shape {}", shape());
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::narrow(int64_t dim_in, int64_t start, int64_t length) const {
  check_defined(*this, "narrow");
  const int64_t d = wrap_existing_dim(dim_in, dim(), "narrow");
  const int64_t size = shape()[d];
  if (start < 0) start += size;
  ATTN_CHECK(start >= 0 && length >= 0 && start <= size && length <= size - start, IndexError,  // (no start + length: it overflows)
             "narrow: start {} and length {} do not fit dim {} of size {} (shape {})", start,
             length, d, size, shape());
  Shape s = shape();
  s[d] = length;
  Tensor out = alias(*this, s, strides(), offset() + start * strides()[d]);
  if (needs_grad(*this)) {
    auto node = make_node<NarrowBackward>({this});
    node->in_shape = shape();
    node->dim = d;
    node->start = start;
    set_history(out, node);
  }
  return out;
}

Tensor Tensor::select(int64_t dim_in, int64_t index) const {
  check_defined(*this, "select");
  ATTN_CHECK(dim() > 0, ShapeError, "select: cannot select from a 0-d tensor");
  const int64_t d = wrap_dim(dim_in, dim(), "select");
  const int64_t size = shape()[d];
  ATTN_CHECK(index >= -size && index < size, IndexError,
             "select: index {} is out of range for dim {} of size {} (shape {})", index, d, size,
             shape());
  if (index < 0) index += size;
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = alias(*this, s, st, offset() + index * strides()[d]);
  if (needs_grad(*this)) {
    auto node = make_node<NarrowBackward>({this});
    node->in_shape = shape();
    node->dim = d;
    node->start = index;
    node->squeezed = true;
    set_history(out, node);
  }
  return out;
}

Tensor Tensor::squeeze(int64_t dim_in) const {
  check_defined(*this, "squeeze");
  const int64_t d = wrap_dim(dim_in, dim(), "squeeze");
  if (dim() == 0 || shape()[d] != 1) return *this;  // (a 0-d tensor: dims 0 and -1 only, as PyTorch)
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}

Tensor Tensor::unsqueeze(int64_t dim_in) const {
  check_defined(*this, "unsqueeze");
  const int64_t d = wrap_dim(dim_in, dim() + 1, "unsqueeze");
  Shape s = shape();
  Strides st = strides();
  const int64_t stride = d < dim() ? strides()[d] * shape()[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  Tensor out = alias(*this, s, st, offset());
  if (needs_grad(*this)) {
    auto node = make_node<ReshapeBackward>({this});
    node->in_shape = shape();
    set_history(out, node);
  }
  return out;
}

Tensor Tensor::expand(const Shape& target) const {
  check_defined(*this, "expand");
  ATTN_CHECK(target.size() >= shape().size(), ShapeError,
             "expand: cannot expand shape {} to {} (fewer dims)", shape(), target);
  const size_t lead = target.size() - shape().size();
  Shape s(target.size());
  Strides st(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      ATTN_CHECK(target[i] >= 0, ShapeError, "expand: cannot expand shape {} to {}", shape(), target);
      s[i] = target[i];
      st[i] = 0;
      continue;
    }
    const int64_t have = shape()[i - lead];
    const int64_t want = target[i] == -1 ? have : target[i];
    ATTN_CHECK(want >= 0 && (have == want || have == 1), ShapeError,
               "expand: cannot expand shape {} to {} (dim {}: {} to {})", shape(), target, i, have, want);
    s[i] = want;
    st[i] = have == want ? strides()[i - lead] : 0;
  }
  if (s == shape()) return *this;
  Tensor out = alias(*this, s, st, offset());
  if (needs_grad(*this)) {
    auto node = make_node<ExpandBackward>({this});
    node->in_shape = shape();
    set_history(out, node);
  }
  return out;
}

// ------------------------------------------------------------------ copies

Tensor Tensor::clone() const {
  check_defined(*this, "clone");
  Tensor out = empty(shape(), {dtype(), device()});
  kernels::backend(device()).copy(out, *this);
  if (needs_grad(*this)) set_history(out, make_node<IdentityBackward>({this}));
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType dt) const {
  check_defined(*this, "to");
  if (dt == dtype()) return *this;
  Tensor out = empty(shape(), {dt, device()});
  kernels::backend(device()).copy(out, *this);
  if (needs_grad(*this) && is_floating(dt)) {
    auto node = make_node<ToBackward>({this});
    node->device = device();
    node->dtype = dtype();
    set_history(out, node);
  }
  return out;
}

Tensor Tensor::to(Device dev) const {
  check_defined(*this, "to");
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), {dtype(), dev});
  if (numel() > 0) {
    if (dev.is_cpu()) {
      kernels::backend(src.device()).copy_to_host(out.raw_data(), src);
    } else if (src.device().is_cpu()) {
      kernels::backend(dev).copy_from_host(out, src.raw_data());
    } else {  // between two GPUs: through the host
      Tensor host = src.to(kCPU);
      kernels::backend(dev).copy_from_host(out, host.raw_data());
    }
  }
  if (needs_grad(*this)) {
    auto node = make_node<ToBackward>({this});
    node->device = device();
    node->dtype = dtype();
    set_history(out, node);
  }
  return out;
}

// ------------------------------------------------------------------ cat / stack / split

namespace {

struct CatBackward final : Node {
  int64_t dim = 0;
  std::vector<int64_t> sizes;
  std::string_view name() const override { return "CatBackward"; }
  TensorList apply(TensorList& g) override {
    TensorList out;
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      out.push_back(should_compute(i) ? g[0].narrow(dim, start, sizes[i]) : Tensor());
      start += sizes[i];
    }
    return out;
  }
};

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim_in) {
  ATTN_CHECK(!tensors.empty(), ValueError, "cat: expects at least one tensor");
  const Tensor& first = tensors[0];
  check_defined(first, "cat");
  const int64_t dim = wrap_existing_dim(dim_in, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_defined(t, "cat");
    ATTN_CHECK(t.dim() == first.dim(), ShapeError,
               "cat: tensor {} has shape {}, tensor 0 has shape {} (ranks differ)", i, t.shape(),
               first.shape());
    ATTN_CHECK(t.dtype() == first.dtype(), DTypeError, "cat: tensor {} is {}, tensor 0 is {}", i,
               t.dtype(), first.dtype());
    ATTN_CHECK(t.device() == first.device(), DeviceError, "cat: tensor {} is on {}, tensor 0 on {}",
               i, t.device(), first.device());
    for (int64_t d = 0; d < first.dim(); ++d) {
      ATTN_CHECK(d == dim || t.size(d) == first.size(d), ShapeError,
                 "cat: along dim {}, tensor {} has shape {} but tensor 0 has shape {}", dim, i,
                 t.shape(), first.shape());
    }
    out_shape[dim] += t.size(dim);
  }
  Tensor out = empty(out_shape, {first.dtype(), first.device()});
  auto& be = kernels::backend(first.device());
  int64_t start = 0;
  std::vector<int64_t> sizes;
  bool any_grad = false;
  for (const Tensor& t : tensors) {
    const int64_t n = t.size(dim);
    if (n > 0) {
      Tensor slot = alias(out, t.shape(), out.strides(), start * out.strides()[dim]);
      be.copy(slot, t);
    }
    start += n;
    sizes.push_back(n);
    any_grad = any_grad || needs_grad(t);
  }
  if (any_grad) {
    auto node = std::make_shared<CatBackward>();
    for (const Tensor& t : tensors) node->next_edges.push_back(gradient_edge(t));
    node->dim = dim;
    node->sizes = std::move(sizes);
    set_history(out, node);
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  ATTN_CHECK(!tensors.empty(), ValueError, "stack: expects at least one tensor");
  for (const Tensor& t : tensors) check_defined(t, "stack");
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    ATTN_CHECK(tensors[i].shape() == tensors[0].shape(), ShapeError,
               "stack: tensor {} has shape {} but tensor 0 has shape {}", i, tensors[i].shape(),
               tensors[0].shape());
    parts.push_back(tensors[i].unsqueeze(d));
  }
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim_in) {
  check_defined(x, "split");
  const int64_t dim = wrap_existing_dim(dim_in, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    ATTN_CHECK(s >= 0, ValueError, "split: negative size in {}", fmt::join(sizes, ", "));
    total += s;
  }
  ATTN_CHECK(total == x.size(dim), ShapeError,
             "split: sizes [{}] sum to {}, but dim {} of shape {} has {}", fmt::join(sizes, ", "),
             total, dim, x.shape(), x.size(dim));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(dim, start, s));
    start += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim_in) {
  check_defined(x, "split");
  ATTN_CHECK(split_size > 0, ValueError, "split: split_size must be positive, got {}", split_size);
  const int64_t dim = wrap_existing_dim(dim_in, x.dim(), "split");
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < x.size(dim); start += split_size)
    sizes.push_back(std::min(split_size, x.size(dim) - start));
  if (sizes.empty()) sizes.push_back(0);  // a dim of size 0 splits into one empty piece, as in PyTorch
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk");
  ATTN_CHECK(chunks > 0, ValueError, "chunk: chunks must be positive, got {}", chunks);
  const int64_t size = x.size(wrap_existing_dim(dim, x.dim(), "chunk"));
  // a dim of size 0 gives `chunks` empty pieces, as in PyTorch (callers index chunk(gates, 4)[k])
  if (size == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), dim);
  return split(x, (size + chunks - 1) / chunks, dim);
}

}  // namespace attn
