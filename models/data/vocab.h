// Token <-> id maps with four specials at fixed ids: <pad>=0, <s>=1, </s>=2, <unk>=3.
//
// File format (save / load): UTF-8 text, LF line endings. Line 1 is the header
// `#attn-vocab 1 <size>`; then `size` lines, line k+2 holding the token of id k (the specials
// first). The header's size is what makes a truncated file detectable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attn::data {

class Vocab {
 public:
  static constexpr int64_t kPad = 0, kBos = 1, kEos = 2, kUnk = 3;
  static constexpr int64_t kNumSpecials = 4;
  static const std::string& special_token(int64_t id);  // "<pad>", "<s>", "</s>", "<unk>"

  Vocab();  // the specials only

  // Tokens seen at least `min_freq` times (>= 1), most frequent first, ties broken by first
  // appearance (so the result depends only on the input). `max_size` counts the specials and
  // must be >= 4; 0 means no limit. Tokens spelled like a special are not counted. An empty
  // token or one with a line break or a tab is a ValueError (the file format could not hold it).
  static Vocab build(const std::vector<std::vector<std::string>>& sentences, int64_t min_freq,
                     int64_t max_size);

  int64_t id(std::string_view token) const;        // kUnk when unknown
  const std::string& token(int64_t id) const;      // IndexError when out of range
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  bool contains(std::string_view token) const;

  // `unknown_count`, when given, is incremented by the number of tokens that became <unk>.
  std::vector<int64_t> encode(const std::vector<std::string>& tokens, bool add_bos, bool add_eos,
                              int64_t* unknown_count = nullptr) const;
  // Stops at the first </s>. With strip_specials, <pad> and <s> are dropped (<unk> is kept as
  // "<unk>": it stands for a word); without it every token up to and including </s> is kept.
  std::vector<std::string> decode(const std::vector<int64_t>& ids, bool strip_specials = true) const;

  void save(const std::string& path) const;  // atomically (temporary file + rename)
  static Vocab load(const std::string& path);  // IOError naming the file and the problem

  bool operator==(const Vocab& other) const { return tokens_ == other.tokens_; }

 private:
  void add(std::string token);

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace attn::data
