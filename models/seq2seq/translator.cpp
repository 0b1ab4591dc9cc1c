#include "models/seq2seq/translator.h"

#include <algorithm>

#include "models/data/tokenizer.h"
#include "models/data/unicode.h"

namespace attn::models {

Translator::Translator(const Seq2Seq& model, const data::Vocab& src_vocab, const data::Vocab& tgt_vocab)
    : model_(model), src_vocab_(src_vocab), tgt_vocab_(tgt_vocab) {}

std::vector<Translation> Translator::translate(const std::vector<std::string>& sentences, const SearchOptions& opt,
                                               int64_t batch_size, const std::vector<std::string>& where) const {
  ATTN_CHECK(batch_size > 0, ValueError, "translate: the batch size must be positive, got {}", batch_size);
  ATTN_CHECK(opt.beam > 0 && opt.n_best > 0, ValueError, "translate: beam and n_best must be positive, got {} and {}",
             opt.beam, opt.n_best);
  ATTN_CHECK(where.empty() || where.size() == sentences.size(), ValueError,
             "translate: {} sentence locations for {} sentences", where.size(), sentences.size());
  const Device dev = model_.parameters().front().device();
  const int64_t max_len = model_.config().max_src_len;
  std::vector<Translation> out(sentences.size());
  std::vector<std::vector<int64_t>> ids(sentences.size());
  std::vector<size_t> order;  // the sentences to decode: those with a word
  auto name = [&](size_t i) { return where.empty() ? fmt::format("sentence {}", i + 1) : where[i]; };
  for (size_t i = 0; i < sentences.size(); ++i) {
    Translation& t = out[i];
    t.source = sentences[i];
    if (auto bad = data::check_utf8(sentences[i]))
      throw ValueError(fmt::format("{}: invalid UTF-8 at byte {}: {}", name(i), bad->offset + 1, bad->what));
    std::vector<std::string> toks = data::tokenize(sentences[i]);
    if (toks.empty()) {  // an empty line translates to an empty line, as in Marian: nothing to decode
      t.outputs.emplace_back();
      continue;
    }
    ids[i] = src_vocab_.encode(toks, false, true, &t.unknown);
    ATTN_CHECK(static_cast<int64_t>(ids[i].size()) <= max_len, ValueError,
               "{}: the source sentence has {} tokens (with </s>); this model accepts at most {}", name(i),
               ids[i].size(), max_len);
    toks.push_back("</s>");
    t.source_tokens = std::move(toks);
    order.push_back(i);
  }
  // Batches of similar length, then back to the input order.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a].size() < ids[b].size(); });
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    const int64_t B = static_cast<int64_t>(end - start);
    int64_t S = 0;
    for (size_t k = start; k < end; ++k) S = std::max<int64_t>(S, static_cast<int64_t>(ids[order[k]].size()));
    std::vector<int64_t> src(static_cast<size_t>(B * S), data::Vocab::kPad), len;
    for (size_t k = start; k < end; ++k) {
      const auto& v = ids[order[k]];
      std::copy(v.begin(), v.end(), src.begin() + static_cast<std::ptrdiff_t>((k - start) * static_cast<size_t>(S)));
      len.push_back(static_cast<int64_t>(v.size()));
    }
    std::vector<std::vector<Hypothesis>> hyps =
        search(model_, from_vector(src, Shape{B, S}).to(dev), from_vector(len, Shape{B}).to(dev), opt);
    for (size_t k = start; k < end; ++k) {
      Translation& t = out[order[k]];
      t.hypotheses = std::move(hyps[k - start]);
      for (Hypothesis& h : t.hypotheses)  // rows were as long as the batch's longest source
        for (auto& row : h.attention) row.resize(t.source_tokens.size());
      for (const Hypothesis& h : t.hypotheses) {
        std::vector<std::string> toks = tgt_vocab_.decode(h.tokens);
        t.outputs.push_back(data::detokenize(toks));
        if (h.finished) toks.push_back("</s>");
        t.output_tokens.push_back(std::move(toks));
      }
    }
  }
  return out;
}

LossResult evaluate_loss(const Seq2Seq& model, const std::vector<data::Example>& examples, int64_t batch_size) {
  NoGradGuard no_grad;
  LossResult r;
  if (examples.empty()) return r;
  const Device dev = model.parameters().front().device();
  data::Batcher batcher(examples, {.batch_size = batch_size, .seed = 0, .bucketing = true, .shuffle = false});
  double total = 0.0;
  for (const auto& index : batcher.epoch_plan(0)) {
    data::Batch b = batcher.make_batch(index);
    std::vector<bool> force(static_cast<size_t>(b.size()), true);
    Seq2Seq::Loss l = model.loss(b.src.to(dev), b.src_len.to(dev), b.tgt_in.to(dev), b.tgt_out.to(dev),
                                 b.tgt_len.to(dev), force);
    total += l.total.item<double>();
    r.tokens += l.tokens;
    r.sentences += b.size();
  }
  r.loss = total / static_cast<double>(std::max<int64_t>(r.tokens, 1));
  return r;
}

}  // namespace attn::models
