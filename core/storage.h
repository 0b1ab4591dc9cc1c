// Storage: a block of device memory shared by a tensor and all of its views. It also carries
// the version counter that autograd uses to detect in-place changes to saved tensors: views
// share the storage, so an in-place write through any view is seen by all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

#include "core/allocator.h"
#include "core/device.h"

namespace attn {

class Storage {
 public:
  Storage(size_t nbytes, Device device)
      : data_(allocator_for(device).allocate(nbytes)), nbytes_(nbytes), device_(device) {}
  // Wraps memory owned elsewhere; `release` (may be empty) runs when the storage dies.
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release)
      : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)), external_(true) {}
  ~Storage() {
    if (!external_)
      allocator_for(device_).deallocate(data_, nbytes_);
    else if (release_)
      release_(data_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  uint64_t version_ = 0;
  std::function<void(void*)> release_;
  bool external_ = false;
};

}  // namespace attn
