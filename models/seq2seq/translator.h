// Text in, text out: tokenize, map to ids (unknown words become <unk> and are counted), decode
// in batches sorted by length, map back and detokenize; plus the teacher-forced loss of a set of
// examples (validation and `attn eval`).
#pragma once

#include <string>
#include <vector>

#include "models/data/batching.h"
#include "models/data/vocab.h"
#include "models/seq2seq/search.h"

namespace attn::models {

struct Translation {
  std::string source;
  std::vector<std::string> source_tokens;  // with the </s> the encoder saw
  std::vector<Hypothesis> hypotheses;      // best first
  std::vector<std::string> outputs;        // detokenized, one per hypothesis
  std::vector<std::vector<std::string>> output_tokens;  // one per hypothesis (+ "</s>" when finished)
  int64_t unknown = 0;                     // source words mapped to <unk>
};

class Translator {
 public:
  Translator(const Seq2Seq& model, const data::Vocab& src_vocab, const data::Vocab& tgt_vocab);
  // ValueError naming the sentence when one is not valid UTF-8 or is longer than the model's
  // max_src_len: where[i] ("file:line") when given, else "sentence i+1". ValueError for
  // batch_size, beam or n_best < 1. A sentence without a word (empty or blank) is not decoded: its
  // Translation has one empty output and no hypotheses.
  std::vector<Translation> translate(const std::vector<std::string>& sentences, const SearchOptions& opt,
                                     int64_t batch_size = 64, const std::vector<std::string>& where = {}) const;

 private:
  const Seq2Seq& model_;
  const data::Vocab& src_vocab_;
  const data::Vocab& tgt_vocab_;
};

// Mean teacher-forced loss per target token over `examples` (the model in eval mode).
struct LossResult {
  double loss = 0.0;
  int64_t tokens = 0, sentences = 0;
};
LossResult evaluate_loss(const Seq2Seq& model, const std::vector<data::Example>& examples, int64_t batch_size);

}  // namespace attn::models
