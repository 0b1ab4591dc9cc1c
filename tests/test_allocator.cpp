// The device caching allocator, driven by a fake memory source on the CPU (the GPU run repeats
// the reuse test on real device memory in test_cuda.cpp): reuse without new device allocations,
// statistics, and the out-of-memory path under a cap.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "core/caching_allocator.h"
#include "core/error.h"

namespace attn {
namespace {

struct FakeSource : MemorySource {
  int64_t* live;
  int64_t* calls;
  FakeSource(int64_t* l, int64_t* c) : live(l), calls(c) {}
  void* raw_alloc(size_t n) override {
    ++*calls;
    ++*live;
    return std::malloc(n);
  }
  void raw_free(void* p) override {
    --*live;
    std::free(p);
  }
  std::string describe() const override { return "; fake device of the test"; }
};

TEST(CachingAllocator, ReusesFreedBlocksWithoutNewDeviceAllocations) {
  int64_t live = 0, calls = 0;
  CachingAllocator a("fake", std::make_unique<FakeSource>(&live, &calls));
  void* p = a.allocate(1000);
  a.deallocate(p, 1000);
  void* q = a.allocate(900);  // same 1024-byte class
  EXPECT_EQ(q, p);
  EXPECT_EQ(calls, 1);
  void* big = a.allocate(5 << 20);  // a different size: a new device block
  EXPECT_EQ(calls, 2);
  a.deallocate(big, 5 << 20);
  a.deallocate(q, 900);
  for (int step = 0; step < 100; ++step) {  // a steady loop allocates from the device no more
    void* x = a.allocate(5 << 20);
    void* y = a.allocate(700);
    a.deallocate(x, 5 << 20);
    a.deallocate(y, 700);
  }
  EXPECT_EQ(calls, 2);
  // A small request does not take a much larger cached block.
  void* small = a.allocate(512);
  EXPECT_NE(small, big);
  a.deallocate(small, 512);
}

// Among cached blocks of the best-fitting size the last one freed is handed out first (its
// lines are the likeliest still in cache); a smaller request still takes the best fit.
TEST(CachingAllocator, HandsOutTheBlockFreedLastAmongEqualSizes) {
  int64_t live = 0, calls = 0;
  CachingAllocator a("fake", std::make_unique<FakeSource>(&live, &calls));
  void* b[4];
  for (void*& p : b) p = a.allocate(100000);
  void* larger = a.allocate(150000);
  for (void* p : b) a.deallocate(p, 100000);
  a.deallocate(larger, 150000);
  void* got[4] = {a.allocate(100000), a.allocate(99900), a.allocate(120000), a.allocate(100000)};
  EXPECT_EQ(got[0], b[3]);
  EXPECT_EQ(got[1], b[2]);    // the same rounded size
  EXPECT_EQ(got[2], larger);  // the only cached block that fits
  EXPECT_EQ(got[3], b[1]);
  EXPECT_EQ(calls, 5);
  a.deallocate(got[0], 100000);
  a.deallocate(got[1], 99900);
  a.deallocate(got[2], 120000);
  a.deallocate(got[3], 100000);
}

TEST(CachingAllocator, StatisticsTrackInUseReservedAndPeak) {
  int64_t live = 0, calls = 0;
  CachingAllocator a("fake", std::make_unique<FakeSource>(&live, &calls));
  void* p = a.allocate(3 << 20);  // rounds to 4 MiB
  void* q = a.allocate(1 << 20);
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.in_use, (4 << 20) + (1 << 20));
  EXPECT_EQ(s.reserved, s.in_use);
  a.deallocate(p, 3 << 20);
  s = a.stats();
  EXPECT_EQ(s.in_use, 1 << 20);
  EXPECT_EQ(s.reserved, (4 << 20) + (1 << 20));  // the freed block stays cached
  EXPECT_EQ(s.peak, (4 << 20) + (1 << 20));
  EXPECT_EQ(a.cached_blocks(), 1);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved, 1 << 20);
  EXPECT_EQ(live, 1);
  a.deallocate(q, 1 << 20);
  EXPECT_NE(format_stats(a.stats()).find("peak 5.00 MiB"), std::string::npos) << format_stats(a.stats());
}

TEST(CachingAllocator, OutOfMemoryUnderACapIsAClearErrorAndLosesNothing) {
  int64_t live = 0, calls = 0;
  CachingAllocator a("fake:0", std::make_unique<FakeSource>(&live, &calls));
  a.set_limit(8 << 20);
  void* p = a.allocate(3 << 20);  // 4 MiB block
  void* q = a.allocate(2 << 20);  // 2 MiB block
  a.deallocate(q, 2 << 20);       // cached
  // 4 MiB more only fits if the cached 2 MiB block goes back to the device first.
  void* r = a.allocate(4 << 20);
  EXPECT_EQ(a.cached_blocks(), 0);
  try {
    a.allocate(1 << 20);
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string msg = e.what();
    for (const char* s : {"fake:0 out of memory", "1.00 MiB", "8.00 MiB in use", "8.00 MiB reserved", "limit 8.00 MiB", "fake device"})
      EXPECT_NE(msg.find(s), std::string::npos) << s << " not in: " << msg;
  }
  // The failed request changed nothing: the live blocks are intact and usable.
  EXPECT_EQ(a.stats().in_use, 8 << 20);
  a.deallocate(p, 3 << 20);
  void* again = a.allocate(1 << 20);
  EXPECT_NE(again, nullptr);
  a.deallocate(again, 1 << 20);
  a.deallocate(r, 4 << 20);
}

TEST(CachingAllocator, PoolsAreKeptPerStream) {
  int64_t live = 0, calls = 0;
  CachingAllocator a("fake", std::make_unique<FakeSource>(&live, &calls));
  a.set_stream(1);
  void* p = a.allocate(4096);
  a.deallocate(p, 4096);
  a.set_stream(2);
  void* q = a.allocate(4096);
  EXPECT_NE(q, p);  // not reused across streams
  a.set_stream(1);
  void* r = a.allocate(4096);
  EXPECT_EQ(r, p);
  a.deallocate(q, 4096);
  a.deallocate(r, 4096);
}

}  // namespace
}  // namespace attn
