// Decoding: greedy and beam search over a batch of sentences, with the attention weights of
// every output token kept for heatmaps.
//
// Neither search ever outputs <pad> or <s> (their log-probabilities are treated as -inf; the
// scores of the other tokens stay the model's log-probabilities), so every output token has its
// row of attention weights.
//
// Beam search keeps `beam` hypotheses per sentence (batched: B * beam rows through the
// decoder), extends each with every token, keeps the best `beam` that did not end; a hypothesis
// ending in </s> is finished with the length-normalized score  log P / length^alpha  (length
// counts </s>). A sentence stops when it has `beam` finished hypotheses or reaches its maximum
// length (max_len_ratio * source length + max_len_extra), where the open ones are finished as
// they are. Ties go to the lower beam, then the lower token id, so beam 1 is exactly greedy.
#pragma once

#include <vector>

#include "models/seq2seq/model.h"

namespace attn::models {

struct SearchOptions {
  int64_t beam = 1;  // 1: greedy
  int64_t n_best = 1;
  double length_penalty = 1.0;  // alpha
  double max_len_ratio = 2.0;
  int64_t max_len_extra = 5;
  bool keep_attention = true;
};

struct Hypothesis {
  std::vector<int64_t> tokens;             // without </s>
  double log_prob = 0.0;                   // sum over the output tokens, </s> included
  double score = 0.0;                      // length-normalized log_prob
  bool finished = false;                   // ended with </s> (false: cut at the maximum length)
  std::vector<std::vector<float>> attention;  // one row of source weights per output token (+ </s>)
};

// src (B, S), src_len (B) on the model's device; returns up to n_best hypotheses per sentence,
// best first. The model should be in eval mode (no dropout).
std::vector<std::vector<Hypothesis>> greedy_search(const Seq2Seq& model, const Tensor& src, const Tensor& src_len,
                                                   const SearchOptions& opt);
std::vector<std::vector<Hypothesis>> beam_search(const Seq2Seq& model, const Tensor& src, const Tensor& src_len,
                                                 const SearchOptions& opt);
// greedy_search when opt.beam == 1, else beam_search.
std::vector<std::vector<Hypothesis>> search(const Seq2Seq& model, const Tensor& src, const Tensor& src_len,
                                            const SearchOptions& opt);

}  // namespace attn::models
