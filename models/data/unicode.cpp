#include "models/data/unicode.h"

#include <fmt/format.h>

namespace attn::data {

namespace {

bool is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

std::optional<Utf8Problem> check_utf8(std::string_view s) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    char32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07;
    } else if (b0 == 0xC0 || b0 == 0xC1) {
      // Always an overlong 2-byte form of an ASCII character.
      if (i + 1 < n && is_cont(static_cast<unsigned char>(s[i + 1])))
        return Utf8Problem{i, fmt::format("overlong encoding of U+{:04X}",
                                          ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu))};
      return Utf8Problem{i, fmt::format("invalid byte 0x{:02X}", b0)};
    } else if (is_cont(b0)) {
      return Utf8Problem{i, fmt::format("unexpected continuation byte 0x{:02X}", b0)};
    } else {
      return Utf8Problem{i, fmt::format("invalid byte 0x{:02X}", b0)};  // 0xF5-0xFF
    }
    for (size_t k = 1; k < len; ++k) {
      if (i + k >= n)
        return Utf8Problem{i, fmt::format("truncated sequence (lead byte 0x{:02X} needs {} bytes, the text ends after {})",
                                          b0, len, k)};
      if (!is_cont(static_cast<unsigned char>(s[i + k])))
        return Utf8Problem{i, fmt::format("lead byte 0x{:02X} of a {}-byte sequence followed by 0x{:02X}, not a "
                                          "continuation byte",
                                          b0, len, static_cast<unsigned char>(s[i + k]))};
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return Utf8Problem{i, fmt::format("overlong encoding of U+{:04X}", static_cast<uint32_t>(cp))};
    if (cp >= 0xD800 && cp <= 0xDFFF)
      return Utf8Problem{i, fmt::format("surrogate code point U+{:04X}", static_cast<uint32_t>(cp))};
    if (cp > 0x10FFFF)
      return Utf8Problem{i, fmt::format("code point U+{:X} above U+10FFFF", static_cast<uint32_t>(cp))};
    i += len;
  }
  return std::nullopt;
}

char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t len = 0;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    ++i;
    return 0xFFFD;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size() || !is_cont(static_cast<unsigned char>(s[i + k]))) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
      cp > 0x10FFFF) {
    ++i;
    return 0xFFFD;
  }
  i += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
  if (c < 0x100) return (c >= 0xC0 && c <= 0xDE && c != 0xD7) ? c + 0x20 : c;  // Latin-1
  if (c < 0x180) {                                                             // Latin Extended-A
    if (c == 0x130) return U'i';
    if (c == 0x178) return 0xFF;
    const bool even = (c % 2) == 0;
    if ((c <= 0x12F || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) && even) return c + 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && !even) return c + 1;
    return c;
  }
  if (c >= 0x386 && c <= 0x3AB) {  // Greek
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 0x25;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 0x3F;
    if (c >= 0x391 && c != 0x3A2) return c + 0x20;
    return c;
  }
  if (c >= 0x400 && c <= 0x42F) return c < 0x410 ? c + 0x50 : c + 0x20;  // Cyrillic
  if (c >= 0x1E00 && c <= 0x1EFF) {                                      // Latin Extended Additional
    if (c == 0x1E9E) return 0xDF;
    if ((c <= 0x1E95 || c >= 0x1EA0) && c % 2 == 0) return c + 1;
    return c;
  }
  return c;
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {  // fast path
      out += static_cast<char>(b >= 'A' && b <= 'Z' ? b + 0x20 : b);
      ++i;
      continue;
    }
    append_utf8(out, to_lower(next_code_point(s, i)));
  }
  return out;
}

bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (c < 0x2000) return c == 0x85 || c == 0xA0 || c == 0x1680;
  return c <= 0x200A || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {
bool is_blank(char32_t c) { return is_space(c) || is_zero_width_space(c); }
}  // namespace

std::string_view trim(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t j = begin;
    if (!is_blank(next_code_point(s, j))) break;
    begin = j;
  }
  // Scan forward and remember where the last non-blank code point ends.
  size_t end = begin, i = begin;
  while (i < s.size()) {
    const char32_t cp = next_code_point(s, i);
    if (!is_blank(cp)) end = i;
  }
  return s.substr(begin, end - begin);
}

std::string normalize_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending = false;
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const char32_t cp = next_code_point(s, i);
    if (is_blank(cp)) {
      pending = !out.empty();
      continue;
    }
    if (pending) out += ' ';
    pending = false;
    out.append(s.substr(start, i - start));
  }
  return out;
}

}  // namespace attn::data
