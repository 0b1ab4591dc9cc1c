#include "models/data/tokenizer.h"

#include <algorithm>
#include <initializer_list>

#include "models/data/unicode.h"

namespace attn::data {

namespace {

bool is_control(char32_t c) { return c < 0x20 || (c >= 0x7F && c < 0xA0); }

bool is_separator(char32_t c) { return is_space(c) || is_zero_width_space(c) || is_control(c); }

bool is_apostrophe(char32_t c) { return c == U'\'' || c == 0x2019 || c == 0x02BC; }

bool is_punct(char32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  if (c < 0x100) {
    switch (c) {
      case 0xA1: case 0xA2: case 0xA3: case 0xA4: case 0xA5: case 0xA6: case 0xA7: case 0xA8:
      case 0xA9: case 0xAB: case 0xAC: case 0xAE: case 0xAF: case 0xB0: case 0xB1: case 0xB4:
      case 0xB6: case 0xB7: case 0xB8: case 0xBB: case 0xBF: case 0xD7: case 0xF7:
        return true;
      default:
        return false;
    }
  }
  return (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E) || (c >= 0x20A0 && c <= 0x20CF) ||
         (c >= 0x2E00 && c <= 0x2E7F) || (c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011);
}

bool is_word(char32_t c) { return !is_separator(c) && !is_punct(c) && !is_apostrophe(c) && c != 0xAD; }

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }

std::string utf8_of(char32_t c) {
  std::string s;
  append_utf8(s, c);
  return s;
}

}  // namespace

std::vector<std::string> tokenize(std::string_view text) {
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (size_t i = 0; i < text.size();) cps.push_back(next_code_point(text, i));

  std::vector<std::string> tokens;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) tokens.push_back(std::move(word));
    word.clear();
  };
  const size_t n = cps.size();
  // Whether the straight quote at cps[i], starting a word, is closed later: an apostrophe not
  // followed by a word character (but following one, or punctuation) comes before the next one
  // that starts a word. If not, it is an elision ('ne, 's), as a typographic one there always is:
  // detokenize writes 'ne for the token of "Mach ’ne Fliege", which must read back the same.
  // (Each look stops at the next word-starting apostrophe: linear over the text.)
  auto quote_closes_later = [&](size_t i) {
    for (size_t j = i + 1; j < n; ++j) {
      if (!is_apostrophe(cps[j])) continue;
      const bool before_word = j + 1 < n && is_word(cps[j + 1]);
      const bool after_separator = is_separator(cps[j - 1]);
      if (before_word && after_separator) return false;  // the next quote opens here
      if (!before_word && !after_separator) return true;  // 'Hallo', 'Geh!'
    }
    return false;
  };
  int open_single = 0;  // single quotation marks opened and not yet closed
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = cps[i];
    if (c == 0xAD) continue;  // soft hyphen: invisible, not a separator
    if (is_separator(c)) {
      flush();
      continue;
    }
    // `word` is non-empty only while the previous code point belongs to it.
    const bool in_word = !word.empty();
    const bool next_word = i + 1 < n && is_word(cps[i + 1]);
    if (is_apostrophe(c)) {
      if (in_word && next_word) {  // don't, geht's
        word += '\'';
      } else if (in_word) {  // at the end of a word: closes an open single quote, else elision
        if (open_single > 0) {
          flush();
          tokens.push_back(utf8_of(c));
          --open_single;
        } else {
          word += '\'';  // wart', the boys'
        }
      } else if (next_word && (c != U'\'' || !quote_closes_later(i))) {  // ’ne, 'ne: an elision
        word += '\'';
      } else {  // an opening quote ('Hallo'), a closing one after punctuation ('Geh!'), or a lone mark
        tokens.push_back(utf8_of(c));
        if (next_word) ++open_single;
        else if (open_single > 0) --open_single;
      }
      continue;
    }
    if ((c == U'.' || c == U'-' || c == 0x2010 || c == 0x2011) && in_word && next_word) {
      append_utf8(word, c);
      continue;
    }
    if ((c == U'-' || c == 0x2010) && in_word && (i + 1 == n || is_separator(cps[i + 1]))) {
      append_utf8(word, c);  // "Differential- und Integralrechnung"
      continue;
    }
    if ((c == U',' || c == U':' || c == U'/') && in_word && is_digit(cps[i - 1]) && i + 1 < n &&
        is_digit(cps[i + 1])) {
      word += static_cast<char>(c);
      continue;
    }
    if (is_punct(c)) {
      flush();
      if (c == U'.') {
        std::string dots = ".";
        while (i + 1 < n && cps[i + 1] == U'.') {
          dots += '.';
          ++i;
        }
        tokens.push_back(std::move(dots));
      } else {
        tokens.push_back(utf8_of(c));
        if (c == 0x201A) ++open_single;  // ‚ opens a single quotation; ‘ closes ‚ or opens
        if (c == 0x2018) open_single += open_single > 0 ? -1 : 1;
      }
      continue;
    }
    append_utf8(word, to_lower(c));
  }
  flush();
  return tokens;
}

namespace {

enum class Attach { None, Left, Right };  // Left: no space before; Right: no space after

bool all_of_chars(const std::string& tok, std::initializer_list<char32_t> set) {
  if (tok.empty()) return false;
  for (size_t i = 0; i < tok.size();) {
    const char32_t c = next_code_point(tok, i);
    if (std::find(set.begin(), set.end(), c) == set.end()) return false;
  }
  return true;
}

// The quotation marks each quote can close; `opens` says whether it can open a quotation.
struct QuoteRule {
  char32_t quote;
  std::initializer_list<char32_t> closes;
  bool opens;
};

const QuoteRule* quote_rule(const std::string& tok) {
  static const QuoteRule rules[] = {
      {U'"', {U'"'}, true},
      {0x201E /* „ */, {}, true},
      {0x201C /* “ */, {0x201E}, true},
      {0x201D /* ” */, {0x201E, 0x201C, 0x201D}, true},
      {0x201A /* ‚ */, {}, true},
      {0x2018 /* ‘ */, {0x201A}, true},
      {0x2019 /* ’ */, {0x201A, 0x2018}, false},
      {U'\'', {U'\''}, true},
      {0xAB /* « */, {0xBB}, true},
      {0xBB /* » */, {0xAB}, true},
      {0x2039 /* ‹ */, {0x203A}, true},
      {0x203A /* › */, {0x2039}, true},
  };
  size_t i = 0;
  if (tok.empty()) return nullptr;
  const char32_t c = next_code_point(tok, i);
  if (i != tok.size()) return nullptr;
  for (const QuoteRule& r : rules)
    if (r.quote == c) return &r;
  return nullptr;
}

}  // namespace

std::string detokenize(const std::vector<std::string>& tokens) {
  std::string out;
  std::vector<char32_t> open_quotes;
  bool glue = true;  // no space before the next token
  for (const std::string& tok : tokens) {
    Attach attach = Attach::None;
    if (const QuoteRule* q = quote_rule(tok)) {
      const bool closes = !open_quotes.empty() && std::find(q->closes.begin(), q->closes.end(),
                                                            open_quotes.back()) != q->closes.end();
      if (closes) {
        open_quotes.pop_back();
        attach = Attach::Left;
      } else if (q->opens) {
        open_quotes.push_back(q->quote);
        attach = Attach::Right;
      } else {
        attach = Attach::Left;
      }
    } else if (all_of_chars(tok, {U'.', U',', U'!', U'?', U';', U':', U')', U']', U'}', 0x2026, U'%'})) {
      attach = Attach::Left;
    } else if (all_of_chars(tok, {U'(', U'[', U'{', 0xBF, 0xA1, U'$', 0xA3, 0xA5})) {
      attach = Attach::Right;
    }
    if (!glue && attach != Attach::Left) out += ' ';
    out += tok;
    glue = attach == Attach::Right;
  }
  return out;
}

}  // namespace attn::data
