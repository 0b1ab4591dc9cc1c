// Checkpoint IO: atomic whole-file writes and the safetensors format — round trips of random
// tensors, the byte layout parsed by hand, and every kind of malformed file (each one an IOError
// naming the file, never a crash or garbage).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "core/io/atomic_file.h"
#include "core/io/safetensors.h"
#include "core/random.h"
#include "tests/data_test_util.h"

namespace attn::test {
namespace {

using json = nlohmann::json;
using Named = std::vector<std::pair<std::string, Tensor>>;

int count_files(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.exists();
  return n;
}

// ---------------------------------------------------------------- atomic files

TEST(DataAtomicFile, WriteReadOverwrite) {
  ATTN_RANDOM_SEED(seed);
  std::mt19937_64 rng(seed);
  TempDir dir;
  const std::string path = dir.file("blob.bin");
  for (int round = 0; round < 3; ++round) {
    std::string bytes(static_cast<size_t>(rng() % 200000), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    io::write_file_atomic(path, bytes);
    EXPECT_EQ(io::read_file(path), bytes);
    EXPECT_EQ(count_files(dir.path()), 1);  // no temporary file left
  }
  io::write_file_atomic(path, "");
  EXPECT_EQ(io::read_file(path), "");
}

TEST(DataAtomicFile, FailuresNameThePathAndLeaveNoTemporaryFile) {
  TempDir dir;
  const std::string in_missing_dir = dir.file("no/such/dir/file.bin");
  expect_throw_with<IOError>([&] { io::write_file_atomic(in_missing_dir, "x"); },
                             {in_missing_dir, "No such file or directory"});
  // Renaming over a non-empty directory fails after the data was written: the temp must go.
  std::filesystem::create_directories(dir.path() / "occupied" / "child");
  const std::string occupied = dir.file("occupied");
  expect_throw_with<IOError>([&] { io::write_file_atomic(occupied, "payload"); }, {occupied, "rename"});
  EXPECT_EQ(count_files(dir.path()), 1);  // only the directory itself
  expect_throw_with<IOError>([&] { io::read_file(dir.file("missing.bin")); }, {dir.file("missing.bin"), "No such file"});
  expect_throw_with<IOError>([&] { io::read_file(occupied); }, {occupied, "directory"});
}

// ---------------------------------------------------------------- safetensors

Tensor random_tensor(DType dt, const Shape& shape, Generator& gen, std::mt19937_64& rng) {
  // Nothing to draw; uniform() refuses zero-size outputs (Tensor::is_contiguous() is false for
  // them, unlike PyTorch), so create those directly.
  if (numel_of(shape) == 0) return empty(shape, {.dtype = dt});
  switch (dt) {
    case DType::Float32: return uniform(shape, -3.0, 3.0, gen);
    case DType::Float64: return uniform(shape, -1e6, 1e6, gen, {.dtype = DType::Float64});
    case DType::Int64: {
      std::vector<int64_t> v(static_cast<size_t>(numel_of(shape)));
      for (auto& x : v) x = static_cast<int64_t>(rng());  // full 64-bit range, negatives included
      return from_vector<int64_t>(v, shape);
    }
    case DType::Bool: {
      std::vector<bool> v(static_cast<size_t>(numel_of(shape)));
      for (size_t i = 0; i < v.size(); ++i) v[i] = rng() % 2;
      return from_vector<bool>(v, shape);
    }
    default: throw std::logic_error("dtype");
  }
}

void expect_same_tensor(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  const size_t bytes = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  if (bytes) {
    EXPECT_EQ(std::memcmp(ca.raw_data(), cb.raw_data(), bytes), 0) << name;
  }
}

TEST(Safetensors, RoundTripOfRandomTensorsOfEveryDtypeAndShape) {
  ATTN_RANDOM_SEED(seed);
  std::mt19937_64 rng(seed);
  Generator gen(seed);
  const std::vector<Shape> shapes = {Shape{}, Shape{0}, Shape{1}, Shape{7}, Shape{3, 0, 2}, Shape{2, 3}, Shape{4, 5, 6},
                                     Shape{2, 1, 3, 1, 2}};
  Named tensors;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Bool})
    for (const Shape& s : shapes) tensors.emplace_back(fmt::format("{}.{}", dtype_name(dt), s), random_tensor(dt, s, gen, rng));
  // Non-contiguous inputs are written contiguous.
  tensors.emplace_back("z.transposed", uniform({5, 3}, -1, 1, gen).t());
  tensors.emplace_back("a.narrowed", random_tensor(DType::Int64, {6, 4}, gen, rng).narrow(1, 1, 2));
  std::shuffle(tensors.begin(), tensors.end(), rng);  // any order: the file keeps it
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", std::to_string(rng() % 100000)},
                                                   {"note", "grüß „dich“"}};
  TempDir dir;
  io::save_safetensors(dir.file("m.safetensors"), tensors, meta);
  EXPECT_EQ(count_files(dir.path()), 1);
  const io::SafetensorsFile f = io::load_safetensors(dir.file("m.safetensors"));
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  // Same order except that empty tensors sharing an offset come by name; compare by name.
  for (const auto& [name, t] : tensors) expect_same_tensor(f.at(name), t, name);
  std::vector<std::string> nonempty_saved, nonempty_loaded;
  for (const auto& [n, t] : tensors) if (t.numel()) nonempty_saved.push_back(n);
  for (const auto& [n, t] : f.tensors) if (t.numel()) nonempty_loaded.push_back(n);
  EXPECT_EQ(nonempty_loaded, nonempty_saved);
  expect_throw_with<IOError>([&] { f.at("nope"); }, {"nope"});
}

TEST(Safetensors, AMissingTensorNamesTheFile) {
  TempDir dir;
  const std::string path = dir.file("opt.safetensors");
  io::save_safetensors(path, {{"0.exp_avg", zeros({2})}, {"0.step", zeros({}, {.dtype = DType::Int64})}});
  const io::SafetensorsFile f = io::load_safetensors(path);
  expect_throw_with<IOError>([&] { f.at("1.exp_avg"); }, {path, "'1.exp_avg'", "0.exp_avg, 0.step"});
  const io::SafetensorsFile empty = io::parse_safetensors(io::serialize_safetensors({}), "bytes from the network");
  expect_throw_with<IOError>([&] { empty.at("w"); }, {"bytes from the network", "'w'", "no tensors"});
}

TEST(Safetensors, HeaderLayoutParsedByHand) {
  ATTN_RANDOM_SEED(seed);
  Generator gen(seed);
  const Tensor w = uniform({3, 5}, -1, 1, gen);
  const Tensor ids = from_vector<int64_t>({-4, 9, 1LL << 40});
  const Tensor flag = from_vector<bool>({true, false});
  TempDir dir;
  io::save_safetensors(dir.file("h.safetensors"), {{"weight", w}, {"ids", ids}, {"flag", flag}}, {{"k", "v"}});
  const std::string bytes = io::read_file(dir.file("h.safetensors"));
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[static_cast<size_t>(i)])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);  // data aligned to 8 bytes
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padding is spaces after the JSON
  const json j = json::parse(header);
  EXPECT_EQ(j["__metadata__"], (json{{"k", "v"}}));
  EXPECT_EQ(j["weight"]["dtype"], "F32");
  EXPECT_EQ(j["weight"]["shape"], (json{3, 5}));
  EXPECT_EQ(j["weight"]["data_offsets"], (json{0, 60}));
  EXPECT_EQ(j["ids"]["dtype"], "I64");
  EXPECT_EQ(j["ids"]["data_offsets"], (json{60, 84}));
  EXPECT_EQ(j["flag"]["dtype"], "BOOL");
  EXPECT_EQ(j["flag"]["data_offsets"], (json{84, 86}));
  ASSERT_EQ(bytes.size(), 8 + n + 86);
  const char* data = bytes.data() + 8 + n;
  const auto wv = w.to_vector<float>();
  EXPECT_EQ(std::memcmp(data, wv.data(), 60), 0);
  int64_t third;
  std::memcpy(&third, data + 60 + 16, 8);
  EXPECT_EQ(third, 1LL << 40);
  EXPECT_EQ(static_cast<unsigned char>(data[84]), 1);
  EXPECT_EQ(static_cast<unsigned char>(data[85]), 0);
  // Little-endian on disk: the least significant byte of -4 comes first.
  EXPECT_EQ(static_cast<unsigned char>(data[60]), 0xFC);
  EXPECT_EQ(static_cast<unsigned char>(data[67]), 0xFF);
}

TEST(Safetensors, EveryTruncationIsAnIOError) {
  ATTN_RANDOM_SEED(seed);
  std::mt19937_64 rng(seed);
  Generator gen(seed);
  Named t = {{"a", uniform({4, 3}, -1, 1, gen)}, {"b", random_tensor(DType::Int64, {5}, gen, rng)},
             {"c", random_tensor(DType::Bool, {3}, gen, rng)}, {"d", uniform({2}, -1, 1, gen, {.dtype = DType::Float64})}};
  TempDir dir;
  const std::string good = io::serialize_safetensors(t, {{"epoch", "3"}});
  const std::string path = dir.file("t.safetensors");
  for (size_t cut = 0; cut < good.size(); ++cut) {
    SCOPED_TRACE(cut);
    write_bytes(path, good.substr(0, cut));
    try {
      io::load_safetensors(path);
      ADD_FAILURE() << "a file truncated to " << cut << " of " << good.size() << " bytes loaded";
    } catch (const IOError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  write_bytes(path, good);
  EXPECT_NO_THROW(io::load_safetensors(path));
}

// A file from a header text and a data section, for crafting malformed inputs.
std::string craft(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + data;
}

TEST(Safetensors, MalformedFilesSayWhatIsWrong) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  auto expect_bad = [&](const std::string& bytes, std::initializer_list<std::string> parts) {
    write_bytes(path, bytes);
    std::vector<std::string> all = {path};
    all.insert(all.end(), parts.begin(), parts.end());
    try {
      io::load_safetensors(path);
      ADD_FAILURE() << "loaded: " << *parts.begin();
    } catch (const IOError& e) {
      for (const auto& p : all) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << p << " not in " << e.what();
    }
  };
  const std::string d12(12, '\x01');
  expect_bad("abc", {"only 3 bytes"});
  expect_bad(craft("{}", "").substr(0, 9), {"header length 2 exceeds the 1 bytes"});
  {
    std::string big = craft("{}", "");
    big[0] = '\x10';  // header length 16 > 2
    expect_bad(big, {"header length 16 exceeds"});
  }
  expect_bad(craft("[1, 2]", ""), {"does not start with '{'"});
  expect_bad(craft("{\"a\": {\"dtype\": \"F32\",", ""), {"not valid JSON"});
  expect_bad(craft("{\"a\": 5}", ""), {"tensor 'a'", "not an object"});
  expect_bad(craft(R"({"a": {"shape": [3], "data_offsets": [0, 12]}})", d12), {"tensor 'a'", "missing field 'dtype'"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "data_offsets": [0, 12]}})", d12), {"missing field 'shape'"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [3]}})", d12), {"missing field 'data_offsets'"});
  expect_bad(craft(R"({"a": {"dtype": "F16", "shape": [6], "data_offsets": [0, 12]}})", d12), {"unsupported dtype 'F16'"});
  expect_bad(craft(R"({"a": {"dtype": 4, "shape": [3], "data_offsets": [0, 12]}})", d12), {"'dtype' is not a string"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [-3], "data_offsets": [0, 12]}})", d12), {"non-negative integer"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 12]}})", d12), {"non-negative integer"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": 3, "data_offsets": [0, 12]}})", d12), {"'shape' is not an array"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", d12),
             {"hold 12 bytes", "need 16"});
  expect_bad(craft(R"({"a": {"dtype": "F64", "shape": [3], "data_offsets": [0, 12]}})", d12), {"need 24"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0]}})", d12), {"two non-negative integers"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [12, 0]}})", d12), {"end before they begin"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]}})", d12),
             {"extend past the 12 bytes"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", d12),
             {"tensor 'b'", "overlap"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                       "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", d12),
             {"tensor 'b'", "gap of 4 bytes"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", d12), {"4 bytes of data after"});
  expect_bad(craft(R"({"a": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}})", std::string("\x01\x00\x02", 3)),
             {"tensor 'a'", "BOOL element 2", "byte value 2"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                       "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", std::string(8, '\0')),
             {"key 'a' twice"});
  // inside a tensor's entry too, after a nested object that closed
  expect_bad(craft(R"({"m": {"x": {}}, "a": {"dtype": "F32", "shape": [1], "dtype": "F64", "data_offsets": [0, 4]}})", std::string(4, '\0')),
             {"key 'dtype' twice"});
  expect_bad(craft(R"({"__metadata__": {"k": 1}})", ""), {"metadata 'k' is not a string"});
  expect_bad(craft(R"({"__metadata__": [1]})", ""), {"'__metadata__' is not an object"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})", d12),
             {"too large"});
  // the same with a 0 among the dims: empty() overflowed multiplying them (an OutOfMemoryError
  // without the file's name)
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 0], "data_offsets": [0, 0]}})", ""),
             {"tensor 'a'", "too large"});
  // ... while an empty tensor whose other dims multiply within int64 is valid (as in Python)
  for (const char* shape : {"[72057594037927936, 2, 0]", "[0, 4294967296, 4294967296]", "[1099511627776, 1048576, 0]"}) {
    write_bytes(path, craft(std::string(R"({"a": {"dtype": "F32", "shape": )") + shape + R"(, "data_offsets": [0, 0]}})", ""));
    const auto loaded = io::load_safetensors(path);
    ASSERT_EQ(loaded.tensors.size(), 1u) << shape;
    EXPECT_EQ(loaded.tensors[0].second.numel(), 0) << shape;
  }
  // the JSON parser stopped at a NUL: what followed was never read (Python's loader refuses it)
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})" + std::string("\0 not JSON {{{", 14), d12),
             {"NUL byte at byte 63"});
  // Values nested 200000 deep (a 400 KB header) or megabytes long: a clear error, not a stack
  // overflow in the error message's JSON dump or a message carrying the whole value.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": )" + deep + R"(, "data_offsets": [0, 12]}})", d12),
             {"tensor 'a'", "shape (an array of 1 items, not all numbers)"});
  expect_bad(craft(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": )" + deep + "}}", d12),
             {"tensor 'a'", "found (an array of 1 items"});
  expect_bad(craft(R"({"a": {"dtype": ")" + std::string(1 << 20, 'x') + R"(", "shape": [3], "data_offsets": [0, 12]}})", d12),
             {"unsupported dtype (a JSON string)"});
  // A hand-made valid file loads, with extra spaces after the JSON.
  write_bytes(path, craft(R"({"a": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}   )",
                          std::string("\x2A\0\0\0\0\0\0\0", 8)));
  const auto ok = io::load_safetensors(path);
  ASSERT_EQ(ok.tensors.size(), 1u);
  EXPECT_EQ(ok.tensors[0].second.dim(), 0);
  EXPECT_EQ(ok.tensors[0].second.item<int64_t>(), 42);
  expect_throw_with<IOError>([&] { io::load_safetensors(dir.file("absent.safetensors")); }, {"absent.safetensors"});
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  ATTN_RANDOM_SEED(seed);
  std::mt19937_64 rng(seed);
  Generator gen(seed);
  const std::string good = io::serialize_safetensors(
      {{"w", uniform({3, 4}, -1, 1, gen)}, {"n", random_tensor(DType::Int64, {2}, gen, rng)},
       {"m", random_tensor(DType::Bool, {5}, gen, rng)}},
      {{"a", "b"}});
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    for (int k = 0, flips = 1 + static_cast<int>(rng() % 3); k < flips; ++k) {
      // Mostly in the length and the header, where the structure lives.
      const size_t at = rng() % 4 ? rng() % std::min<size_t>(bad.size(), 120) : rng() % bad.size();
      bad[at] = static_cast<char>(rng());
    }
    try {
      const auto f = io::parse_safetensors(bad, "fuzz");
      ++loaded;  // a flip in the data or in padding can still be a valid file
      for (const auto& [n, t] : f.tensors) (void)t.numel();
    } catch (const IOError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(loaded + rejected, 2999);
}

TEST(Safetensors, SaveRejectsBadNamesAndDtypes) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  const Tensor t = ones({2});
  expect_throw_with<ValueError>([&] { io::save_safetensors(path, {{"a", t}, {"a", t}}); }, {"'a' appears twice"});
  expect_throw_with<ValueError>([&] { io::save_safetensors(path, {{"", t}}); }, {"empty name"});
  expect_throw_with<ValueError>([&] { io::save_safetensors(path, {{"__metadata__", t}}); }, {"reserved"});
  expect_throw_with<ValueError>([&] { io::save_safetensors(path, {{"u", Tensor()}}); }, {"'u' is undefined"});
  expect_throw_with<ValueError>([&] { io::save_safetensors(path, {{"bad\xC0name", t}}); }, {"UTF-8"});
  EXPECT_FALSE(std::filesystem::exists(path));
  // Overwriting an existing checkpoint replaces it completely.
  io::save_safetensors(path, {{"a", full({3}, 1.5)}});
  io::save_safetensors(path, {{"b", full({1}, 2.5)}});
  const auto f = io::load_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].first, "b");
  EXPECT_EQ(f.tensors[0].second.item<float>(), 2.5f);
}

}  // namespace
}  // namespace attn::test
