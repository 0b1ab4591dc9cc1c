// Memory for tensors. Each device type has one allocator; storages get and return their bytes
// through it. The CPU allocator hands out 64-byte aligned blocks (a cache line, an AVX-512
// vector); the CUDA backend registers a caching allocator for its device type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace attn {

struct AllocatorStats {
  int64_t in_use = 0;      // bytes handed out and not yet returned
  int64_t reserved = 0;    // bytes held from the system (in use + cached)
  int64_t peak = 0;        // highest in_use seen
  int64_t allocations = 0; // number of allocate() calls
  int64_t system_allocations = 0;  // of those, how many went to the system
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns at least `nbytes` bytes (a unique pointer even for 0); throws OutOfMemoryError.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  // The peak starts again from the bytes in use now (torch.cuda.reset_peak_memory_stats).
  virtual void reset_peak() = 0;
};

// The allocator for a device type; DeviceError when the type is not built in.
Allocator& allocator_for(Device device);

inline constexpr size_t kCpuAlignment = 64;

}  // namespace attn
