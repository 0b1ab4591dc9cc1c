#include "core/allocator.h"

#include <atomic>
#include <cstdlib>

#include "core/error.h"
#if ATTN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace attn {

namespace {

// 64-byte aligned blocks from the C library; large blocks are reused by glibc's heap once
// freed, so steady-state training loops do not page-fault fresh memory every step.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded == 0) rounded = kCpuAlignment;
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    if (!p) {
      throw OutOfMemoryError(fmt::format(
          "CPU out of memory: asked for {} bytes with {} bytes in use by tensors", nbytes,
          in_use_.load(std::memory_order_relaxed)));
    }
    int64_t now = in_use_.fetch_add(static_cast<int64_t>(nbytes), std::memory_order_relaxed) +
                  static_cast<int64_t>(nbytes);
    int64_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    allocations_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    in_use_.fetch_sub(static_cast<int64_t>(nbytes), std::memory_order_relaxed);
    std::free(ptr);
  }
  AllocatorStats stats() const override {
    AllocatorStats s;
    s.in_use = in_use_.load();
    s.reserved = s.in_use;
    s.peak = peak_.load();
    s.allocations = allocations_.load();
    s.system_allocations = s.allocations;
    return s;
  }

 private:
  std::atomic<int64_t> in_use_{0}, peak_{0}, allocations_{0};
};

}  // namespace

Allocator& allocator_for(Device device) {
  static CpuAllocator cpu;
  if (device.is_cpu()) [[likely]] return cpu;
#if ATTN_WITH_CUDA
  return cuda::cuda_allocator(device);
#else
  throw DeviceError(fmt::format("no allocator for device {}: this build has no CUDA backend", device));
#endif
}

}  // namespace attn
