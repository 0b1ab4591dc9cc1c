// Corpus BLEU: hand-computed cases, the 13a tokenizer on tricky strings (expected outputs are
// what sacreBLEU 2.6's Tokenizer13a prints for them), multi-reference clipping and the closest
// reference length. bench/sacrebleu_check.py compares whole corpora against sacreBLEU itself.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/data/tsv.h"
#include "models/eval/bleu.h"
#include "tests/data_test_util.h"

namespace attn::test {
namespace {

using eval::corpus_bleu;
using eval::tokenize_13a;
using Refs = std::vector<std::vector<std::string>>;

TEST(BleuTokenizer13a, TrickyStrings) {
  EXPECT_EQ(tokenize_13a("Hello, world!"), "Hello , world !");
  EXPECT_EQ(tokenize_13a("\"Quote\" &amp; &quot;x&quot; &lt;b&gt;"), "\" Quote \" & \" x \" < b >");
  EXPECT_EQ(tokenize_13a("&amp;lt;"), "<");  // unescaped in sequence, as mteval does
  EXPECT_EQ(tokenize_13a("It costs 1,000.50 dollars."), "It costs 1,000.50 dollars .");
  EXPECT_EQ(tokenize_13a("3.5 a.b 10-20 well-known a-5"), "3.5 a . b 10 - 20 well-known a-5");
  EXPECT_EQ(tokenize_13a("don't"), "don't");
  EXPECT_EQ(tokenize_13a("a <skipped> b"), "a b");
  EXPECT_EQ(tokenize_13a("x.,y"), "x . , y");
  EXPECT_EQ(tokenize_13a("1."), "1 .");
  EXPECT_EQ(tokenize_13a(".5"), ". 5");
  EXPECT_EQ(tokenize_13a("a..5"), "a . .5");  // non-overlapping matches, as re.sub
  EXPECT_EQ(tokenize_13a("5--6"), "5 - -6");
  EXPECT_EQ(tokenize_13a("A-\nB"), "AB");
  EXPECT_EQ(tokenize_13a("line\nbreak"), "line break");
  EXPECT_EQ(tokenize_13a("Tom (aged 5) said: \"yes\" - no? {x} [y] ~z~ 50% $5 @home #1 a/b a*b+c=d"),
            "Tom ( aged 5 ) said : \" yes \" - no ? { x } [ y ] ~ z ~ 50 % $ 5 @ home # 1 a / b a * b + c = d");
  EXPECT_EQ(tokenize_13a("Ende.“ „Anfang"), "Ende . “ „Anfang");  // after a period: a multi-byte letter
  EXPECT_EQ(tokenize_13a("Straße, 1,5 km. 2.-3. Mai"), "Straße , 1,5 km . 2 . -3 . Mai");
  EXPECT_EQ(tokenize_13a("x\xC2\xA0y\xE2\x80\x89z  \t "), "x y z");  // Unicode spaces split
  EXPECT_EQ(tokenize_13a(""), "");
}

TEST(Bleu, PerfectMatchIs100) {
  ATTN_RANDOM_SEED(seed);
  std::mt19937_64 rng(seed);
  const std::vector<std::string> words = {"Haus", "grüß", "geht’s", "3,5", "10:30", "Lkw-Fahrer", ".", "!", "\"", "&amp;"};
  std::vector<std::string> hyps;
  Refs refs;
  for (int i = 0; i < 50; ++i) {
    std::string s;
    for (int k = 0, n = 4 + static_cast<int>(rng() % 10); k < n; ++k) s += (k ? " " : "") + words[rng() % words.size()];
    hyps.push_back(s);
    refs.push_back({s});
  }
  const auto r = corpus_bleu(hyps, refs);
  EXPECT_NEAR(r.score, 100.0, 1e-9);
  EXPECT_EQ(r.bp, 1.0);
  EXPECT_EQ(r.sys_len, r.ref_len);
  for (double p : r.precisions) EXPECT_NEAR(p, 100.0, 1e-9);
  EXPECT_EQ(r.signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:attn-1");
}

TEST(Bleu, HandComputedPartialMatch) {
  // hyp: the cat sat on the mat / ref: the cat is on the mat
  // 1-grams 5/6 (the x2, cat, on, mat), 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4
  // (on the mat), 4-grams 0/3 -> exp smoothing 100 / (2 * 3). Equal lengths: BP = 1.
  const auto r = corpus_bleu({"the cat sat on the mat"}, {{"the cat is on the mat"}});
  EXPECT_EQ(r.correct[0], 5);
  EXPECT_EQ(r.total[0], 6);
  EXPECT_EQ(r.correct[1], 3);
  EXPECT_EQ(r.correct[2], 1);
  EXPECT_EQ(r.correct[3], 0);
  EXPECT_EQ(r.total[3], 3);
  EXPECT_DOUBLE_EQ(r.precisions[3], 100.0 / 6.0);
  const double expected =
      std::exp((std::log(500.0 / 6.0) + std::log(60.0) + std::log(25.0) + std::log(100.0 / 6.0)) / 4.0);
  EXPECT_NEAR(r.score, expected, 1e-12);
  EXPECT_NEAR(r.score, 37.99178428257963, 1e-10);  // sacreBLEU 2.6
}

TEST(Bleu, BrevityPenaltyForAHalfLengthHypothesis) {
  // c = 4, r = 8: BP = exp(1 - r / c) = exp(-1); all precisions are 100%.
  const auto r = corpus_bleu({"a b c d"}, {{"a b c d e f g h"}});
  EXPECT_EQ(r.sys_len, 4);
  EXPECT_EQ(r.ref_len, 8);
  EXPECT_DOUBLE_EQ(r.bp, std::exp(-1.0));
  EXPECT_NEAR(r.score, 100.0 * std::exp(-1.0), 1e-10);  // 36.787944...
  // Longer than the reference: no penalty.
  EXPECT_EQ(corpus_bleu({"a b c d e f g h"}, {{"a b c d"}}).bp, 1.0);
  // Empty system output: BP = 0 and BLEU = 0.
  const auto empty = corpus_bleu({""}, {{"a b c"}});
  EXPECT_EQ(empty.bp, 0.0);
  EXPECT_EQ(empty.score, 0.0);
}

TEST(Bleu, MultiReferenceClipsAtTheMaxOverReferences) {
  // Papineni et al.'s example: "the" may count at most twice (its count in the first
  // reference), not three times (its count over both references).
  const auto r = corpus_bleu({"the the the the the the the"}, {{"the cat is on the mat", "there is a cat on the mat"}});
  EXPECT_EQ(r.correct[0], 2);
  EXPECT_EQ(r.total[0], 7);
  EXPECT_DOUBLE_EQ(r.precisions[0], 200.0 / 7.0);
  EXPECT_NEAR(r.score, 7.809849842300637, 1e-10);  // sacreBLEU 2.6
  EXPECT_EQ(r.signature, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:attn-1");
  // n-grams matched in different references both count.
  const auto m = corpus_bleu({"a b c d x y z w"}, {{"a b c d", "x y z w"}});
  EXPECT_EQ(m.correct[0], 8);
  EXPECT_EQ(m.correct[3], 2);
}

TEST(Bleu, ClosestReferenceLengthTiesGoToTheShorter) {
  EXPECT_EQ(corpus_bleu({"a b c d e"}, {{"a b c d", "a b c d e f"}}).ref_len, 4);
  EXPECT_EQ(corpus_bleu({"a b c d e"}, {{"a b c d e f", "a b c d"}}).ref_len, 4);
  EXPECT_EQ(corpus_bleu({"a b c d e"}, {{"x y z", "a b c d e f g"}}).ref_len, 3);
  const auto r = corpus_bleu({"a b c d e"}, {{"a b c d e f g", "a b c d e f g h"}});
  EXPECT_EQ(r.ref_len, 7);
  EXPECT_DOUBLE_EQ(r.bp, std::exp(1.0 - 7.0 / 5.0));
  // Per sentence, summed over the corpus.
  const auto c = corpus_bleu({"a b c d e", "a b"}, {{"a b c", "a b c d e f g"}, {"a b c d"}});
  EXPECT_EQ(c.sys_len, 7);
  EXPECT_EQ(c.ref_len, 3 + 4);
  EXPECT_EQ(c.signature, "nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:attn-1");
}

TEST(Bleu, NoMatchesShortSentencesCaseAndSmoothing) {
  EXPECT_EQ(corpus_bleu({"x y z w"}, {{"a b c d"}}).score, 0.0);
  // Fewer than four tokens everywhere: no 4-grams at all, so BLEU is 0 even for a perfect match.
  const auto short_r = corpus_bleu({"hello there"}, {{"hello there"}});
  EXPECT_EQ(short_r.score, 0.0);
  EXPECT_EQ(short_r.precisions[0], 100.0);
  EXPECT_EQ(short_r.precisions[2], 0.0);
  // Case.
  const std::vector<std::string> h = {"Das Haus ist GROẞ und ÄLTER als wir."};
  const Refs ref = {{"das haus ist groß und älter als wir."}};
  EXPECT_LT(corpus_bleu(h, ref).score, 50.0);
  eval::BleuOptions lc;
  lc.lowercase = true;
  const auto r = corpus_bleu(h, ref, lc);
  EXPECT_NEAR(r.score, 100.0, 1e-9);
  EXPECT_EQ(r.signature, "nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:attn-1");
  // Smoothing variants on a case with a zero 4-gram precision (values from sacreBLEU 2.6).
  eval::BleuOptions none, floor, addk;
  none.smoothing = eval::Smoothing::None;
  floor.smoothing = eval::Smoothing::Floor;
  addk.smoothing = eval::Smoothing::AddK;
  const std::vector<std::string> hh = {"the cat sat on the mat"};
  const Refs rr = {{"the cat is on the mat"}};
  EXPECT_EQ(corpus_bleu(hh, rr, none).score, 0.0);
  EXPECT_NEAR(corpus_bleu(hh, rr, floor).score,
              std::exp((std::log(500.0 / 6) + std::log(60.0) + std::log(25.0) + std::log(10.0 / 3)) / 4), 1e-12);
  EXPECT_NEAR(corpus_bleu(hh, rr, addk).score,
              std::exp((std::log(500.0 / 6) + std::log(400.0 / 6) + std::log(40.0) + std::log(25.0)) / 4), 1e-12);
  EXPECT_EQ(corpus_bleu(hh, rr, floor).signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|version:attn-1");
  EXPECT_EQ(corpus_bleu(hh, rr, addk).signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|version:attn-1");
}

TEST(Bleu, FormatAndErrors) {
  const auto r = corpus_bleu({"the cat sat on the mat"}, {{"the cat is on the mat"}});
  EXPECT_EQ(r.format(), "BLEU = 37.99 83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)");
  expect_throw_with<ValueError>([] { corpus_bleu({"a", "b"}, {{"a"}}); }, {"2 hypotheses", "1 reference"});
  expect_throw_with<ValueError>([] { corpus_bleu({"a"}, {{}}); }, {"hypothesis 0 has no reference"});
}

TEST(Bleu, GroupBySourceKeepsEveryTarget) {
  const std::vector<data::Pair> pairs = {{"Go.", "Geh.", 1}, {"Hi.", "Hallo!", 2}, {"Go.", "Los!", 3},
                                         {"Run!", "Lauf!", 4}, {"Go.", "Gehen Sie.", 5}};
  const auto g = eval::group_by_source(pairs);
  ASSERT_EQ(g.sources, (std::vector<std::string>{"Go.", "Hi.", "Run!"}));
  EXPECT_EQ(g.refs[0], (std::vector<std::string>{"Geh.", "Los!", "Gehen Sie."}));
  EXPECT_EQ(g.refs[1], (std::vector<std::string>{"Hallo!"}));
  EXPECT_EQ(g.refs[2], (std::vector<std::string>{"Lauf!"}));
}

TEST(Bleu, TatoebaTestSetWithAllTranslationsAsReferences) {
  ATTN_REQUIRE_TATOEBA();
  const auto g = eval::group_by_source(data::load_pairs(tatoeba_dir() + "/test.tsv").pairs);
  ASSERT_GT(g.sources.size(), 700u);
  ASSERT_LT(g.sources.size(), 1000u);  // some sources have several translations
  // Each source's first translation as the hypothesis: a perfect score against all references.
  std::vector<std::string> hyps;
  for (const auto& r : g.refs) hyps.push_back(r.front());
  const auto all = corpus_bleu(hyps, g.refs);
  EXPECT_NEAR(all.score, 100.0, 1e-9);
  EXPECT_EQ(all.signature.substr(0, 10), "nrefs:var|");
  // Leaving that translation out (where there are others) scores lower but far above zero.
  std::vector<std::string> h2;
  Refs r2;
  for (const auto& r : g.refs)
    if (r.size() > 1) {
      h2.push_back(r.front());
      r2.emplace_back(r.begin() + 1, r.end());
    }
  const auto other = corpus_bleu(h2, r2);
  std::printf("[ bleu ] test.tsv: %zu sources; first translation vs the others (%zu sources): %s\n", g.sources.size(),
              h2.size(), other.format().c_str());
  EXPECT_GT(other.score, 10.0);
  EXPECT_LT(other.score, 90.0);
}

}  // namespace
}  // namespace attn::test
