#include "models/data/tsv.h"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "models/data/unicode.h"

namespace attn::data {

namespace {

// Splits the file into lines (without their LF / CRLF), after a BOM. `problems[i]` is non-empty
// when line i cannot be used at all (stray CR, a NUL byte, invalid UTF-8).
struct Lines {
  std::vector<std::string_view> text;
  std::vector<std::string> problems;
};

Lines split_lines(std::string_view bytes) {
  Lines out;
  if (bytes.size() >= 3 && bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? bytes.size() : nl;
    std::string_view line = bytes.substr(pos, end - pos);
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF only
    std::string problem;
    if (const size_t cr = line.find('\r'); cr != std::string_view::npos) {
      problem = fmt::format("carriage return inside the line at byte {} (only LF or CRLF line endings are accepted)",
                            cr + 1);
    } else if (const size_t nul = line.find('\0'); nul != std::string_view::npos) {
      // valid UTF-8, but never text: a binary file, or UTF-16 (every other byte of ASCII is 0)
      problem = fmt::format("NUL byte at byte {} (a binary or UTF-16 file? save the text as UTF-8)", nul + 1);
    } else if (auto bad = check_utf8(line)) {
      problem = fmt::format("invalid UTF-8 at byte {}: {}", bad->offset + 1, bad->what);
    }
    out.text.push_back(line);
    out.problems.push_back(std::move(problem));
    pos = nl == std::string_view::npos ? bytes.size() : nl + 1;
  }
  return out;
}

}  // namespace

std::string unquote_csv_field(const std::string& s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return s;
  std::string out;
  bool doubled = false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '"') {
      if (i + 2 < s.size() && s[i + 1] == '"') {
        out += '"';
        ++i;
        doubled = true;
      } else {
        return s;  // a lone quote inside: not a CSV-quoted field
      }
    } else {
      out += s[i];
    }
  }
  return doubled ? out : s;
}

LoadResult load_pairs(const std::string& path, LoadOptions options) {
  const std::string bytes = io::read_file(path);
  const Lines lines = split_lines(bytes);
  size_t last = lines.text.size();  // blank lines at the end of the file are allowed
  while (last > 0 && lines.text[last - 1].empty() && lines.problems[last - 1].empty()) --last;

  LoadResult result;
  result.pairs.reserve(last);
  auto bad = [&](size_t i, const std::string& what) {
    std::string msg = fmt::format("{}:{}: {}", path, i + 1, what);
    if (!options.skip_bad_lines) throw IOError(msg);
    ++result.skipped;
    result.warnings.push_back(std::move(msg));
  };
  for (size_t i = 0; i < last; ++i) {
    if (!lines.problems[i].empty()) {
      bad(i, lines.problems[i]);
      continue;
    }
    const std::string_view line = lines.text[i];
    if (line.empty()) {
      bad(i, "empty line (expected source<TAB>target)");
      continue;
    }
    std::vector<std::string_view> cols;
    size_t start = 0;
    for (;;) {
      const size_t tab = line.find('\t', start);
      cols.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (cols.size() == 1) {
      bad(i, "no tab (expected source<TAB>target)");
      continue;
    }
    if (cols.size() > 3) {
      bad(i, fmt::format("{} tab-separated columns (expected 2, or 3 with an attribution)", cols.size()));
      continue;
    }
    std::string src(trim(cols[0])), tgt(trim(cols[1]));
    if (options.unquote_csv) {
      src = std::string(trim(unquote_csv_field(src)));
      tgt = std::string(trim(unquote_csv_field(tgt)));
    }
    if (src.empty() || tgt.empty()) {
      bad(i, fmt::format("empty {} side (column {}) after trimming whitespace", src.empty() ? "source" : "target",
                         src.empty() ? 1 : 2));
      continue;
    }
    result.pairs.push_back(Pair{std::move(src), std::move(tgt), static_cast<int64_t>(i + 1)});
  }
  return result;
}

std::string skipped_lines_warning(const std::string& path, const LoadResult& result, size_t shown) {
  if (result.skipped == 0) return {};
  std::string out = fmt::format("warning: {}: skipped {} malformed line(s)", path, result.skipped);
  const size_t listed = std::min(shown, result.warnings.size());
  for (size_t i = 0; i < listed; ++i) out += "\n  " + result.warnings[i];
  if (static_cast<int64_t>(listed) < result.skipped)
    out += fmt::format("\n  ... and {} more", result.skipped - static_cast<int64_t>(listed));
  return out;
}

std::vector<std::string> read_lines(const std::string& path) { return split_text_lines(io::read_file(path), path); }

std::vector<std::string> split_text_lines(std::string_view bytes, const std::string& name) {
  const Lines lines = split_lines(bytes);
  std::vector<std::string> out;
  out.reserve(lines.text.size());
  for (size_t i = 0; i < lines.text.size(); ++i) {
    ATTN_CHECK(lines.problems[i].empty(), IOError, "{}:{}: {}", name, i + 1, lines.problems[i]);
    out.emplace_back(lines.text[i]);
  }
  return out;
}

}  // namespace attn::data
