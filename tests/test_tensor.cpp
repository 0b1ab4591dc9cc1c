// Tensor basics: creation, views sharing storage, contiguity, printing, and the counter-based
// random generator (known-answer vectors, determinism, distributions).
#include <gtest/gtest.h>

#include <limits>

#include <cmath>
#include <numeric>

#include "core/philox.h"
#include "kernels/backend.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

TEST(Tensor, CreationFillsValues) {
  EXPECT_EQ(zeros({2, 3}).to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(ones({4}, {.dtype = DType::Float64}).to_vector<double>(), std::vector<double>(4, 1.0));
  EXPECT_EQ(full({2, 2}, -1.5).to_vector<float>(), std::vector<float>(4, -1.5f));
  EXPECT_EQ(arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25).to_vector<float>(), (std::vector<float>{1.0f, 1.25f, 1.5f, 1.75f}));
  Tensor v = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.shape(), (Shape{2, 3}));
  EXPECT_EQ(v.strides(), (Strides{3, 1}));
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(v.dtype(), DType::Float32);
}

// An empty tensor may have dims whose product overflows int64 (a safetensors file may hold
// one); its strides saturate rather than overflow (undefined behaviour; it wrapped to 0).
TEST(Tensor, StridesOfAnEmptyTensorWithHugeDimsSaturate) {
  const int64_t big = int64_t{1} << 32;
  EXPECT_EQ(contiguous_strides(Shape{0, big, big}), (Strides{std::numeric_limits<int64_t>::max(), big, 1}));
  EXPECT_EQ(contiguous_strides(Shape{big, 0, big}), (Strides{big, big, 1}));
  Tensor t = empty(Shape{0, big, big});
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.stride(1), big);
}

TEST(Tensor, ItemNeedsOneElement) {
  EXPECT_EQ(full({1, 1}, 2.5).item<float>(), 2.5f);
  EXPECT_THROW(zeros({2}).item<float>(), ValueError);
}

TEST(Tensor, StorageIs64ByteAligned) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = empty({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

TEST(Tensor, ViewsShareStorageWithoutCopies) {
  Tensor base = from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4});
  Tensor tr = base.transpose(0, 1);
  EXPECT_EQ(tr.shape(), (Shape{4, 3}));
  EXPECT_EQ(tr.strides(), (Strides{1, 4}));
  EXPECT_EQ(tr.storage(), base.storage());
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(tr.to_vector<float>(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));

  Tensor row = base.select(0, 1);
  EXPECT_EQ(row.offset(), 4);
  EXPECT_EQ(row.to_vector<float>(), (std::vector<float>{4, 5, 6, 7}));
  Tensor col = base.narrow(1, 2, 2);
  EXPECT_EQ(col.offset(), 2);
  EXPECT_EQ(col.to_vector<float>(), (std::vector<float>{2, 3, 6, 7, 10, 11}));
  Tensor ex = base.select(1, 0).unsqueeze(1).expand({3, 5});
  EXPECT_EQ(ex.strides(), (Strides{4, 0}));
  EXPECT_EQ(ex.to_vector<float>()[5], 4.0f);
  Tensor p = base.view({2, 2, 3}).permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(p.storage(), base.storage());

  // Writing through a view is seen by the base (and bumps the shared version).
  const uint64_t v0 = base.version();
  row.fill_(-1.0);
  EXPECT_EQ(base.to_vector<float>()[5], -1.0f);
  EXPECT_GT(base.version(), v0);
}

TEST(Tensor, ContiguousCopiesOnlyWhenNeeded) {
  Tensor a = uniform({3, 5});
  EXPECT_TRUE(a.contiguous().is_same(a));
  Tensor t = a.t();
  Tensor c = t.contiguous();
  EXPECT_FALSE(c.is_same(t));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage(), a.storage());
  EXPECT_EQ(c.to_vector<float>(), t.to_vector<float>());
}

TEST(Tensor, ViewRejectsIncompatibleStridesReshapeCopies) {
  Tensor a = uniform({4, 6});
  Tensor t = a.t();  // (6, 4) strides (1, 6)
  EXPECT_THROW(t.view({24}), ShapeError);
  Tensor r = t.reshape({24});
  EXPECT_NE(r.storage(), a.storage());
  EXPECT_EQ(r.to_vector<float>(), t.contiguous().to_vector<float>());
  // Merging dims that are contiguous with each other needs no copy, even inside a strided view.
  Tensor s = uniform({3, 4, 5}).narrow(0, 1, 2);  // (2, 4, 5)
  EXPECT_EQ(s.view({2, 20}).storage(), s.storage());
  EXPECT_EQ(a.view({2, -1, 3}).shape(), (Shape{2, 4, 3}));
  EXPECT_THROW(a.view({5, -1}), ShapeError);
}

TEST(Tensor, PrintsLikePyTorch) {
  Tensor a = from_vector<float>({1, -2.5, 3, 4}, {2, 2});
  EXPECT_EQ(fmt::format("{}", a), "tensor([[ 1.0000, -2.5000],\n        [ 3.0000,  4.0000]])");
  EXPECT_EQ(fmt::format("{}", arange(3)), "tensor([0, 1, 2], dtype=int64)");
  Tensor big = zeros({100, 100});
  std::string s = fmt::format("{}", big);
  EXPECT_NE(s.find("..."), std::string::npos);
  EXPECT_NE(s.find("shape=[100, 100]"), std::string::npos);
  EXPECT_LT(s.size(), 600u);
}

// A long tensor prints as PyTorch 1.13 summarizes it (the engine adds the shape): three entries
// at each end of every long dim, padded to the widest shown (the hidden 123456 does not widen
// the columns), read without touching the rest: 10^12 expanded elements print at once.
TEST(Tensor, PrintsASummaryOfOnlyTheElementsShown) {
  Tensor t = sub(div(arange(1200, {.dtype = DType::Float32}).reshape({30, 40}), full({}, 7.0)), full({}, 80.0));
  EXPECT_EQ(fmt::format("{}", t),
            "tensor([[-80.0000, -79.8571, -79.7143,  ..., -74.7143, -74.5714, -74.4286],\n"
            "        [-74.2857, -74.1429, -74.0000,  ..., -69.0000, -68.8571, -68.7143],\n"
            "        [-68.5714, -68.4286, -68.2857,  ..., -63.2857, -63.1429, -63.0000],\n"
            "        ...,\n"
            "        [ 74.2857,  74.4286,  74.5714,  ...,  79.5714,  79.7143,  79.8571],\n"
            "        [ 80.0000,  80.1429,  80.2857,  ...,  85.2857,  85.4286,  85.5714],\n"
            "        [ 85.7143,  85.8571,  86.0000,  ...,  91.0000,  91.1429,  91.2857]], shape=[30, 40])");
  Tensor v = arange(2002).reshape({2, 1001});
  v.data<int64_t>()[500] = 123456;
  EXPECT_EQ(fmt::format("{}", v),
            "tensor([[   0,    1,    2,  ...,  998,  999, 1000],\n"
            "        [1001, 1002, 1003,  ..., 1999, 2000, 2001]], dtype=int64, shape=[2, 1001])");
  Tensor flags = full({1}, 1.0).to(DType::Bool).expand({1000000, 1000000});
  EXPECT_EQ(fmt::format("{}", flags),
            "tensor([[True, True, True,  ..., True, True, True],\n"
            "        [True, True, True,  ..., True, True, True],\n"
            "        [True, True, True,  ..., True, True, True],\n"
            "        ...,\n"
            "        [True, True, True,  ..., True, True, True],\n"
            "        [True, True, True,  ..., True, True, True],\n"
            "        [True, True, True,  ..., True, True, True]], dtype=bool, shape=[1000000, 1000000])");
}

TEST(Tensor, PrintsInt64ExactlyAtItsLimits) {
  // printed through double: 2^53 + 1 rounded, INT64_MAX overflowed to INT64_MIN
  const int64_t big = (int64_t{1} << 53) + 1;
  Tensor t = from_vector<int64_t>({std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), big}, {3});
  EXPECT_EQ(fmt::format("{}", t),
            "tensor([-9223372036854775808,  9223372036854775807,     9007199254740993], dtype=int64)");
  EXPECT_EQ(fmt::format("{}", t.select(0, 1)), "tensor(9223372036854775807, dtype=int64)");
  EXPECT_EQ(fmt::format("{}", from_vector<float>({0.5f, -1.0f}, {2})), "tensor([ 0.5000, -1.0000])");
}

TEST(Tensor, FromBlobWrapsExternalMemory) {
  std::vector<float> host{1, 2, 3, 4, 5, 6};
  bool released = false;
  {
    Tensor t = from_blob(host.data(), {2, 3}, DType::Float32, kCPU, [&](void*) { released = true; });
    t.mul_(2.0);
  }
  EXPECT_TRUE(released);
  EXPECT_EQ(host, (std::vector<float>{2, 4, 6, 8, 10, 12}));
}

// ---------------------------------------------------------------- random numbers

TEST(Philox, MatchesRandom123KnownAnswers) {
  auto check = [](philox::U32x4 ctr, uint32_t k0, uint32_t k1, std::array<uint32_t, 4> want) {
    philox::U32x4 got = philox::philox4x32_10(ctr, k0, k1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], want[i]) << "word " << i;
  };
  check({{0, 0, 0, 0}}, 0, 0, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  check({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  check({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

// The CPU kernels compute a Philox block once for its four words: element i of a draw at any
// offset (aligned to a block or not, split across threads or not) is still word(offset + i).
TEST(Philox, KernelsDrawWordOffsetPlusIForElementI) {
  auto& be = kernels::backend(kCPU);
  const uint64_t seed = 0x1234567890abcdefull;
  for (uint64_t offset : {0ull, 1ull, 3ull, 4ull, 7ull, 1001ull}) {
    for (int64_t n : {1, 3, 5, 37, 70001}) {  // 70001: split across the OpenMP threads
      Tensor u = empty({n}), m = empty({n});
      be.random_uniform(u, seed, offset, -0.5, 1.5);
      be.dropout_mask(m, seed, offset, 0.3);
      const std::vector<float> uv = u.to_vector<float>(), mv = m.to_vector<float>();
      for (int64_t i = 0; i < n; ++i) {
        const float x = philox::to_unit_float(philox::word(seed, offset + static_cast<uint64_t>(i)));
        ASSERT_EQ(uv[static_cast<size_t>(i)], std::fma(2.0f, x, -0.5f)) << "offset " << offset << " n " << n << " i " << i;
        ASSERT_EQ(mv[static_cast<size_t>(i)], x >= 0.3f ? static_cast<float>(1.0 / 0.7) : 0.0f) << "offset " << offset << " i " << i;
      }
    }
  }
}

TEST(Generator, SameSeedSameNumbersAndDrawsDoNotOverlap) {
  Generator g1(42), g2(42), g3(43);
  std::vector<float> a = uniform({1001}, 0.0, 1.0, g1).to_vector<float>();
  std::vector<float> b = uniform({1001}, 0.0, 1.0, g2).to_vector<float>();
  std::vector<float> c = uniform({1001}, 0.0, 1.0, g3).to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(g1.offset(), 1004u);  // rounded up to a whole Philox block
  std::vector<float> next = uniform({1001}, 0.0, 1.0, g1).to_vector<float>();
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + 10), std::vector<float>(next.begin(), next.begin() + 10));
  // Element i is word (offset + i): a later draw equals the tail of one long draw.
  Generator whole(42);
  std::vector<float> both = uniform({2008}, 0.0, 1.0, whole).to_vector<float>();
  EXPECT_EQ(std::vector<float>(both.begin() + 1004, both.begin() + 2004), std::vector<float>(next.begin(), next.end() - 1));
  // Restoring (seed, offset) continues the stream exactly.
  Generator restored(0);
  restored.set_state(42, 1004);
  EXPECT_EQ(uniform({1001}, 0.0, 1.0, restored).to_vector<float>(), next);
}

TEST(Generator, UniformAndNormalHaveTheirMoments) {
  Generator g(3);
  const int64_t n = 200000;
  std::vector<double> u = uniform({n}, -2.0, 4.0, g, {.dtype = DType::Float64}).to_vector<double>();
  double mean = std::accumulate(u.begin(), u.end(), 0.0) / n;
  EXPECT_NEAR(mean, 1.0, 0.02);
  EXPECT_GE(*std::min_element(u.begin(), u.end()), -2.0);
  EXPECT_LT(*std::max_element(u.begin(), u.end()), 4.0);
  std::vector<double> z = normal({n}, 0.5, 2.0, g, {.dtype = DType::Float64}).to_vector<double>();
  double zm = std::accumulate(z.begin(), z.end(), 0.0) / n, zv = 0;
  for (double x : z) zv += (x - zm) * (x - zm);
  zv /= n;
  EXPECT_NEAR(zm, 0.5, 0.02);
  EXPECT_NEAR(std::sqrt(zv), 2.0, 0.02);
  // Odd counts still pair up words: no element repeats its neighbour.
  std::vector<float> odd = normal({7}, 0.0, 1.0, g).to_vector<float>();
  for (size_t i = 1; i < odd.size(); ++i) EXPECT_NE(odd[i], odd[i - 1]);
}

TEST(Generator, DefaultGeneratorIsReseedable) {
  manual_seed(11);
  std::vector<float> a = normal({50}).to_vector<float>();
  manual_seed(11);
  EXPECT_EQ(normal({50}).to_vector<float>(), a);
}

TEST(Device, ParsesNames) {
  EXPECT_EQ(Device::parse("cpu"), kCPU);
  EXPECT_EQ(Device::parse("cuda"), kCUDA);
  EXPECT_EQ(Device::parse("cuda:1"), Device(DeviceType::CUDA, 1));
  EXPECT_EQ(Device::parse("cuda:1").str(), "cuda:1");
  EXPECT_THROW(Device::parse("gpu"), ValueError);
  EXPECT_THROW(Device::parse("cuda:x"), ValueError);
}

}  // namespace
}  // namespace attn::test
