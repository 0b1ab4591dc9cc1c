#include "models/seq2seq/search.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "models/data/vocab.h"

namespace attn::models {

namespace {

using data::Vocab;

// The first id search may output: <pad> (0) and <s> (1) never are (Vocab::decode would drop them
// from the text but their attention rows would stay); </s> (2) ends a hypothesis.
constexpr int64_t kFirstOutput = Vocab::kBos + 1;
static_assert(Vocab::kPad < kFirstOutput && Vocab::kEos == kFirstOutput);

std::vector<int64_t> max_lengths(const Tensor& src_len, const SearchOptions& opt) {
  // (at most 1000 times the source: a ratio of 1e30 overflowed the limit to a negative length)
  ATTN_CHECK(std::isfinite(opt.max_len_ratio) && opt.max_len_ratio > 0 && opt.max_len_ratio <= 1000 &&
                 opt.max_len_extra >= 0 && opt.max_len_extra <= 100000,
             ValueError,
             "search: the output length limit needs 0 < max_len_ratio <= 1000 and 0 <= max_len_extra <= 100000, got "
             "{} and {}",
             opt.max_len_ratio, opt.max_len_extra);
  ATTN_CHECK(std::isfinite(opt.length_penalty) && opt.length_penalty >= 0, ValueError,
             "search: the length penalty must be a finite number >= 0, got {}", opt.length_penalty);
  std::vector<int64_t> out;
  for (int64_t l : src_len.to_vector<int64_t>())
    out.push_back(static_cast<int64_t>(std::ceil(opt.max_len_ratio * static_cast<double>(l))) + opt.max_len_extra);
  return out;
}

double normalized(double log_prob, size_t length, double alpha) {
  return alpha == 0.0 ? log_prob : log_prob / std::pow(static_cast<double>(length), alpha);
}

// Rows of a (R, C) float tensor as host vectors.
std::vector<std::vector<float>> host_rows(const Tensor& t) {
  const int64_t R = t.size(0), C = t.size(1);
  std::vector<float> v = t.to_vector<float>();
  std::vector<std::vector<float>> rows(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) rows[static_cast<size_t>(r)].assign(v.begin() + r * C, v.begin() + (r + 1) * C);
  return rows;
}

}  // namespace

std::vector<std::vector<Hypothesis>> greedy_search(const Seq2Seq& model, const Tensor& src, const Tensor& src_len,
                                                   const SearchOptions& opt) {
  NoGradGuard no_grad;
  const int64_t B = src.size(0);
  const std::vector<int64_t> limit = max_lengths(src_len, opt);
  const int64_t steps = *std::max_element(limit.begin(), limit.end());
  EncoderOutput enc = model.encoder->forward(src, src_len);
  DecoderState state = model.decoder->init(enc);
  const PreparedLinear classifier = model.decoder->prepare_classifier();  // once for all steps
  std::vector<Hypothesis> hyp(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  Tensor input = full(Shape{B}, static_cast<double>(Vocab::kBos), {.dtype = DType::Int64, .device = src.device()});
  int64_t open = B;
  for (int64_t t = 0; t < steps && open > 0; ++t) {
    StepOutput o = model.decoder->step(input, state, classifier);
    Tensor logp = log_softmax(o.logits, 1);
    // <pad> and <s> are never outputs (ids 0 and 1: the pick is among ids >= kFirstOutput). The
    // scores stay the model's log-probabilities.
    ValuesIndices best = max(logp.narrow(1, kFirstOutput, logp.size(1) - kFirstOutput), 1);  // a view: no copy
    std::vector<int64_t> tok = best.indices.to_vector<int64_t>();
    for (int64_t& id : tok) id += kFirstOutput;
    const std::vector<double> lp = best.values.to_vector<double>();
    const std::vector<std::vector<float>> w = opt.keep_attention ? host_rows(o.weights) : std::vector<std::vector<float>>();
    for (int64_t b = 0; b < B; ++b) {
      Hypothesis& h = hyp[static_cast<size_t>(b)];
      if (done[static_cast<size_t>(b)]) continue;
      h.log_prob += lp[static_cast<size_t>(b)];
      if (opt.keep_attention) h.attention.push_back(w[static_cast<size_t>(b)]);
      if (tok[static_cast<size_t>(b)] == Vocab::kEos) {
        h.finished = true;
      } else {
        h.tokens.push_back(tok[static_cast<size_t>(b)]);
      }
      if (h.finished || t + 1 >= limit[static_cast<size_t>(b)]) {
        done[static_cast<size_t>(b)] = true;
        --open;
        h.score = normalized(h.log_prob, h.tokens.size() + (h.finished ? 1 : 0), opt.length_penalty);
      }
    }
    input = from_vector(tok, Shape{B}).to(src.device());
  }
  std::vector<std::vector<Hypothesis>> out;
  for (Hypothesis& h : hyp) out.push_back({std::move(h)});
  return out;
}

std::vector<std::vector<Hypothesis>> beam_search(const Seq2Seq& model, const Tensor& src, const Tensor& src_len,
                                                 const SearchOptions& opt) {
  NoGradGuard no_grad;
  const int64_t B = src.size(0), K = std::max<int64_t>(1, opt.beam), V = model.config().tgt_vocab_size;
  const Device dev = src.device();
  const std::vector<int64_t> limit = max_lengths(src_len, opt);
  const int64_t steps = *std::max_element(limit.begin(), limit.end());
  EncoderOutput enc = model.encoder->forward(src, src_len);
  // K rows per sentence: row b * K + k is beam k of sentence b.
  std::vector<int64_t> rep;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) rep.push_back(b);
  DecoderState state = model.decoder->init(enc).select_rows(from_vector(rep, Shape{B * K}).to(dev));
  const PreparedLinear classifier = model.decoder->prepare_classifier();  // once for all steps

  struct Beam {
    std::vector<int64_t> tokens;
    std::vector<std::vector<float>> attention;
    double log_prob = 0.0;
    bool alive = false;
  };
  std::vector<std::vector<Beam>> beams(static_cast<size_t>(B), std::vector<Beam>(static_cast<size_t>(K)));
  for (auto& bs : beams) bs[0].alive = true;  // one start hypothesis, not K copies of it
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  std::vector<int64_t> input_host(static_cast<size_t>(B * K), Vocab::kBos);
  Tensor input = from_vector(input_host, Shape{B * K}).to(dev);

  for (int64_t t = 0; t < steps; ++t) {
    StepOutput o = model.decoder->step(input, state, classifier);
    const std::vector<float> logp = log_softmax(o.logits, 1).to_vector<float>();  // (B*K, V)
    const std::vector<std::vector<float>> w = opt.keep_attention ? host_rows(o.weights) : std::vector<std::vector<float>>();
    std::vector<int64_t> parent(static_cast<size_t>(B * K)), next(static_cast<size_t>(B * K), Vocab::kEos);
    std::vector<std::vector<Beam>> new_beams(static_cast<size_t>(B), std::vector<Beam>(static_cast<size_t>(K)));
    bool any_open = false;
    for (int64_t b = 0; b < B; ++b) {
      auto& bs = beams[static_cast<size_t>(b)];
      for (int64_t k = 0; k < K; ++k) parent[static_cast<size_t>(b * K + k)] = b * K;  // harmless default
      if (done[static_cast<size_t>(b)]) continue;
      // candidates: (score, beam, token); the best 2K suffice (at most K of them end here)
      struct Cand {
        double score;
        int64_t beam, token;
      };
      std::vector<Cand> cands;
      for (int64_t k = 0; k < K; ++k) {
        if (!bs[static_cast<size_t>(k)].alive) continue;
        const float* row = logp.data() + (b * K + k) * V;
        for (int64_t v = kFirstOutput; v < V; ++v) cands.push_back({bs[static_cast<size_t>(k)].log_prob + row[v], k, v});
      }
      const size_t keep = std::min(cands.size(), static_cast<size_t>(2 * K));
      std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep), cands.end(),
                        [](const Cand& x, const Cand& y) {
                          if (x.score != y.score) return x.score > y.score;
                          if (x.beam != y.beam) return x.beam < y.beam;
                          return x.token < y.token;
                        });
      const bool last = t + 1 >= limit[static_cast<size_t>(b)];
      int64_t filled = 0;
      for (size_t i = 0; i < keep && filled < K && static_cast<int64_t>(finished[static_cast<size_t>(b)].size()) < K; ++i) {
        const Cand& c = cands[i];
        const Beam& from = bs[static_cast<size_t>(c.beam)];
        Beam nb{from.tokens, from.attention, c.score, true};
        if (opt.keep_attention) nb.attention.push_back(w[static_cast<size_t>(b * K + c.beam)]);
        if (c.token == Vocab::kEos || last) {
          Hypothesis h;
          h.tokens = nb.tokens;
          if (c.token != Vocab::kEos) h.tokens.push_back(c.token);
          h.log_prob = c.score;
          h.finished = c.token == Vocab::kEos;
          h.score = normalized(c.score, nb.tokens.size() + 1, opt.length_penalty);
          h.attention = std::move(nb.attention);
          finished[static_cast<size_t>(b)].push_back(std::move(h));
          continue;
        }
        nb.tokens.push_back(c.token);
        const int64_t row = b * K + filled;
        parent[static_cast<size_t>(row)] = b * K + c.beam;
        next[static_cast<size_t>(row)] = c.token;
        new_beams[static_cast<size_t>(b)][static_cast<size_t>(filled)] = std::move(nb);
        ++filled;
      }
      if (last || static_cast<int64_t>(finished[static_cast<size_t>(b)].size()) >= K || filled == 0) {
        done[static_cast<size_t>(b)] = true;
      } else {
        any_open = true;
      }
    }
    beams = std::move(new_beams);
    if (!any_open) break;
    state = state.select_rows(from_vector(parent, Shape{B * K}).to(dev));
    input = from_vector(next, Shape{B * K}).to(dev);
  }
  std::vector<std::vector<Hypothesis>> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    auto& f = finished[static_cast<size_t>(b)];
    std::stable_sort(f.begin(), f.end(), [](const Hypothesis& x, const Hypothesis& y) { return x.score > y.score; });
    for (size_t i = 0; i < f.size() && static_cast<int64_t>(i) < opt.n_best; ++i) out[static_cast<size_t>(b)].push_back(std::move(f[i]));
  }
  return out;
}

std::vector<std::vector<Hypothesis>> search(const Seq2Seq& model, const Tensor& src, const Tensor& src_len,
                                            const SearchOptions& opt) {
  return opt.beam <= 1 ? greedy_search(model, src, src_len, opt) : beam_search(model, src, src_len, opt);
}

}  // namespace attn::models
