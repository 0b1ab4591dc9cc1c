// A synthetic translation task for `attn demo` when no Tatoeba data is present: English dates,
// written in one of many surface forms, translated into ISO dates.
//
//   "the third of march nineteen ninety-nine"     -> "1 9 9 9 - 0 3 - 0 3"
//   "wednesday , march 3rd , 1999"                -> "1 9 9 9 - 0 3 - 0 3"
//   "3 mar 1999"                                  -> "1 9 9 9 - 0 3 - 0 3"
//
// Target tokenization: every digit and each "-" is a token of its own, so a target is always
// 10 tokens "Y Y Y Y - M M - D D" (zero-padded month and day). The tiny target vocabulary (10
// digits and "-") trains fast, and the attention plot reads token by token: both month digits
// look at the month word ("march" -> "0 3"), both day digits at the day ("third" / "3rd"), the
// century digits at "nineteen" / "two thousand" and the last two year digits at
// "ninety-nine" (or at the single token "1999" when the year is written in digits).
//
// Sources are lowercase and already in the form models/data/tokenizer.h produces (commas are
// separate tokens, "ninety-nine" and "3rd" are one token each), so tokenize(src) is src split at
// spaces. Surface forms (picked at random per pair):
//   day:     "third" / "twenty-first" / "twenty first", "3rd" / "21st", or "3"
//   month:   "march", sometimes the three-letter "mar"
//   year:    "1999", or in words: "nineteen ninety-nine" / "nineteen ninety nine",
//            "nineteen oh five", "nineteen hundred", "two thousand", "two thousand and five",
//            "two thousand five", "twenty oh five", "twenty twenty-one", "two thousand and twenty-one"
//   order:   "the D of M Y", "the D of M , Y", "M D Y", "M D , Y", "D M Y", "M the D Y", ...
//   weekday: optional prefix "tuesday , " or "tuesday " (always the true weekday of the date)
// Dates are uniform over 1900-01-01 .. 2099-12-31 (only real calendar dates; leap years by the
// Gregorian rule, so 1900-02-29 never appears and 2000-02-29 does).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attn::tasks {

struct Pair {
  std::string src, tgt;
};

// n pairs with n distinct sources (targets repeat: one date has many surface forms), the same
// for the same seed on every platform (a splitmix64 generator with rejection sampling; no
// implementation-defined std:: distributions). ValueError for n < 0.
std::vector<Pair> generate_dates(int64_t n, uint64_t seed);

// `src<TAB>tgt` lines with LF endings, readable by attn::data::load_pairs; written atomically.
void write_tsv(const std::vector<Pair>& pairs, const std::string& path);

// ---- pieces, exposed for tests

struct Date {
  int year, month, day;  // month 1..12, day 1..days_in_month
  bool operator==(const Date&) const = default;
};

bool is_leap_year(int year);
int days_in_month(int year, int month);
// The date `index` days after 1900-01-01 (index 0 .. 73048 for the task's range).
Date date_from_index(int64_t index);
// 0 = monday ... 6 = sunday.
int weekday(const Date& date);
// "1 9 9 9 - 0 3 - 0 3"
std::string iso_target(const Date& date);
// 0..99 in words, "ninety-nine" or (hyphen false) "ninety nine".
std::string number_words(int n, bool hyphen);
// 1..31 as an ordinal: "twenty-first" / "twenty first"; "21st".
std::string ordinal_words(int n, bool hyphen);
std::string ordinal_digits(int n);

}  // namespace attn::tasks
