// A caching allocator for device memory, independent of the device: blocks obtained from a
// MemorySource (cudaMalloc for the GPU) are kept when freed and handed out again to later
// requests of a similar size on the same stream, so a training loop reaches a steady state with
// no cudaMalloc/cudaFree on its hot path. Statistics say what is in use, what is held (reserved)
// and the peak. An optional limit on the reserved bytes simulates a smaller device, which is how
// the out-of-memory path is tested without exhausting a real card.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/allocator.h"

namespace attn {

class MemorySource {
 public:
  virtual ~MemorySource() = default;
  virtual void* raw_alloc(size_t nbytes) = 0;  // nullptr when the device has no room
  virtual void raw_free(void* ptr) = 0;
  virtual std::string describe() const { return {}; }  // extra context for OOM messages
};

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(std::string device_name, std::unique_ptr<MemorySource> source);
  ~CachingAllocator() override;

  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  AllocatorStats stats() const override;
  void reset_peak() override;

  // Blocks are pooled per stream: memory freed on one stream is reused on that stream only.
  void set_stream(uintptr_t stream) { stream_ = stream; }
  uintptr_t stream() const { return stream_; }
  // Caps the bytes held from the device (0: no cap).
  void set_limit(int64_t bytes) { limit_ = bytes; }
  // Caps the bytes kept in the cache (freed blocks beyond it go back at once; -1: no cap).
  void set_max_cached(int64_t bytes) { max_cached_ = bytes; }
  // Off: every request goes to the device at its exact size and every free straight back, so
  // that a memory checker (compute-sanitizer) sees each tensor's bounds; a rounded, reused block
  // hides an overrun into its slack. The CUDA allocator starts off when ATTN_CUDA_NO_CACHING is
  // set (and not "0"), like PyTorch's PYTORCH_NO_CUDA_MEMORY_CACHING.
  void set_caching(bool on) { caching_ = on; }
  bool caching() const { return caching_; }
  // Returns every cached (free) block to the device.
  void empty_cache();
  int64_t cached_blocks() const;

  static size_t round_size(size_t nbytes);

 private:
  void release_cached_locked();

  std::string device_name_;
  std::unique_ptr<MemorySource> source_;
  mutable std::mutex mu_;
  std::map<uintptr_t, std::multimap<size_t, void*>> free_;  // stream -> (size -> block)
  struct Live {
    size_t size;
    uintptr_t stream;
  };
  std::unordered_map<void*, Live> live_;
  uintptr_t stream_ = 0;
  int64_t limit_ = 0;
  int64_t max_cached_ = -1;
  bool caching_ = true;
  AllocatorStats stats_;
};

std::string format_bytes(int64_t bytes);
std::string format_stats(const AllocatorStats& s);

}  // namespace attn
