// Corpus BLEU as sacreBLEU computes it (BLEU(), corpus_score): the 13a tokenizer, n-grams up to
// 4, clipped counts against the per-n-gram maximum over a hypothesis's references, brevity
// penalty against the closest reference length (ties go to the shorter), "exp" smoothing by
// default, scores on the 0-100 scale. Written from the definitions (mteval-v13a.pl, Papineni et
// al. 2002, Chen & Cherry 2014), cross-checked against sacreBLEU 2.6 by bench/sacrebleu_check.py.
//
// Known difference: with lowercase on, sacreBLEU uses Python's full Unicode str.lower(); this
// uses models/data/unicode.h's table (ASCII, Latin-1, Latin Extended-A/Additional, basic Greek
// and Cyrillic; no final sigma; İ -> i). Text outside those scripts with upper-case letters can
// score differently under --lowercase; mixed case (the default) is unaffected.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "models/data/tsv.h"

namespace attn::eval {

enum class Smoothing { None, Floor, AddK, Exp };

struct BleuOptions {
  bool lowercase = false;
  Smoothing smoothing = Smoothing::Exp;
  double smooth_value = -1.0;  // floor / add-k value; < 0: sacreBLEU's default (0.1 / 1)
  int max_order = 4;           // 1..4
  bool effective_order = false;
};

struct BleuResult {
  double score = 0.0;          // 0-100
  double precisions[4] = {};   // 0-100, after smoothing (as sacreBLEU reports them)
  double bp = 0.0;             // brevity penalty
  int64_t sys_len = 0, ref_len = 0;
  int64_t correct[4] = {}, total[4] = {};  // clipped n-gram matches and hypothesis n-grams
  int max_order = 4;
  std::string signature;       // nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:attn-1
  std::string format() const;  // "BLEU = 34.12 65.0/41.2/27.1/18.3 (BP = 1.000 ratio = ...)"
};

// refs[i] holds every reference of hyps[i] (at least one each). ValueError when the sizes
// disagree or a hypothesis has no reference.
BleuResult corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs,
                       const BleuOptions& options = {});

// mteval-v13a tokenization as sacreBLEU's Tokenizer13a does it: drop "<skipped>", join "-\n",
// newlines to spaces, unescape &quot; &amp; &lt; &gt;, split off ASCII punctuation and symbols,
// periods and commas unless next to a digit on the relevant side, a dash after a digit; tokens
// joined by single spaces.
std::string tokenize_13a(std::string_view line);

// A test set with every target of a source as a reference: sources in order of first
// appearance, refs[i] = all targets of sources[i] in file order, lines[i] = the line (Pair::line)
// where sources[i] first appears.
struct GroupedRefs {
  std::vector<std::string> sources;
  std::vector<std::vector<std::string>> refs;
  std::vector<int64_t> lines;
};
GroupedRefs group_by_source(const std::vector<data::Pair>& pairs);

}  // namespace attn::eval
