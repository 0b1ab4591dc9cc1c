// Tensor metadata, creation, host access, in-place writes, autograd accessors and printing.
// Differentiable methods (views, clone, to) live with the ops in core/ops/.
#include "core/tensor.h"

#include <cmath>
#include <cstring>

#include "core/autograd/node.h"
#include "core/ops/op_utils.h"
#include "core/ops/ops.h"
#include "core/random.h"
#include "kernels/backend.h"

namespace attn {

// ---------------------------------------------------------------- metadata

int64_t Tensor::size(int64_t d) const { return shape()[wrap_existing_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_existing_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // nothing to lay out (as in PyTorch)
  int64_t expected = 1;
  const Shape& s = shape();
  const Strides& st = strides();
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

bool Tensor::has_internal_overlap() const {
  for (int64_t d = 0; d < dim(); ++d)
    if (shape()[d] > 1 && strides()[d] == 0) return true;
  return false;
}

// ---------------------------------------------------------------- creation

Tensor empty(const Shape& shape, Options opt) {
  // a shape whose element count or byte size overflows (a --hidden of 2^62) is refused here,
  // before the product wraps around to a small allocation that the kernels then overrun
  int64_t count = 1, nbytes_checked = 0;
  bool overflow = false;
  for (int64_t d : shape) {
    ATTN_CHECK(d >= 0, ShapeError, "empty: negative dimension in shape {}", shape);
    overflow = overflow || __builtin_mul_overflow(count, d, &count);
  }
  overflow = overflow || __builtin_mul_overflow(count, static_cast<int64_t>(dtype_size(opt.dtype)), &nbytes_checked);
  ATTN_CHECK(!overflow, OutOfMemoryError, "empty: a tensor of shape {} would hold more bytes than fit in 64 bits",
             shape);
  const size_t nbytes = static_cast<size_t>(nbytes_checked);
  auto storage = std::make_shared<Storage>(nbytes, opt.device);
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), shape, contiguous_strides(shape),
                                             0, opt.dtype));
}

Tensor empty_strided(const Shape& shape, const Strides& strides, Options opt) {
  ATTN_CHECK(shape.size() == strides.size(), ShapeError,
             "empty_strided: shape {} and strides {} differ in rank", shape, strides);
  int64_t extent = 1, span = 0, nbytes = 0;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    ATTN_CHECK(shape[i] >= 0 && strides[i] >= 0, ShapeError,
               "empty_strided: bad shape {} / strides {}", shape, strides);
    if (shape[i] == 0) extent = 0;
    if (extent) {
      overflow = overflow || __builtin_mul_overflow(shape[i] - 1, strides[i], &span) ||
                 __builtin_add_overflow(extent, span, &extent);
    }
  }
  overflow = overflow || __builtin_mul_overflow(extent, static_cast<int64_t>(dtype_size(opt.dtype)), &nbytes);
  if (overflow) {  // (the byte count wrapped: a small storage under elements far beyond it)
    throw OutOfMemoryError(fmt::format("empty_strided: shape {} with strides {} spans more bytes than fit in 64 bits",
                                       shape, strides));
  }
  auto storage = std::make_shared<Storage>(static_cast<size_t>(nbytes), opt.device);
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), shape, strides, 0, opt.dtype));
}

Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device,
                 std::function<void(void*)> release) {
  const size_t nbytes = static_cast<size_t>(numel_of(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(data, nbytes, device, std::move(release));
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), shape, contiguous_strides(shape), 0, dtype));
}

Tensor full(const Shape& shape, double value, Options opt) {
  check_fill_value(opt.dtype, value, "full");
  Tensor t = empty(shape, opt);
  kernels::backend(opt.device).fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, Options opt) { return full(shape, 0.0, opt); }
Tensor ones(const Shape& shape, Options opt) { return full(shape, 1.0, opt); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), {t.dtype(), t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {t.dtype(), t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {t.dtype(), t.device()}); }
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, {t.dtype(), t.device()});
}
Tensor scalar_tensor(double value, Options opt) { return full(Shape{}, value, opt); }

Tensor arange(int64_t end, Options opt) { return arange(0.0, static_cast<double>(end), 1.0, opt); }

Tensor arange(double start, double end, double step, Options opt) {
  ATTN_CHECK(step != 0.0, ValueError, "arange: step must be non-zero");
  ATTN_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), ValueError,
             "arange: unsupported range {} -> {} (step {})", start, end, step);
  ATTN_CHECK(step > 0 ? end >= start : end <= start, ValueError,
             "arange: end {} is on the wrong side of start {} for step {}", end, start, step);
  const auto n = static_cast<int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  Tensor host = empty(Shape{n}, {opt.dtype, kCPU});
  dispatch_numeric(opt.dtype, "arange", [&](auto tag) {
    using T = decltype(tag);
    T* p = host.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return host.to(opt.device);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  ATTN_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), ShapeError,
             "from_vector: {} values do not fill shape {}", values.size(), shape);
  Tensor host = empty(shape, {dtype_of<T>::value, kCPU});
  if constexpr (std::is_same_v<T, bool>) {
    auto* p = static_cast<bool*>(host.raw_data());
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  } else if (!values.empty()) {
    std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(T));
  }
  return host.to(device);
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, Device);

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, Options opt) {
  Tensor t = empty(shape, opt);
  uint64_t offset = gen.reserve(static_cast<uint64_t>(t.numel()));
  kernels::backend(opt.device).random_uniform(t, gen.seed(), offset, low, high);
  return t;
}

Tensor normal(const Shape& shape, double mean, double std, Generator& gen, Options opt) {
  Tensor t = empty(shape, opt);
  // Box-Muller uses words in pairs: an odd count still consumes the pair's second word.
  uint64_t offset = gen.reserve(static_cast<uint64_t>(t.numel() + 1) & ~uint64_t{1});
  kernels::backend(opt.device).random_normal(t, gen.seed(), offset, mean, std);
  return t;
}

Tensor uniform(const Shape& shape, double low, double high, Options opt) {
  return uniform(shape, low, high, default_generator(), opt);
}
Tensor normal(const Shape& shape, double mean, double std, Options opt) {
  return normal(shape, mean, std, default_generator(), opt);
}

// ---------------------------------------------------------------- host access

template <typename T>
std::vector<T> Tensor::to_vector() const {
  ATTN_CHECK(defined(), ValueError, "to_vector on an undefined tensor");
  NoGradGuard no_grad;
  Tensor src = *this;
  if (src.dtype() != dtype_of<T>::value) src = src.to(dtype_of<T>::value);
  src = src.contiguous();
  std::vector<T> out(static_cast<size_t>(src.numel()));
  if constexpr (std::is_same_v<T, bool>) {
    if (!src.device().is_cpu()) src = src.to(kCPU);
    const auto* p = static_cast<const bool*>(src.raw_data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else if (!out.empty()) {
    kernels::backend(src.device()).copy_to_host(out.data(), src);
  }
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

template <typename T>
T Tensor::item() const {
  ATTN_CHECK(defined() && numel() == 1, ValueError,
             "item: expected a tensor with one element, got shape {}", shape());
  return to_vector<T>()[0];
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template bool Tensor::item<bool>() const;

// ---------------------------------------------------------------- in-place writes

namespace {

// The element range [first, last] a non-empty view covers in its storage.
std::pair<int64_t, int64_t> element_extent(const Tensor& t) {
  int64_t first = t.offset(), last = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t span = (t.shape()[d] - 1) * t.strides()[d];
    (span < 0 ? first : last) += span;
  }
  return {first, last};
}

// An in-place op's target: no two of its elements share memory (an expanded view: the kernel
// would write them in an undefined order, and a scalar op would apply once per alias).
void check_no_internal_overlap(const Tensor& self, std::string_view op) {
  ATTN_CHECK(!self.has_internal_overlap(), ValueError,
             "{}: the target (shape {}, strides {}) has elements that share memory (an expanded view); write into "
             "a contiguous copy",
             op, self.shape(), self.strides());
}

// An in-place op's target and its tensor operand: the operand broadcasts into the target's
// shape and the target has no internal overlap. The operand as the kernel should read it: itself,
// or a copy taken first where it is another view whose memory range overlaps the target's (the
// kernel would read elements it has already overwritten; numpy's rule: the result is as if the
// operand were read before the write). The same view as the target is read as it is
// (elementwise, each element is read before it is written); interleaved views that share no
// element (the two columns of a (N, 2) tensor) are copied too, which costs a copy, never a wrong value.
Tensor inplace_operand(const Tensor& self, const Tensor& other, std::string_view op) {
  ATTN_CHECK(other.dim() <= self.dim() && broadcast_shapes(self.shape(), other.shape(), op) == self.shape(), ShapeError,
             "{}: an operand of shape {} does not broadcast into the target's shape {}", op, other.shape(),
             self.shape());
  check_no_internal_overlap(self, op);
  if (self.storage() != other.storage() || self.numel() == 0 || other.numel() == 0) return other;
  if (self.offset() == other.offset() && self.shape() == other.shape() && self.strides() == other.strides()) return other;
  const auto [a0, a1] = element_extent(self);
  const auto [b0, b1] = element_extent(other);
  if (a1 < b0 || b1 < a0) return other;
  NoGradGuard no_grad;
  return other.clone();
}

void check_inplace(const Tensor& t, std::string_view op) {
  ATTN_CHECK(t.defined(), ValueError, "{}: undefined tensor", op);
  ATTN_CHECK(!(GradMode::is_enabled() && t.requires_grad()), AutogradError,
             "{}: in-place write to a tensor of shape {} that requires grad; autograd does not "
             "record in-place ops: run it inside NoGradGuard or use the out-of-place op",
             op, t.shape());
  if (GradMode::is_enabled()) {
    const std::shared_ptr<TensorImpl> base = t.impl()->view_base.lock();
    ATTN_CHECK(!(base && base->autograd && base->autograd->requires_grad), AutogradError,
               "{}: in-place write, with grad mode on, to a view (shape {}) of a tensor of shape {} that requires grad; "
               "autograd does not record in-place ops: run it inside NoGradGuard, or view a detach()ed tensor",
               op, t.shape(), base->shape);
  }
  ATTN_CHECK(!(GradMode::is_enabled() && t.impl()->no_grad_view_of_grad_base), AutogradError,
             "{}: in-place write, with grad mode on, to a view (shape {}) made under NoGradGuard of a tensor that "
             "requires grad: its gradient would not know; write inside NoGradGuard too, or view a detach()ed "
             "tensor",
             op, t.shape());
}

// An operand that requires grad would need a node the in-place ops do not record: its gradient
// was silently lost (b.copy_(x); sum(b * x) gave x.grad = x instead of 2x). PyTorch records one;
// here it is an error, as for the target.
void check_inplace_grad_operand(const Tensor& operand, std::string_view op) {
  ATTN_CHECK(!(GradMode::is_enabled() && operand.requires_grad()), AutogradError,
             "{}: the operand (shape {}) requires grad, and autograd does not record in-place ops: use "
             "the out-of-place op, or detach() the operand if no gradient should flow to it",
             op, operand.shape());
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  check_fill_value(dtype(), value, "fill_");
  kernels::backend(device()).fill(*this, value);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  ATTN_CHECK(src.defined(), ValueError, "copy_: undefined source tensor");
  check_inplace_grad_operand(src, "copy_");
  Tensor s = inplace_operand(*this, src, "copy_");
  if (s.device() != device()) {
    NoGradGuard g;
    s = s.to(device());
  }
  kernels::backend(device()).copy(*this, s);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  ATTN_CHECK(other.defined(), ValueError, "add_: undefined operand");
  check_inplace_grad_operand(other, "add_");
  ATTN_CHECK(other.dtype() == dtype(), DTypeError, "add_: dtypes {} and {} differ", dtype(),
             other.dtype());
  const Tensor operand = inplace_operand(*this, other, "add_");
  ATTN_CHECK(holds_value(dtype(), alpha), DTypeError, "add_: alpha {} is not a {} value", alpha, dtype());
  auto& be = kernels::dispatch("add_", {this, &operand});
  if (alpha == 1.0) {
    be.binary(kernels::BinaryOp::Add, *this, *this, operand);
  } else {
    Tensor scaled = empty(operand.shape(), {operand.dtype(), operand.device()});
    be.unary(kernels::UnaryOp::MulScalar, scaled, operand, alpha);
    be.binary(kernels::BinaryOp::Add, *this, *this, scaled);
  }
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) {
  check_inplace(*this, "mul_");
  check_no_internal_overlap(*this, "mul_");
  ATTN_CHECK(holds_value(dtype(), value), DTypeError, "mul_: the scalar {} is not a {} value", value, dtype());
  kernels::backend(device()).unary(kernels::UnaryOp::MulScalar, *this, *this, value);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace(*this, "mul_");
  ATTN_CHECK(other.defined(), ValueError, "mul_: undefined operand");
  check_inplace_grad_operand(other, "mul_");
  ATTN_CHECK(other.dtype() == dtype(), DTypeError, "mul_: dtypes {} and {} differ", dtype(), other.dtype());
  const Tensor operand = inplace_operand(*this, other, "mul_");
  kernels::dispatch("mul_", {this, &operand}).binary(kernels::BinaryOp::Mul, *this, *this, operand);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::masked_fill_(const Tensor& mask, double value) {
  check_inplace(*this, "masked_fill_");
  ATTN_CHECK(mask.dtype() == DType::Bool, DTypeError, "masked_fill_: mask must be bool, got {}",
             mask.dtype());
  check_fill_value(dtype(), value, "masked_fill_");
  const Tensor m = inplace_operand(*this, mask, "masked_fill_");
  kernels::dispatch("masked_fill_", {this, &m}).masked_fill(*this, *this, m, value);
  storage()->bump_version();
  return *this;
}

// ---------------------------------------------------------------- autograd accessors

Tensor& Tensor::requires_grad_(bool on) {
  ATTN_CHECK(!grad_fn(), AutogradError,
             "requires_grad_: only leaf tensors can change requires_grad (this one is the output "
             "of {}); use detach()",
             grad_fn() ? grad_fn()->name() : "");
  ATTN_CHECK(!on || is_floating(dtype()), DTypeError,
             "requires_grad_: only floating-point tensors can require gradients, not {}", dtype());
  if (on || impl_->autograd) impl_->meta().requires_grad = on;
  return *this;
}

const Tensor& Tensor::grad() const {
  static const Tensor undefined;
  return impl_->autograd ? impl_->autograd->grad : undefined;
}

void Tensor::set_grad(Tensor g) {
  if (g.defined()) {
    ATTN_CHECK(g.shape() == shape(), ShapeError, "set_grad: gradient of shape {} for a tensor of shape {}",
               g.shape(), shape());
    ATTN_CHECK(g.dtype() == dtype() && g.device() == device(), DTypeError,
               "set_grad: a {} gradient on {} for a {} tensor on {}", g.dtype(), g.device(), dtype(), device());
  }
  impl_->meta().grad = std::move(g);
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl_->autograd ? impl_->autograd->grad_fn : none;
}

uint32_t Tensor::output_nr() const { return impl_->autograd ? impl_->autograd->output_nr : 0; }

bool Tensor::is_leaf() const { return !grad_fn(); }

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  ATTN_CHECK(requires_grad(), AutogradError,
             "backward: tensor of shape {} does not require grad and has no grad_fn", shape());
  Tensor seed = gradient;
  if (!seed.defined()) {
    ATTN_CHECK(numel() == 1, AutogradError,
               "backward: a gradient can be created implicitly only for a tensor with one "
               "element; this one has shape {}, so pass a gradient of that shape",
               shape());
    seed = ones_like(*this);
  } else {
    ATTN_CHECK(seed.shape() == shape(), ShapeError,
               "backward: gradient of shape {} for a tensor of shape {}", seed.shape(), shape());
    if (seed.dtype() != dtype() || seed.device() != device()) {  // cast, as PyTorch does
      NoGradGuard g;
      seed = seed.to(device()).to(dtype());
    }
  }
  TensorList roots{*this}, grads{seed};
  run_backward(roots, grads, retain_graph);
}

Tensor Tensor::detach() const {
  return Tensor(std::make_shared<TensorImpl>(impl_->storage, impl_->shape, impl_->strides,
                                             impl_->offset, impl_->dtype));
}

// ---------------------------------------------------------------- printing

namespace {

constexpr int64_t kEdge = 3;  // a summary shows this many entries at each end of a long dim

// texts: the shown tensor's elements formatted (int64 from the integers themselves: through
// double, values past 2^53 printed rounded and INT64_MAX as INT64_MIN); full: the printed
// tensor's shape, whose dims longer than shown ones get an ellipsis between their two ends.
void format_elements(std::string& out, const Tensor& shown, const Shape& full, const std::vector<std::string>& texts,
                     int64_t dim, int64_t base, int indent, int width) {
  const int64_t n = shown.size(dim);
  const int64_t stride = numel_of(Shape(shown.shape().begin() + dim + 1, shown.shape().end()));
  const bool last_dim = dim + 1 == shown.dim();
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (i == kEdge && full[static_cast<size_t>(dim)] > n) {
      out += last_dim ? " ..., " : fmt::format("...,\n{:{}}", "", indent + 1);
    }
    if (last_dim) {
      out += fmt::format("{:>{}}", texts[static_cast<size_t>(base + i)], width);
    } else {
      format_elements(out, shown, full, texts, dim + 1, base + i * stride, indent + 1, width);
    }
    if (i + 1 < n) out += last_dim ? ", " : fmt::format(",\n{:{}}", "", indent + 1);
  }
  out += ']';
}

// What a summary shows of t (dims from `dim` on): the first and last kEdge entries of every
// dim longer than 2 kEdge, gathered from views so that nothing else is read or formatted (an
// expanded tensor of 10^12 elements prints as fast as a small one).
Tensor summary_of(const Tensor& t, int64_t dim) {
  if (dim == t.dim()) return t;
  const int64_t n = t.size(dim);
  if (n <= 2 * kEdge) return summary_of(t, dim + 1);
  return cat({summary_of(t.narrow(dim, 0, kEdge), dim + 1), summary_of(t.narrow(dim, n - kEdge, kEdge), dim + 1)}, dim);
}

std::vector<std::string> element_texts(const Tensor& t) {
  std::vector<std::string> texts;
  if (t.numel() == 0) return texts;
  texts.reserve(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::Int64) {
    for (int64_t v : t.to_vector<int64_t>()) texts.push_back(fmt::format("{}", v));
  } else {
    for (double v : t.to_vector<double>())
      texts.push_back(t.dtype() == DType::Bool ? (v != 0 ? "True" : "False") : fmt::format("{:.4f}", v));
  }
  return texts;
}

}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  const bool summarize = numel() > 1000;  // PyTorch's default threshold
  Tensor shown = *this;
  if (summarize) {
    NoGradGuard no_grad;
    shown = summary_of(detach(), 0);
  }
  const std::vector<std::string> texts = element_texts(shown);
  std::string body;
  if (dim() == 0) {
    body = texts[0];
  } else if (numel() == 0) {
    body = "[]";
  } else {
    int width = 1;  // as PyTorch: the widest of the elements shown
    for (const std::string& text : texts) width = std::max(width, static_cast<int>(text.size()));
    format_elements(body, shown, shape(), texts, 0, 0, 7, width);
  }
  std::string extra;
  if (dtype() != DType::Float32) extra += fmt::format(", dtype={}", dtype());
  if (!device().is_cpu()) extra += fmt::format(", device={}", device());
  if (numel() == 0 || summarize) extra += fmt::format(", shape={}", shape());
  if (requires_grad()) extra += grad_fn() ? fmt::format(", grad_fn=<{}>", grad_fn()->name()) : ", requires_grad=True";
  return fmt::format("tensor({}{})", body, extra);
}

}  // namespace attn
