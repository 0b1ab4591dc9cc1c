#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/caching_allocator.h"
#include "core/error.h"
#if ATTN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace attn {

namespace {

// 64-byte aligned blocks. Small blocks (up to 4 KiB, the size of scalars, biases and the
// temporaries of a decoder step) are recycled through per-thread free lists by size class, so
// the fixed cost of a tiny op is not spent in memalign/free. Larger blocks go through a
// CachingAllocator (the GPU's, over aligned_alloc): the C library hands large freed blocks back
// to the kernel, and every step of a training loop then paid for page faults on fresh memory
// (340k faults a second in `attn bench kernels` before this cache). At most 2 GiB is kept.
class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kSmallMax = 4096;
  static constexpr size_t kClasses = kSmallMax / kCpuAlignment;
  static constexpr size_t kKeepPerClass = 64;

  void* allocate(size_t nbytes) override {
    // (a size near SIZE_MAX wrapped to a tiny block in the rounding)
    if (nbytes > kMaxBytes) throw out_of_memory(nbytes, "more than the address space holds");
    const size_t rounded = rounded_size(nbytes);
    void* p = nullptr;
    if (rounded <= kSmallMax) {
      if (Cache* c = cache()) {
        auto& list = c->lists[rounded / kCpuAlignment - 1];
        if (!list.empty()) {
          p = list.back();
          list.pop_back();
        }
      }
      if (!p) {
        p = std::aligned_alloc(kCpuAlignment, rounded);
        if (!p) throw out_of_memory(nbytes, "the C library has no more");
        system_allocations_.fetch_add(1, std::memory_order_relaxed);
        small_reserved().fetch_add(static_cast<int64_t>(rounded), std::memory_order_relaxed);
      }
    } else {
      try {
        p = large().allocate(rounded);
      } catch (const OutOfMemoryError& e) {
        throw out_of_memory(nbytes, e.what());
      }
    }
    int64_t now = in_use_.fetch_add(static_cast<int64_t>(nbytes), std::memory_order_relaxed) +
                  static_cast<int64_t>(nbytes);
    raise_peak(now);
    allocations_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    in_use_.fetch_sub(static_cast<int64_t>(nbytes), std::memory_order_relaxed);
    const size_t rounded = rounded_size(nbytes);
    if (rounded <= kSmallMax) {
      if (Cache* c = cache()) {
        auto& list = c->lists[rounded / kCpuAlignment - 1];
        if (list.size() < kKeepPerClass) {
          list.push_back(ptr);
          return;
        }
      }
      free_small(ptr, rounded);
      return;
    }
    large().deallocate(ptr, rounded);
  }
  AllocatorStats stats() const override {
    AllocatorStats s;
    const AllocatorStats big = large().stats();
    s.in_use = in_use_.load();
    // small blocks held from the system (live or in the free lists), rounded, plus the large pool
    s.reserved = small_reserved().load() + big.reserved;
    s.peak = peak_.load();
    s.allocations = allocations_.load();
    s.system_allocations = system_allocations_.load() + big.system_allocations;
    return s;
  }
  void reset_peak() override {
    peak_.store(in_use_.load());
    // an allocation between the load and the store raised in_use but not the peak it found
    // higher: read in_use again (later ones raise the new peak themselves)
    raise_peak(in_use_.load());
    large().reset_peak();
  }

 private:
  void raise_peak(int64_t now) {
    int64_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  static constexpr size_t kMaxBytes = size_t{1} << 62;

  // The block a request takes: a multiple of the alignment, at least one (a unique pointer for 0).
  static size_t rounded_size(size_t nbytes) {
    return nbytes == 0 ? kCpuAlignment : (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  }

  OutOfMemoryError out_of_memory(size_t nbytes, const std::string& why) const {
    return OutOfMemoryError(fmt::format("CPU out of memory: tried to allocate {} bytes; {} bytes in use by tensors, {} "
                                        "reserved ({})",
                                        nbytes, in_use_.load(std::memory_order_relaxed), stats().reserved, why));
  }

  // Bytes of small blocks held from the system, over all threads.
  static std::atomic<int64_t>& small_reserved() {
    static std::atomic<int64_t> n{0};
    return n;
  }
  static void free_small(void* p, size_t rounded) {
    std::free(p);
    small_reserved().fetch_sub(static_cast<int64_t>(rounded), std::memory_order_relaxed);
  }

  // A thread's free lists. A tensor can outlive them: one held by a thread_local built before
  // them, or by a static when the main thread's thread_locals are gone; its block then goes
  // straight back to the C library (the flag is trivially destructible, so it stays readable
  // until the thread's storage is gone; the lists' vectors are not).
  static bool& cache_gone() {
    thread_local bool gone = false;
    return gone;
  }
  struct Cache {
    std::vector<void*> lists[kClasses];
    ~Cache() {
      for (size_t k = 0; k < kClasses; ++k)
        for (void* p : lists[k]) free_small(p, (k + 1) * kCpuAlignment);
      cache_gone() = true;
    }
  };
  static Cache* cache() {
    if (cache_gone()) return nullptr;
    thread_local Cache c;
    return &c;
  }
  struct AlignedMemory final : MemorySource {
    void* raw_alloc(size_t n) override { return std::aligned_alloc(kCpuAlignment, n); }
    void raw_free(void* p) override { std::free(p); }
  };
  static CachingAllocator& large() {
    static CachingAllocator* a = [] {
      auto* c = new CachingAllocator("cpu", std::make_unique<AlignedMemory>());  // lives until exit
      c->set_max_cached(int64_t{2} << 30);
      return c;
    }();
    return *a;
  }
  std::atomic<int64_t> in_use_{0}, peak_{0}, allocations_{0}, system_allocations_{0};
};

}  // namespace

Allocator& allocator_for(Device device) {
  // Never destroyed: tensors in statics are freed after every static destructor that would run.
  static CpuAllocator* const cpu = new CpuAllocator;
  if (device.is_cpu()) [[likely]] return *cpu;
#if ATTN_WITH_CUDA
  return cuda::cuda_allocator(device);
#else
  throw DeviceError(fmt::format("no allocator for device {}: this build has no CUDA backend", device));
#endif
}

}  // namespace attn
