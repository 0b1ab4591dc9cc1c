#include "models/tasks/dates.h"

#include <fmt/format.h>

#include <array>
#include <limits>
#include <unordered_set>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace attn::tasks {
namespace {

constexpr int kFirstYear = 1900, kLastYear = 2099;

constexpr std::array<const char*, 12> kMonths = {"january", "february", "march",     "april",   "may",      "june",
                                                 "july",    "august",   "september", "october", "november", "december"};
constexpr std::array<const char*, 12> kMonthAbbr = {"jan", "feb", "mar", "apr", "may", "jun",
                                                    "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 7> kWeekdays = {"monday", "tuesday", "wednesday", "thursday",
                                                  "friday", "saturday", "sunday"};
constexpr std::array<const char*, 20> kUnits = {"zero",    "one",     "two",       "three",    "four",
                                                "five",    "six",     "seven",     "eight",    "nine",
                                                "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                                "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
constexpr std::array<const char*, 10> kTens = {"",      "",      "twenty",  "thirty", "forty",
                                               "fifty", "sixty", "seventy", "eighty", "ninety"};
constexpr std::array<const char*, 20> kOrdinalUnits = {
    "zeroth", "first",   "second",  "third",      "fourth",     "fifth",     "sixth",
    "seventh", "eighth", "ninth",   "tenth",      "eleventh",   "twelfth",   "thirteenth",
    "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth"};

// splitmix64 (Steele, Lea, Flood 2014): tiny, and its output is fully specified. Every draw is
// its own statement (or the only draw of an expression), so the order of draws is fixed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), unbiased (rejection of the low remainder).
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const uint64_t x = next();
      if (x >= threshold) return x % n;
    }
  }
  int pick(int n) { return static_cast<int>(below(static_cast<uint64_t>(n))); }
  // True with probability percent / 100.
  bool chance(int percent) { return pick(100) < percent; }

 private:
  uint64_t state_;
};

int64_t total_days() {
  int64_t days = 0;
  for (int y = kFirstYear; y <= kLastYear; ++y) days += is_leap_year(y) ? 366 : 365;
  return days;
}

std::string month_word(int month, Rng& rng) {
  return rng.chance(12) ? kMonthAbbr[month - 1] : kMonths[month - 1];
}

std::string day_phrase(int day, int kind, Rng& rng) {
  switch (kind) {
    case 0: return ordinal_words(day, rng.chance(70));
    case 1: return ordinal_digits(day);
    default: return std::to_string(day);
  }
}

std::string year_phrase(int year, Rng& rng) {
  if (rng.chance(50)) return std::to_string(year);
  const bool hyphen = rng.chance(70);
  const int rest = year % 100;
  if (year < 2000) {
    if (rest == 0) return "nineteen hundred";
    if (rest < 10) return "nineteen oh " + number_words(rest, hyphen);
    return "nineteen " + number_words(rest, hyphen);
  }
  if (rest == 0) return "two thousand";
  const int form = rng.pick(3);
  if (form == 0) return "two thousand and " + number_words(rest, hyphen);
  if (form == 1) return "two thousand " + number_words(rest, hyphen);
  if (rest < 10) return "twenty oh " + number_words(rest, hyphen);
  return "twenty " + number_words(rest, hyphen);
}

std::string source_text(const Date& d, Rng& rng) {
  const std::string m = month_word(d.month, rng);
  const std::string y = year_phrase(d.year, rng);
  std::string s;
  switch (rng.pick(9)) {
    case 0: s = fmt::format("the {} of {} {}", day_phrase(d.day, 0, rng), m, y); break;
    case 1: s = fmt::format("the {} of {} , {}", day_phrase(d.day, rng.pick(2), rng), m, y); break;
    case 2: s = fmt::format("{} {} {}", m, day_phrase(d.day, 1, rng), y); break;
    case 3: s = fmt::format("{} {} , {}", m, day_phrase(d.day, 1 + rng.pick(2), rng), y); break;
    case 4: s = fmt::format("{} {} {}", day_phrase(d.day, 2, rng), m, y); break;
    case 5: s = fmt::format("{} the {} {}", m, day_phrase(d.day, 0, rng), y); break;
    case 6: s = fmt::format("{} {} , {}", m, day_phrase(d.day, 0, rng), y); break;
    case 7: s = fmt::format("{} {} {}", day_phrase(d.day, rng.pick(2), rng), m, y); break;
    default: s = fmt::format("{} {} {}", m, day_phrase(d.day, 2, rng), y); break;
  }
  if (rng.chance(25)) s = std::string(kWeekdays[weekday(d)]) + (rng.chance(50) ? " , " : " ") + s;
  return s;
}

}  // namespace

bool is_leap_year(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int days_in_month(int year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  ATTN_CHECK(month >= 1 && month <= 12, ValueError, "days_in_month: month {} is not in 1..12", month);
  return month == 2 && is_leap_year(year) ? 29 : kDays[month - 1];
}

Date date_from_index(int64_t index) {
  ATTN_CHECK(index >= 0, ValueError, "date_from_index: negative index {}", index);
  Date d{kFirstYear, 1, 1};
  for (int len = is_leap_year(d.year) ? 366 : 365; index >= len; len = is_leap_year(d.year) ? 366 : 365) {
    index -= len;
    ++d.year;
  }
  for (int len = days_in_month(d.year, d.month); index >= len; len = days_in_month(d.year, d.month)) {
    index -= len;
    ++d.month;
  }
  d.day = 1 + static_cast<int>(index);
  return d;
}

int weekday(const Date& date) {
  // Days since 1900-01-01, a monday.
  int64_t days = 0;
  for (int y = kFirstYear; y < date.year; ++y) days += is_leap_year(y) ? 366 : 365;
  for (int y = date.year; y < kFirstYear; ++y) days -= is_leap_year(y) ? 366 : 365;
  for (int m = 1; m < date.month; ++m) days += days_in_month(date.year, m);
  days += date.day - 1;
  return static_cast<int>(((days % 7) + 7) % 7);
}

std::string iso_target(const Date& d) {
  const std::string digits = fmt::format("{:04d}{:02d}{:02d}", d.year, d.month, d.day);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i == 4 || i == 6) out += " -";
    if (!out.empty()) out += ' ';
    out += digits[i];
  }
  return out;
}

std::string number_words(int n, bool hyphen) {
  ATTN_CHECK(n >= 0 && n <= 99, ValueError, "number_words: {} is not in 0..99", n);
  if (n < 20) return kUnits[n];
  if (n % 10 == 0) return kTens[n / 10];
  return std::string(kTens[n / 10]) + (hyphen ? "-" : " ") + kUnits[n % 10];
}

std::string ordinal_words(int n, bool hyphen) {
  ATTN_CHECK(n >= 1 && n <= 31, ValueError, "ordinal_words: {} is not in 1..31", n);
  if (n < 20) return kOrdinalUnits[n];
  if (n % 10 == 0) return n == 20 ? "twentieth" : "thirtieth";
  return std::string(kTens[n / 10]) + (hyphen ? "-" : " ") + kOrdinalUnits[n % 10];
}

std::string ordinal_digits(int n) {
  const char* suffix = "th";
  if (n % 100 < 11 || n % 100 > 13) {
    if (n % 10 == 1) suffix = "st";
    else if (n % 10 == 2) suffix = "nd";
    else if (n % 10 == 3) suffix = "rd";
  }
  return std::to_string(n) + suffix;
}

std::vector<Pair> generate_dates(int64_t n, uint64_t seed) {
  ATTN_CHECK(n >= 0, ValueError, "generate_dates: n = {} is negative", n);
  Rng rng(seed);
  const uint64_t days = static_cast<uint64_t>(total_days());
  std::vector<Pair> pairs;
  pairs.reserve(static_cast<size_t>(n));
  std::unordered_set<std::string> seen;
  // Millions of distinct sources exist; the cap only guards against an endless loop.
  const int64_t max_attempts = 100 * n + 1000;
  for (int64_t attempt = 0; static_cast<int64_t>(pairs.size()) < n; ++attempt) {
    ATTN_CHECK(attempt < max_attempts, ValueError, "generate_dates: only {} distinct dates in {} attempts (n = {})",
               pairs.size(), attempt, n);
    const Date d = date_from_index(static_cast<int64_t>(rng.below(days)));
    std::string src = source_text(d, rng);
    if (!seen.insert(src).second) continue;
    pairs.push_back({std::move(src), iso_target(d)});
  }
  return pairs;
}

void write_tsv(const std::vector<Pair>& pairs, const std::string& path) {
  std::string text;
  for (const Pair& p : pairs) {
    ATTN_CHECK(p.src.find_first_of("\t\r\n") == std::string::npos && p.tgt.find_first_of("\t\r\n") == std::string::npos,
               ValueError, "write_tsv: a tab or line break inside the pair '{}' / '{}'", p.src, p.tgt);
    text += p.src;
    text += '\t';
    text += p.tgt;
    text += '\n';
  }
  io::write_file_atomic(path, text);
}

}  // namespace attn::tasks
