// The small piece of Unicode the data layer needs: UTF-8 validation with a reason, decoding and
// encoding of code points, simple lowercasing and the whitespace set.
//
// Lowercasing covers ASCII, Latin-1 Supplement, Latin Extended-A, Latin Extended Additional
// (U+1E00-U+1EFF), basic Greek and basic Cyrillic, one code point to one code point. ẞ (U+1E9E)
// becomes ß; ß, ſ and ı stay as they are; İ (U+0130) becomes a plain i (Python's str.lower() gives
// i + U+0307); Σ always becomes σ (no final-sigma rule). Everything else is left unchanged.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace attn::data {

// What is wrong with a byte string that is not UTF-8, and where (byte offset of the sequence).
struct Utf8Problem {
  size_t offset = 0;
  std::string what;  // "overlong encoding of U+002F", "truncated sequence", ...
};

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800-U+DFFF), nothing above
// U+10FFFF, no stray continuation bytes, no truncated sequences. nullopt when valid.
std::optional<Utf8Problem> check_utf8(std::string_view s);

// Decodes the code point at s[i] and advances i past it. Invalid or truncated sequences decode
// as U+FFFD and advance by one byte, so decoding always makes progress.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

char32_t to_lower(char32_t cp);
std::string lowercase(std::string_view s);  // invalid bytes become U+FFFD

// Unicode whitespace as Python's str.isspace() sees it (tab, LF, VT, FF, CR, U+001C-U+001F,
// space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
bool is_space(char32_t cp);
// Invisible separators the tokenizer also treats as spaces: U+200B (zero-width space) and
// U+FEFF (zero-width no-break space / a BOM inside a line).
inline bool is_zero_width_space(char32_t cp) { return cp == 0x200B || cp == 0xFEFF; }

// Leading and trailing is_space() / zero-width characters removed.
std::string_view trim(std::string_view s);
// Whitespace runs (is_space or zero-width) collapsed to one ASCII space, ends trimmed.
std::string normalize_spaces(std::string_view s);

}  // namespace attn::data
