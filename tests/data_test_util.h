// Helpers for the data / eval / io tests: a temporary folder per test, a fresh random seed that
// is printed when a test fails, and the path of the shared Tatoeba data.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/error.h"

namespace attn::test {

// A fresh folder under the system temp dir, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "attn-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string operator/(const std::string& name) const { return file(name); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// A seed from the OS, reported by gtest when an assertion in the scope fails.
inline uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}
#define ATTN_RANDOM_SEED(var)          \
  const uint64_t var = ::attn::test::fresh_seed(); \
  SCOPED_TRACE(::testing::Message() << "random seed " << var)

inline std::string tatoeba_dir() { return std::string(ATTN_SOURCE_DIR) + "/../shared/data/tatoeba-en-de"; }
inline bool have_tatoeba() { return std::filesystem::exists(tatoeba_dir() + "/train.tsv"); }
#define ATTN_REQUIRE_TATOEBA()                                                                       \
  if (!::attn::test::have_tatoeba())                                                                 \
  GTEST_SKIP() << "the Tatoeba data is absent (" << ::attn::test::tatoeba_dir() << "/train.tsv); " \
               << "it lives outside the project, in ../shared/data"

// Runs fn, expects an exception of type E whose message contains every string of `parts`.
template <typename E, typename F>
void expect_throw_with(F&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace attn::test
