#include "models/eval/bleu.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "core/error.h"
#include "models/data/unicode.h"

namespace attn::eval {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (;;) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// mteval's first rule: these ASCII characters become " c ": { | } ~ [ \ ] ^ _ ` space ! " # $ %
// & ( ) * + : ; < = > ? @ /  (not - . , ' or alphanumerics).
bool is_13a_symbol(unsigned char c) {
  return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
         (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == '/';
}

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_period_comma(unsigned char c) { return c == '.' || c == ','; }

// One pass of a two-character regex substitution, left to right without overlaps (what
// Python's re.sub does for a pattern that always matches exactly two characters). Working on
// UTF-8 bytes gives the same result as on code points here: every class that can match a
// non-ASCII character is a negated ASCII class, and its partner is ASCII (see tokenize_13a).
template <typename First, typename Second, typename Emit>
std::string sub2(const std::string& s, First first, Second second, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    const auto a = static_cast<unsigned char>(s[i]);
    if (i + 1 < s.size()) {
      const auto b = static_cast<unsigned char>(s[i + 1]);
      if (first(a) && second(b)) {
        emit(out, s[i], s[i + 1]);
        i += 2;
        continue;
      }
    }
    out += s[i];
    ++i;
  }
  return out;
}

// Python's str.split() / str.rstrip() whitespace, on UTF-8.
std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0, start = std::string_view::npos;
  while (i < s.size()) {
    const size_t at = i;
    const char32_t cp = data::next_code_point(s, i);
    if (data::is_space(cp)) {
      if (start != std::string_view::npos) out.push_back(s.substr(start, at - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = at;
    }
  }
  if (start != std::string_view::npos) out.push_back(s.substr(start));
  return out;
}

std::string_view rstrip_ws(std::string_view s) {
  size_t end = 0, i = 0;
  while (i < s.size()) {
    const char32_t cp = data::next_code_point(s, i);
    if (!data::is_space(cp)) end = i;
  }
  return s.substr(0, end);
}

// Token ids shared by the whole corpus, so an n-gram is a short string of 4-byte ids.
class Interner {
 public:
  uint32_t id(std::string_view tok) {
    auto [it, inserted] = ids_.try_emplace(std::string(tok), static_cast<uint32_t>(ids_.size()));
    return it->second;
  }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
};

using NgramCounts = std::unordered_map<std::string, int64_t>;

// n-grams of orders 1..max_order, keyed by their ids' bytes (the key length gives the order).
NgramCounts count_ngrams(const std::vector<uint32_t>& ids, int max_order) {
  NgramCounts counts;
  const size_t len = ids.size();
  for (int n = 1; n <= max_order; ++n) {
    for (size_t i = 0; i + static_cast<size_t>(n) <= len; ++i) {
      std::string key(reinterpret_cast<const char*>(ids.data() + i), sizeof(uint32_t) * static_cast<size_t>(n));
      ++counts[key];
    }
  }
  return counts;
}

std::vector<uint32_t> segment_ids(const std::string& raw, bool lowercase, Interner& interner) {
  const std::string cased = lowercase ? data::lowercase(raw) : raw;
  const std::string tok = tokenize_13a(rstrip_ws(cased));
  std::vector<uint32_t> ids;
  for (std::string_view t : split_ws(tok)) ids.push_back(interner.id(t));
  return ids;
}

double my_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

}  // namespace

std::string tokenize_13a(std::string_view input) {
  std::string line(input);
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  std::string s;
  s.reserve(line.size() * 2 + 2);
  s += ' ';
  for (char c : line) {
    if (is_13a_symbol(static_cast<unsigned char>(c))) {
      s += ' ';
      s += c;
      s += ' ';
    } else {
      s += c;
    }
  }
  s += ' ';
  // Period and comma unless preceded by a digit:  ([^0-9])([\.,]) -> "\1 \2 "
  s = sub2(
      s, [](unsigned char a) { return !is_digit(a); }, is_period_comma,
      [](std::string& o, char a, char b) {
        o += a;
        o += ' ';
        o += b;
        o += ' ';
      });
  // Period and comma unless followed by a digit:  ([\.,])([^0-9]) -> " \1 \2"
  s = sub2(
      s, is_period_comma, [](unsigned char b) { return !is_digit(b); },
      [](std::string& o, char a, char b) {
        o += ' ';
        o += a;
        o += ' ';
        o += b;
      });
  // Dash after a digit:  ([0-9])(-) -> "\1 \2 "
  s = sub2(
      s, is_digit, [](unsigned char b) { return b == '-'; },
      [](std::string& o, char a, char b) {
        o += a;
        o += ' ';
        o += b;
        o += ' ';
      });
  std::string out;
  out.reserve(s.size());
  for (std::string_view t : split_ws(s)) {
    if (!out.empty()) out += ' ';
    out.append(t);
  }
  return out;
}

BleuResult corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                       const BleuOptions& opt) {
  ATTN_CHECK(hyps.size() == refs.size(), ValueError, "corpus_bleu: {} hypotheses but {} reference lists", hyps.size(),
             refs.size());
  ATTN_CHECK(opt.max_order >= 1 && opt.max_order <= 4, ValueError, "corpus_bleu: max_order must be 1..4, got {}",
             opt.max_order);
  const int max_order = opt.max_order;
  Interner interner;
  int64_t correct[4] = {}, total[4] = {};
  int64_t sys_len = 0, ref_len = 0;
  size_t nrefs_first = refs.empty() ? 0 : refs[0].size();
  bool nrefs_vary = false;
  for (size_t i = 0; i < hyps.size(); ++i) {
    ATTN_CHECK(!refs[i].empty(), ValueError, "corpus_bleu: hypothesis {} has no reference", i);
    if (refs[i].size() != nrefs_first) nrefs_vary = true;
    NgramCounts ref_max;
    std::vector<int64_t> ref_lens;
    for (const std::string& r : refs[i]) {
      const auto ids = segment_ids(r, opt.lowercase, interner);
      ref_lens.push_back(static_cast<int64_t>(ids.size()));
      for (const auto& [key, count] : count_ngrams(ids, max_order)) {
        int64_t& m = ref_max[key];
        m = std::max(m, count);
      }
    }
    const auto hyp_ids = segment_ids(hyps[i], opt.lowercase, interner);
    const int64_t hyp_len = static_cast<int64_t>(hyp_ids.size());
    // Closest reference length; ties go to the shorter reference.
    int64_t best_diff = -1, best_len = -1;
    for (int64_t rl : ref_lens) {
      const int64_t diff = std::llabs(hyp_len - rl);
      if (best_diff == -1 || diff < best_diff) {
        best_diff = diff;
        best_len = rl;
      } else if (diff == best_diff && rl < best_len) {
        best_len = rl;
      }
    }
    sys_len += hyp_len;
    ref_len += best_len;
    for (const auto& [key, count] : count_ngrams(hyp_ids, max_order)) {
      const size_t n = key.size() / sizeof(uint32_t) - 1;
      total[n] += count;
      auto it = ref_max.find(key);
      if (it != ref_max.end()) correct[n] += std::min(count, it->second);
    }
  }

  BleuResult res;
  res.sys_len = sys_len;
  res.ref_len = ref_len;
  res.max_order = max_order;
  for (int n = 0; n < 4; ++n) {
    res.correct[n] = correct[n];
    res.total[n] = total[n];
  }
  const char* smooth_name = "exp";
  double smooth_value = opt.smooth_value;
  switch (opt.smoothing) {
    case Smoothing::None: smooth_name = "none"; break;
    case Smoothing::Floor:
      smooth_name = "floor";
      if (smooth_value < 0) smooth_value = 0.1;
      break;
    case Smoothing::AddK:
      smooth_name = "add-k";
      if (smooth_value < 0) smooth_value = 1.0;
      break;
    case Smoothing::Exp: break;
  }
  const std::string smooth_str = (opt.smoothing == Smoothing::Floor || opt.smoothing == Smoothing::AddK)
                                     ? fmt::format("{}[{:.2f}]", smooth_name, smooth_value)
                                     : std::string(smooth_name);
  res.signature = fmt::format("nrefs:{}|case:{}|eff:{}|tok:13a|smooth:{}|version:attn-1",
                              nrefs_vary ? std::string("var") : std::to_string(nrefs_first),
                              opt.lowercase ? "lc" : "mixed", opt.effective_order ? "yes" : "no", smooth_str);

  // The score from the statistics, step for step as sacreBLEU's BLEU.compute_bleu.
  res.bp = 1.0;
  if (sys_len < ref_len) res.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len)) : 0.0;
  bool any_correct = false;
  for (int n = 0; n < max_order; ++n) any_correct = any_correct || correct[n] != 0;
  if (!any_correct) return res;

  double c[4], t[4];
  for (int n = 0; n < 4; ++n) {
    c[n] = static_cast<double>(correct[n]);
    t[n] = static_cast<double>(total[n]);
  }
  double smooth_mteval = 1.0;
  int eff_order = max_order;
  for (int n = 1; n <= max_order; ++n) {
    if (opt.smoothing == Smoothing::AddK && n > 1) {
      c[n - 1] += smooth_value;
      t[n - 1] += smooth_value;
    }
    if (t[n - 1] == 0.0) break;
    if (opt.effective_order) eff_order = n;
    if (c[n - 1] == 0.0) {
      if (opt.smoothing == Smoothing::Exp) {
        smooth_mteval *= 2;
        res.precisions[n - 1] = 100.0 / (smooth_mteval * t[n - 1]);
      } else if (opt.smoothing == Smoothing::Floor) {
        res.precisions[n - 1] = 100.0 * smooth_value / t[n - 1];
      }
    } else {
      res.precisions[n - 1] = 100.0 * c[n - 1] / t[n - 1];
    }
  }
  double log_sum = 0.0;
  for (int n = 0; n < eff_order; ++n) log_sum += my_log(res.precisions[n]);
  res.score = res.bp * std::exp(log_sum / eff_order);
  return res;
}

std::string BleuResult::format() const {
  std::string prec;
  for (int n = 0; n < max_order; ++n) prec += fmt::format("{}{:.1f}", n ? "/" : "", precisions[n]);
  const double ratio = ref_len ? static_cast<double>(sys_len) / static_cast<double>(ref_len) : 0.0;
  return fmt::format("BLEU = {:.2f} {} (BP = {:.3f} ratio = {:.3f} hyp_len = {} ref_len = {})", score, prec, bp, ratio,
                     sys_len, ref_len);
}

GroupedRefs group_by_source(const std::vector<data::Pair>& pairs) {
  GroupedRefs out;
  std::unordered_map<std::string, size_t> where;
  for (const data::Pair& p : pairs) {
    auto [it, inserted] = where.try_emplace(p.src, out.sources.size());
    if (inserted) {
      out.sources.push_back(p.src);
      out.refs.emplace_back();
      out.lines.push_back(p.line);
    }
    out.refs[it->second].push_back(p.tgt);
  }
  return out;
}

}  // namespace attn::eval
