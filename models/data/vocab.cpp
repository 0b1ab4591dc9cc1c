#include "models/data/vocab.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "models/data/unicode.h"

namespace attn::data {

namespace {

const std::array<std::string, 4>& specials() {
  static const std::array<std::string, 4> s = {"<pad>", "<s>", "</s>", "<unk>"};
  return s;
}

constexpr std::string_view kHeader = "#attn-vocab 1 ";

bool storable(std::string_view t) {
  return !t.empty() && t.find_first_of("\n\r\t") == std::string_view::npos;
}

}  // namespace

const std::string& Vocab::special_token(int64_t id) {
  ATTN_CHECK(id >= 0 && id < kNumSpecials, IndexError, "special_token: id {} is not a special (0..3)", id);
  return specials()[static_cast<size_t>(id)];
}

Vocab::Vocab() {
  for (const std::string& s : specials()) add(s);
}

void Vocab::add(std::string token) {
  ids_.emplace(token, size());
  tokens_.push_back(std::move(token));
}

Vocab Vocab::build(const std::vector<std::vector<std::string>>& sentences, int64_t min_freq, int64_t max_size) {
  ATTN_CHECK(min_freq >= 1, ValueError, "Vocab::build: min_freq must be >= 1, got {}", min_freq);
  ATTN_CHECK(max_size == 0 || max_size >= kNumSpecials, ValueError,
             "Vocab::build: max_size must be 0 (no limit) or >= {} (it counts the specials), got {}", kNumSpecials,
             max_size);
  struct Count {
    int64_t freq = 0;
    int64_t first = 0;
  };
  std::unordered_map<std::string_view, Count> counts;
  std::vector<std::string_view> order;  // first appearance
  for (const auto& sentence : sentences) {
    for (const std::string& tok : sentence) {
      ATTN_CHECK(storable(tok), ValueError, "Vocab::build: token '{}' is empty or holds a line break or tab", tok);
      auto [it, inserted] = counts.try_emplace(tok, Count{0, static_cast<int64_t>(order.size())});
      if (inserted) order.push_back(tok);
      ++it->second.freq;
    }
  }
  std::vector<std::string_view> kept;
  for (std::string_view t : order) {
    if (counts[t].freq < min_freq) continue;
    if (std::find(specials().begin(), specials().end(), t) != specials().end()) continue;
    kept.push_back(t);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [&](std::string_view a, std::string_view b) { return counts[a].freq > counts[b].freq; });
  if (max_size > 0 && static_cast<int64_t>(kept.size()) > max_size - kNumSpecials)
    kept.resize(static_cast<size_t>(max_size - kNumSpecials));
  Vocab v;
  for (std::string_view t : kept) v.add(std::string(t));
  return v;
}

int64_t Vocab::id(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  return it == ids_.end() ? kUnk : it->second;
}

bool Vocab::contains(std::string_view token) const { return ids_.count(std::string(token)) != 0; }

const std::string& Vocab::token(int64_t id) const {
  ATTN_CHECK(id >= 0 && id < size(), IndexError, "Vocab::token: id {} out of range for a vocabulary of {}", id,
             size());
  return tokens_[static_cast<size_t>(id)];
}

std::vector<int64_t> Vocab::encode(const std::vector<std::string>& tokens, bool add_bos, bool add_eos,
                                   int64_t* unknown_count) const {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size() + 2);
  if (add_bos) ids.push_back(kBos);
  for (const std::string& t : tokens) {
    const int64_t i = id(t);
    if (i == kUnk && unknown_count) ++*unknown_count;
    ids.push_back(i);
  }
  if (add_eos) ids.push_back(kEos);
  return ids;
}

std::vector<std::string> Vocab::decode(const std::vector<int64_t>& ids, bool strip_specials) const {
  std::vector<std::string> out;
  for (int64_t i : ids) {
    const std::string& t = token(i);
    if (i == kEos) {
      if (!strip_specials) out.push_back(t);
      break;
    }
    if (strip_specials && (i == kPad || i == kBos)) continue;
    out.push_back(t);
  }
  return out;
}

void Vocab::save(const std::string& path) const {
  std::string text = fmt::format("{}{}\n", kHeader, size());
  for (const std::string& t : tokens_) {
    text += t;
    text += '\n';
  }
  io::write_file_atomic(path, text);
}

Vocab Vocab::load(const std::string& path) {
  const std::string bytes = io::read_file(path);
  auto bad = [&](int64_t line, const std::string& what) {
    return IOError(line > 0 ? fmt::format("vocabulary '{}', line {}: {}", path, line, what)
                            : fmt::format("vocabulary '{}': {}", path, what));
  };
  if (bytes.empty()) throw bad(0, "the file is empty");
  if (auto p = check_utf8(bytes)) throw bad(0, fmt::format("invalid UTF-8 at byte {}: {}", p->offset + 1, p->what));

  std::vector<std::string_view> lines;
  std::string_view rest(bytes);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      lines.push_back(rest);
      throw bad(static_cast<int64_t>(lines.size()), "truncated: the last line has no line ending");
    }
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  const std::string_view header = lines[0];
  int64_t declared = -1;
  if (header.substr(0, kHeader.size()) == kHeader) {
    const std::string_view num = header.substr(kHeader.size());
    auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), declared);
    if (ec != std::errc() || ptr != num.data() + num.size()) declared = -1;
  }
  if (declared < 0)
    throw bad(1, fmt::format("not an attn vocabulary (expected the header '{}<size>', found '{}')", kHeader,
                             std::string(header.substr(0, 60))));
  const int64_t found = static_cast<int64_t>(lines.size()) - 1;
  if (found < declared)
    throw bad(0, fmt::format("truncated: the header says {} tokens, the file holds {}", declared, found));
  if (found > declared)
    throw bad(0, fmt::format("the header says {} tokens but the file holds {}", declared, found));
  if (declared < kNumSpecials)
    throw bad(1, fmt::format("{} tokens, fewer than the {} specials", declared, kNumSpecials));

  Vocab v;
  v.tokens_.clear();
  v.ids_.clear();
  for (int64_t id = 0; id < declared; ++id) {
    const std::string_view t = lines[static_cast<size_t>(id) + 1];
    const int64_t line = id + 2;
    if (id < kNumSpecials && t != specials()[static_cast<size_t>(id)])
      throw bad(line, fmt::format("id {} must be the special '{}', found '{}'", id, specials()[static_cast<size_t>(id)],
                                  std::string(t)));
    if (!storable(t)) throw bad(line, "empty token, or a token with a carriage return or tab");
    if (v.ids_.count(std::string(t))) throw bad(line, fmt::format("duplicate token '{}'", std::string(t)));
    v.add(std::string(t));
  }
  return v;
}

}  // namespace attn::data
