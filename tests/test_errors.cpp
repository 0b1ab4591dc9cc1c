// Bad inputs raise the expected exception type, with a message that names the shapes, values or
// devices involved.
#include <gtest/gtest.h>

#include "kernels/cpu/packed_gemm.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

template <typename E, typename F>
void expect_error(F&& fn, std::initializer_list<const char*> must_mention) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const char* s : must_mention) EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(Errors, ShapeMismatches) {
  expect_error<ShapeError>([] { add(ones({2, 3}), ones({4})); }, {"add", "[2, 3]", "[4]"});
  expect_error<ShapeError>([] { mul(ones({2, 3, 4}), ones({3, 3, 4})); }, {"mul", "[2, 3, 4]", "[3, 3, 4]"});
  expect_error<ShapeError>([] { matmul(ones({2, 3}), ones({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]"});
  expect_error<ShapeError>([] { bmm(ones({2, 3, 4}), ones({3, 4, 5})); }, {"bmm", "[2, 3, 4]", "[3, 4, 5]"});
  expect_error<ShapeError>([] { linear(ones({7, 3}), ones({5, 4})); }, {"linear", "[7, 3]", "[5, 4]"});
  expect_error<ShapeError>([] { cat({ones({2, 3}), ones({2, 4})}, 0); }, {"cat", "[2, 4]", "[2, 3]"});
  expect_error<ShapeError>([] { split(ones({2, 5}), std::vector<int64_t>{2, 2}, 1); }, {"split", "[2, 5]"});
  expect_error<ShapeError>([] { ones({6}).view({4, -1}); }, {"view", "[4, -1]", "[6]"});
  expect_error<ShapeError>([] { nll_loss(ones({3, 4}), zeros({2}, {.dtype = DType::Int64})); }, {"[2]", "[3, 4]"});
}

TEST(Errors, BroadcastThatCannotHappen) {
  expect_error<ShapeError>([] { ones({3, 1}).expand({3, 4, 2}); }, {"expand", "[3, 1]", "[3, 4, 2]"});
  expect_error<ShapeError>([] { where(ones({2}, {.dtype = DType::Bool}), ones({3}), ones({3})); }, {"where", "[2]", "[3]"});
  expect_error<ShapeError>([] { masked_fill(ones({4, 2}), ones({4, 3}, {.dtype = DType::Bool}), 0.0); },
                           {"masked_fill", "[4, 2]", "[4, 3]"});
  Tensor a = ones({2, 3});
  expect_error<ShapeError>([&] { a.copy_(ones({3, 2})); }, {"copy_", "[2, 3]", "[3, 2]"});
}

TEST(Errors, IndexOutOfRange) {
  Tensor w = ones({10, 4});
  expect_error<IndexError>([&] { embedding(w, from_vector<int64_t>({1, 12, 3})); }, {"embedding", "12", "10 rows", "position 1"});
  expect_error<IndexError>([&] { embedding(w, from_vector<int64_t>({-1})); }, {"-1"});
  expect_error<IndexError>([] { nll_loss(zeros({2, 3}), from_vector<int64_t>({0, 3})); }, {"target 3", "3 classes"});
  expect_error<IndexError>([] { ones({2, 3}).select(1, 3); }, {"select", "3", "[2, 3]"});
  expect_error<IndexError>([] { ones({2, 3}).narrow(1, 2, 2); }, {"narrow", "[2, 3]"});
  expect_error<IndexError>([] { softmax(ones({2, 3}), 2); }, {"dim 2", "rank 2"});
}

TEST(Errors, DeviceMismatch) {
  // A tensor labelled as living on a GPU (its memory is never touched): the dispatch point must
  // refuse to mix it with a CPU tensor before any kernel runs.
  std::vector<float> host(6, 1.0f);
  Tensor fake_gpu = from_blob(host.data(), {2, 3}, DType::Float32, kCUDA);
  expect_error<DeviceError>([&] { add(ones({2, 3}), fake_gpu); }, {"add", "cpu", "cuda"});
  expect_error<DeviceError>([&] { matmul(ones({3, 2}), fake_gpu); }, {"cpu", "cuda"});
  expect_error<DeviceError>([&] { cat({ones({2, 3}), fake_gpu}, 0); }, {"cat", "cuda"});
  std::string why;
  if (!gpu_available(&why)) {
    expect_error<DeviceError>([] { ones({2}).to(kCUDA); }, {"cuda"});
  }
}

TEST(Errors, DtypeMismatches) {
  expect_error<DTypeError>([] { add(ones({2}), ones({2}, {.dtype = DType::Float64})); }, {"add", "float32", "float64"});
  expect_error<DTypeError>([] { softmax(arange(4), 0); }, {"softmax", "int64"});
  expect_error<DTypeError>([] { masked_fill(ones({2}), ones({2}), 0.0); }, {"mask", "float32"});
  expect_error<DTypeError>([] { embedding(ones({3, 2}), ones({2})); }, {"indices", "int64", "float32"});
  expect_error<DTypeError>([] { exp(arange(3)); }, {"exp", "int64"});
}

TEST(Errors, BadArguments) {
  expect_error<ValueError>([] { dropout(ones({3}), 1.5, true); }, {"dropout", "1.5"});
  expect_error<ValueError>([] { ones({2, 3}).permute({0, 0}); }, {"permute", "repeated"});
  expect_error<ShapeError>([] { empty({2, -3}); }, {"[2, -3]"});
  expect_error<ValueError>([] { sum(ones({2, 3}), {1, -1}); }, {"sum", "twice"});
}

TEST(Errors, PreparedLinearRefusesAWeightChangedInPlaceAndMismatchedShapes) {
  Generator g(94);
  Tensor w = uniform({6, 4}, -1.0, 1.0, g);
  const PreparedLinear layer = prepare_linear(w, uniform({6}, -1.0, 1.0, g));
  const Tensor x = uniform({2, 4}, -1.0, 1.0, g);
  EXPECT_NO_THROW(linear(x, layer));
  expect_error<ShapeError>([&] { linear(uniform({2, 5}, -1.0, 1.0, g), layer); }, {"linear", "[2, 5]", "[6, 4]"});
  expect_error<ShapeError>([&] { prepare_linear(w, uniform({5}, -1.0, 1.0, g)); }, {"prepare_linear", "[5]", "[6, 4]"});
  w.mul_(2.0);  // the packed copy would be stale
  ASSERT_EQ(layer.packed != nullptr, cpu::kPackedGemmUsed);
  if (layer.packed) {
    expect_error<ValueError>([&] { linear(x, layer); }, {"linear", "changed in place after prepare_linear"});
  } else {
    EXPECT_NO_THROW(linear(x, layer));  // a build without FMA packs nothing: nothing is stale
  }
}

}  // namespace
}  // namespace attn::test
