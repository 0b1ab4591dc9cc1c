// The device caching allocator, driven by a fake memory source on the CPU (the GPU run repeats
// the reuse test on real device memory in test_cuda.cpp): reuse without new device allocations,
// statistics, and the out-of-memory path under a cap.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "core/caching_allocator.h"
#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/tensor.h"

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

struct AlignedSourceForTest : MemorySource {
  void* raw_alloc(size_t n) override { return std::malloc(n); }
  void raw_free(void* p) override { std::free(p); }
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

// With caching off (ATTN_CUDA_NO_CACHING, for compute-sanitizer) each request reaches the device
// at its exact size and each free goes straight back: no slack for an overrun to hide in.
struct SizeRecordingSource : MemorySource {
  std::vector<size_t> asked;
  int64_t live = 0;
  void* raw_alloc(size_t n) override {
    asked.push_back(n);
    ++live;
    return std::malloc(n);
  }
  void raw_free(void* p) override {
    --live;
    std::free(p);
  }
};

TEST(CachingAllocator, WithCachingOffEveryBlockHasItsExactSizeAndIsFreedAtOnce) {
  auto source = std::make_unique<SizeRecordingSource>();
  SizeRecordingSource* src = source.get();
  CachingAllocator a("fake", std::move(source));
  a.set_caching(false);
  void* p = a.allocate(1000);
  a.deallocate(p, 1000);
  EXPECT_EQ(src->live, 0);  // freed at once, not cached
  void* q = a.allocate(900);
  void* big = a.allocate((3 << 20) + 4);
  void* none = a.allocate(0);
  EXPECT_EQ(src->asked, (std::vector<size_t>{1000, 900, (3 << 20) + 4, 1}));
  EXPECT_EQ(a.stats().reserved, 1000 - 1000 + 900 + (3 << 20) + 4 + 1);
  for (void* x : {q, big, none}) a.deallocate(x, 0);
  EXPECT_EQ(src->live, 0);
  EXPECT_EQ(a.stats().reserved, 0);
  EXPECT_EQ(a.cached_blocks(), 0);
  // back on: sizes are rounded and blocks kept again
  a.set_caching(true);
  a.deallocate(a.allocate(1000), 1000);
  EXPECT_EQ(src->asked.back(), CachingAllocator::round_size(1000));
  EXPECT_EQ(a.cached_blocks(), 1);
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
  // reset_peak: the peak starts again from what is in use (torch.cuda.reset_peak_memory_stats)
  void* r = a.allocate(2 << 20);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak, 2 << 20);
  a.deallocate(a.allocate(1 << 20), 1 << 20);
  EXPECT_EQ(a.stats().peak, 3 << 20);
  a.deallocate(r, 2 << 20);
}

TEST(CpuAllocator, ResetPeakStartsFromWhatIsInUse) {
  Allocator& cpu = allocator_for(kCPU);
  Tensor kept = uniform({1 << 18});  // 1 MiB, in use throughout
  { Tensor big = uniform({1 << 20}); }  // 4 MiB, freed
  cpu.reset_peak();
  const AllocatorStats s = cpu.stats();
  EXPECT_EQ(s.peak, s.in_use);
  { Tensor mid = uniform({1 << 19}); }  // 2 MiB more, for a while
  EXPECT_GE(cpu.stats().peak, s.in_use + (int64_t{2} << 20));
  EXPECT_LT(cpu.stats().peak, s.in_use + (int64_t{4} << 20));  // not the 4 MiB block before the reset
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
// ---------------------------------------------------------------- the CPU allocator (from a review)

// A tensor held by a thread_local built before the thread's free lists outlives them: its block
// was pushed into a destroyed vector (heap corruption, a crash in the C library at thread exit).
TEST(CpuAllocator, ATensorThatOutlivesItsThreadsFreeListsIsFreedSafely) {
  const int64_t before = allocator_for(kCPU).stats().in_use;
  for (int round = 0; round < 20; ++round) {
    std::thread t([] {
      thread_local Tensor held;  // constructed first, destroyed after the free lists
      { Tensor warm = empty({4}); }  // the size class's list gets capacity
      held = empty({4});
    });
    t.join();
  }
  EXPECT_EQ(allocator_for(kCPU).stats().in_use, before);
}

// Blocks in a thread's free lists are reserved memory; they go back when the thread ends.
TEST(CpuAllocator, SmallBlocksInTheFreeListsCountAsReserved) {
  Allocator& a = allocator_for(kCPU);
  const AllocatorStats start = a.stats();
  AllocatorStats held;
  std::thread t([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 64; ++i) blocks.push_back(a.allocate(4096));
    for (void* p : blocks) a.deallocate(p, 4096);
    held = a.stats();
  });
  t.join();
  EXPECT_EQ(held.in_use, start.in_use);
  EXPECT_GE(held.reserved - start.reserved, 64 * 4096);  // (was: not counted at all)
  EXPECT_EQ(a.stats().reserved, start.reserved);
}

TEST(CpuAllocator, SizesThatWouldWrapInTheRoundingAreOutOfMemory) {
  Allocator& a = allocator_for(kCPU);
  const int64_t in_use = a.stats().in_use;
  for (size_t n : {SIZE_MAX, SIZE_MAX - 127, SIZE_MAX - (size_t{2} << 20) + 100}) {
    try {
      void* p = a.allocate(n);  // (SIZE_MAX segfaulted; the others returned a tiny block)
      a.deallocate(p, n);
      FAIL() << n << " bytes were handed out";
    } catch (const OutOfMemoryError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(n)), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(a.stats().in_use, in_use);
  CachingAllocator device("fake", std::make_unique<AlignedSourceForTest>());
  EXPECT_THROW(device.allocate(SIZE_MAX - 127), OutOfMemoryError);
  // strides whose byte count wraps: a small storage under elements far beyond it, before
  EXPECT_THROW(empty_strided({2, 2}, {int64_t{1} << 62, 1}), OutOfMemoryError);
  // a shape whose bytes do not fit in 64 bits (an LSTM weight of hidden 2^62 segfaulted once)
  try {
    (void)empty({int64_t{1} << 62, 4});
    ADD_FAILURE() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("more bytes than fit in 64 bits"), std::string::npos) << e.what();
  }
  // and a view past the end through an overflowing bound check
  EXPECT_THROW(zeros({4}).narrow(0, 1, INT64_MAX), IndexError);
  EXPECT_THROW(zeros({4}).narrow(0, 5, 0), IndexError);
  EXPECT_EQ(zeros({4}).narrow(0, 4, 0).numel(), 0);
}

// Replacing a file keeps its permissions, as an editor does (the temporary took the umask's).
TEST(AtomicFile, AReplacedFileKeepsItsPermissions) {
  const std::string path = ::testing::TempDir() + "/atomic-mode.txt";
  ::unlink(path.c_str());
  io::write_file_atomic(path, "first");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  io::write_file_atomic(path, "second");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(io::read_file(path), "second");
  ::unlink(path.c_str());
}

// Threads writing one path: each write is whole (they shared one temporary and mixed bytes).
TEST(AtomicFile, ThreadsWritingOnePathLeaveOneWholeContent) {
  const std::string path = ::testing::TempDir() + "/atomic-threads.txt";
  std::vector<std::string> contents;
  for (int k = 0; k < 4; ++k) contents.push_back(std::string(static_cast<size_t>(1000 + 7919 * k), static_cast<char>('a' + k)));
  for (int round = 0; round < 30; ++round) {
    std::vector<std::thread> ts;
    std::vector<int> failures(4, 0);
    for (int k = 0; k < 4; ++k)
      ts.emplace_back([&, k] {
        try {
          io::write_file_atomic(path, contents[static_cast<size_t>(k)]);
        } catch (const std::exception&) {
          failures[static_cast<size_t>(k)] = 1;
        }
      });
    for (auto& t : ts) t.join();
    for (int f : failures) EXPECT_EQ(f, 0) << "round " << round;
    const std::string got = io::read_file(path);
    EXPECT_TRUE(std::find(contents.begin(), contents.end(), got) != contents.end()) << "round " << round << ": " << got.size() << " bytes";
  }
}

}  // namespace attn
