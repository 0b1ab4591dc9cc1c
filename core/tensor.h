// Tensor: a handle to shape, strides and offset over a shared Storage, plus autograd metadata.
// Copies of a Tensor share everything (like torch.Tensor in Python); views share the storage.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace attn {

class Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- metadata ----
  const Shape& shape() const;
  const Strides& strides() const;
  int64_t offset() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  // Whether two elements share memory (a dim of size > 1 with stride 0, as expand makes): an
  // in-place write into such a view is refused.
  bool has_internal_overlap() const;
  const std::shared_ptr<Storage>& storage() const;
  uint64_t version() const;  // bumped by every in-place write into the storage

  // Pointer to the first element (offset applied). data<T>() checks that T matches the dtype.
  void* raw_data() const;
  template <typename T>
  T* data() const;

  // Host copies, from any device and any strides.
  template <typename T>
  T item() const;
  template <typename T>
  std::vector<T> to_vector() const;

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);  // leaves only
  const Tensor& grad() const;              // undefined until a backward reaches this leaf
  void set_grad(Tensor g);
  const std::shared_ptr<Node>& grad_fn() const;
  uint32_t output_nr() const;
  bool is_leaf() const;
  // Backward from this tensor: it must hold one element unless `gradient` is given.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no history

  // ---- views: share storage; differentiable ----
  Tensor view(const Shape& shape) const;     // needs compatible strides (ShapeError otherwise)
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor permute(const Shape& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;

  // ---- in-place (not recorded by autograd; refused on tensors that require grad while grad
  //      mode is on; each bumps the version counter) ----
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // src broadcast to this shape; any device
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double value);
  Tensor& mul_(const Tensor& other);
  Tensor& masked_fill_(const Tensor& mask, double value);

  std::string to_string() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Autograd state; only tensors that take part in autograd carry one.
struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;      // null for leaves
  uint32_t output_nr = 0;             // which output of grad_fn this tensor is
  std::weak_ptr<Node> grad_accumulator;  // leaves: the node that accumulates into .grad
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::unique_ptr<AutogradMeta> autograd;
  // A view made in no-grad mode of a tensor that requires grad (or of such a view): an in-place
  // write to it in grad mode would change the base behind autograd's back (PyTorch refuses it).
  bool no_grad_view_of_grad_base = false;
  // The tensor a view was taken of (the first one, for a view of a view; none for detach()): a
  // view made before its base was set to require grad must not write into it in grad mode
  // either (PyTorch: "a view of a leaf Variable that requires grad is being used in an in-place
  // operation").
  std::weak_ptr<TensorImpl> view_base;

  TensorImpl(std::shared_ptr<Storage> s, Shape sh, Strides st, int64_t off, DType dt)
      : storage(std::move(s)), shape(std::move(sh)), strides(std::move(st)), offset(off),
        dtype(dt) {}
  int64_t numel() const { return numel_of(shape); }
  AutogradMeta& meta() {
    if (!autograd) autograd = std::make_unique<AutogradMeta>();
    return *autograd;
  }
};

// ---- inline accessors ----
inline const Shape& Tensor::shape() const { return impl_->shape; }
inline const Strides& Tensor::strides() const { return impl_->strides; }
inline int64_t Tensor::offset() const { return impl_->offset; }
inline int64_t Tensor::dim() const { return static_cast<int64_t>(impl_->shape.size()); }
inline int64_t Tensor::numel() const { return impl_->numel(); }
inline DType Tensor::dtype() const { return impl_->dtype; }
inline Device Tensor::device() const { return impl_->storage->device(); }
inline const std::shared_ptr<Storage>& Tensor::storage() const { return impl_->storage; }
inline uint64_t Tensor::version() const { return impl_->storage->version(); }
inline void* Tensor::raw_data() const {
  return static_cast<char*>(impl_->storage->data()) +
         impl_->offset * static_cast<int64_t>(dtype_size(impl_->dtype));
}
template <typename T>
T* Tensor::data() const {
  ATTN_CHECK(dtype_of<T>::value == dtype(), DTypeError, "data<{}>() on a tensor of dtype {}",
             dtype_of<T>::value, dtype());
  return static_cast<T*>(raw_data());
}
inline bool Tensor::requires_grad() const {
  return impl_->autograd && impl_->autograd->requires_grad;
}

// ---- creation ----
struct Options {
  DType dtype = DType::Float32;
  Device device = kCPU;
};

Tensor empty(const Shape& shape, Options opt = {});
Tensor empty_strided(const Shape& shape, const Strides& strides, Options opt = {});
Tensor zeros(const Shape& shape, Options opt = {});
Tensor ones(const Shape& shape, Options opt = {});
Tensor full(const Shape& shape, double value, Options opt = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor arange(int64_t end, Options opt = {.dtype = DType::Int64});
Tensor arange(double start, double end, double step, Options opt = {});
Tensor scalar_tensor(double value, Options opt = {});
// Copies host values into a new tensor of the given shape (numel must match).
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = kCPU);
template <typename T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())});
}

// A tensor over memory owned elsewhere (no copy); `release` runs when the last view dies.
Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device = kCPU,
                 std::function<void(void*)> release = {});

class Generator;
// Random tensors from the counter-based generator (Philox 4x32-10): the same seed and offset
// give the same numbers on every device.
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, Options opt = {});
Tensor normal(const Shape& shape, double mean, double std, Generator& gen, Options opt = {});
Tensor uniform(const Shape& shape, double low = 0.0, double high = 1.0, Options opt = {});
Tensor normal(const Shape& shape, double mean = 0.0, double std = 1.0, Options opt = {});

}  // namespace attn

template <>
struct fmt::formatter<attn::Tensor> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(const attn::Tensor& t, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{}", t.to_string());
  }
};
