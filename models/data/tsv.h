// Sentence-pair files (`source<TAB>target[<TAB>attribution]`, one pair a line) and plain
// sentence files.
//
// Accepted: LF or CRLF line endings (a CR anywhere else is an error), a UTF-8 BOM at the start,
// blank lines at the very end of the file, 2 columns or 3 (the third, attribution, is ignored).
// Each side is trimmed of Unicode whitespace (NBSP included); the text inside is kept as it is.
// A side written CSV-style — wrapped in double quotes with every inner quote doubled, as in
// `"Say ""aah."""` (four lines of the Tatoeba download look like this) — is unquoted to
// `Say "aah."` when LoadOptions::unquote_csv is on (the default). A side that merely starts and
// ends with a quote but has no doubled quote inside (`"Yes."`) is left alone.
//
// Malformed lines — no tab, more than 3 columns, an empty side after trimming, invalid UTF-8,
// a blank line before the end — raise attn::IOError "<path>:<line>: <what is wrong>" (1-based
// line numbers), or with skip_bad_lines are counted in `skipped` and described in `warnings`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attn::data {

struct Pair {
  std::string src, tgt;
  int64_t line = 0;  // 1-based line number in the file
};

struct LoadOptions {
  bool skip_bad_lines = false;
  bool unquote_csv = true;
};

struct LoadResult {
  std::vector<Pair> pairs;
  int64_t skipped = 0;
  std::vector<std::string> warnings;  // one per skipped line, same text as the error would be
};

LoadResult load_pairs(const std::string& path, LoadOptions options = {});

// The warning a caller prints for the lines skipped while loading `path` (empty when none):
// "warning: <path>: skipped N malformed line(s)" and, one a line, the first `shown` of them
// with their line numbers and what was wrong ("... and K more" after that).
std::string skipped_lines_warning(const std::string& path, const LoadResult& result, size_t shown = 5);

// Lines of a plain UTF-8 text file (LF or CRLF, optional BOM), with the line ending removed and
// nothing else changed; empty lines are kept (so line i of the output matches line i of the
// input), a final line ending does not add an empty line. Invalid UTF-8 or a stray CR is an
// IOError naming the file and line.
std::vector<std::string> read_lines(const std::string& path);
// The same for text already read (stdin), errors naming `name` ("<stdin>") and the line.
std::vector<std::string> split_text_lines(std::string_view bytes, const std::string& name);

// `"a ""b"" c"` -> `a "b" c` when s is a CSV-quoted field with at least one doubled quote inside;
// otherwise s unchanged.
std::string unquote_csv_field(const std::string& s);

}  // namespace attn::data
