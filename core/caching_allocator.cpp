#include "core/caching_allocator.h"

#include <algorithm>

#include "core/error.h"

namespace attn {

CachingAllocator::CachingAllocator(std::string device_name, std::unique_ptr<MemorySource> source)
    : device_name_(std::move(device_name)), source_(std::move(source)) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    release_cached_locked();
  } catch (...) {  // a destructor must not throw; at exit the device may already be gone
  }
}

size_t CachingAllocator::round_size(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20;  // 512 B up to 1 MiB, then 2 MiB
  if (nbytes == 0) return kSmall;
  if (nbytes <= (size_t{1} << 20)) return (nbytes + kSmall - 1) / kSmall * kSmall;
  return (nbytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes > (size_t{1} << 62)) {  // round_size would wrap to a tiny block
    throw OutOfMemoryError(fmt::format("{} out of memory: tried to allocate {} bytes, more than the address space holds",
                                       device_name_, nbytes));
  }
  const size_t size = caching_ ? round_size(nbytes) : std::max<size_t>(nbytes, 1);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.allocations;
  void* ptr = nullptr;
  size_t got = size;
  auto& pool = free_[stream_];
  // Best fit among cached blocks, if it wastes less than the request itself; among blocks of
  // that size the one freed last (a multimap keeps equal keys in insertion order), whose lines
  // are the likeliest to be in cache: the oldest made every new CPU output a stream of misses.
  auto it = pool.lower_bound(size);
  if (it != pool.end()) it = std::prev(pool.upper_bound(it->first));
  if (caching_ && it != pool.end() && it->first < 2 * size) {
    ptr = it->second;
    got = it->first;
    pool.erase(it);
  } else {
    auto try_raw = [&]() -> void* {
      if (limit_ > 0 && stats_.reserved + static_cast<int64_t>(size) > limit_) return nullptr;
      return source_->raw_alloc(size);
    };
    ptr = try_raw();
    if (!ptr) {  // give the cache back to the device and try once more
      release_cached_locked();
      ptr = try_raw();
    }
    if (!ptr) {
      throw OutOfMemoryError(fmt::format(
          "{} out of memory: tried to allocate {} ({} bytes); {} in use by tensors, {} reserved by "
          "the allocator{}{}",
          device_name_, format_bytes(static_cast<int64_t>(nbytes)), nbytes, format_bytes(stats_.in_use),
          format_bytes(stats_.reserved), limit_ > 0 ? fmt::format(", limit {}", format_bytes(limit_)) : "",
          source_->describe()));
    }
    stats_.reserved += static_cast<int64_t>(size);
    ++stats_.system_allocations;
  }
  live_[ptr] = Live{got, stream_};
  stats_.in_use += static_cast<int64_t>(got);
  stats_.peak = std::max(stats_.peak, stats_.in_use);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t /*nbytes*/) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  ATTN_ASSERT(it != live_.end(), "{}: freeing a block this allocator did not hand out", device_name_);
  const size_t size = it->second.size;
  stats_.in_use -= static_cast<int64_t>(size);
  const int64_t cached = stats_.reserved - stats_.in_use;
  if (!caching_ || (max_cached_ >= 0 && cached > max_cached_)) {
    source_->raw_free(ptr);
    stats_.reserved -= static_cast<int64_t>(size);
  } else {
    free_[it->second.stream].emplace(size, ptr);
  }
  live_.erase(it);
}

void CachingAllocator::release_cached_locked() {
  for (auto& [stream, pool] : free_) {
    for (auto& [size, ptr] : pool) {
      source_->raw_free(ptr);
      stats_.reserved -= static_cast<int64_t>(size);
    }
    pool.clear();
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

int64_t CachingAllocator::cached_blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& [stream, pool] : free_) n += static_cast<int64_t>(pool.size());
  return n;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (bytes >= (int64_t{1} << 20)) return fmt::format("{:.2f} MiB", b / (1 << 20));
  if (bytes >= (int64_t{1} << 10)) return fmt::format("{:.2f} KiB", b / (1 << 10));
  return fmt::format("{} B", bytes);
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak = stats_.in_use;
}

std::string format_stats(const AllocatorStats& s) {
  return fmt::format("in use {}, reserved {}, peak {}, {} allocations ({} from the device)", format_bytes(s.in_use),
                     format_bytes(s.reserved), format_bytes(s.peak), s.allocations, s.system_allocations);
}

}  // namespace attn
