// Which tensor, unchanged since: the storage it views (weak: a freed storage never matches, even
// when its memory comes back for another tensor), where and how it views it, and the storage's
// version then. Caches of values derived from a tensor key on it (the checked sequence lengths,
// the LSTM's packed weights). An in-place write through a Tensor method (fill_, copy_, an
// optimizer's step) bumps the version; a write through a raw pointer (data<T>()) does not and is
// not seen, as PyTorch's saved-tensor checks do not see one either.
#pragma once

#include <memory>

#include "core/tensor.h"

namespace attn {

struct TensorIdentity {
  std::weak_ptr<Storage> storage;
  int64_t offset = 0;
  Shape shape;
  Strides strides;
  uint64_t version = 0;

  TensorIdentity() = default;
  explicit TensorIdentity(const Tensor& t)
      : storage(t.storage()), offset(t.offset()), shape(t.shape()), strides(t.strides()), version(t.version()) {}
  // The same view of the same storage, whatever its version.
  bool same_view(const Tensor& t) const {
    return storage.lock() == t.storage() && offset == t.offset() && shape == t.shape() && strides == t.strides();
  }
  // ... and unchanged since.
  bool matches(const Tensor& t) const { return same_view(t) && version == t.version(); }
};

}  // namespace attn
