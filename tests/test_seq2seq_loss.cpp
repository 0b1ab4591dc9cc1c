// Seq2Seq::loss against a loop written out by hand: each sentence alone, one decoder step at a
// time (step_features, classify, log_softmax), feeding the reference token where the row is
// teacher-forced and its own argmax where it is not. The batched loss takes other paths (Luong's
// one-pass teacher-forced features for the forced rows, one classifier over all steps, padded
// rows), so a mix-up of forced and free rows, of rows, or of steps shows here: the loss and every
// parameter's gradient must agree.
#include <gtest/gtest.h>

#include <random>

#include "models/data/vocab.h"
#include "models/seq2seq/model.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

using models::AttentionKind;

struct Case {
  AttentionKind attention;
  bool input_feeding;
  int64_t layers;
  bool bidirectional;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << models::attention_name(c.attention) << (c.input_feeding ? " + input feeding" : "") << ", " << c.layers
      << " layer(s)" << (c.bidirectional ? ", bidirectional" : "");
}

class Seq2SeqLoss : public ::testing::TestWithParam<Case> {};

TEST_P(Seq2SeqLoss, MixedTeacherForcingEqualsEachSentenceDecodedByHand) {
  const Case c = GetParam();
  constexpr int64_t kPad = data::Vocab::kPad, kBos = data::Vocab::kBos, kEos = data::Vocab::kEos;
  models::ModelConfig cfg;
  cfg.attention = c.attention;
  cfg.input_feeding = c.input_feeding;
  cfg.layers = c.layers;
  cfg.bidirectional = c.bidirectional;
  cfg.hidden = 16;
  cfg.dropout = 0.0;
  cfg.src_vocab_size = 23;
  cfg.tgt_vocab_size = 19;
  Generator g(101 + static_cast<uint64_t>(c.attention));
  models::Seq2Seq model(cfg, g);
  // Scaled-up weights: the argmax a free row feeds back is then far from any tie.
  {
    NoGradGuard ng;
    for (auto& [name, p] : model.named_parameters()) p.mul_(3.0);
  }

  // B = 5 sentences, padded; rows 1 and 3 feed their own predictions.
  const std::vector<int64_t> src_len = {6, 3, 5, 1, 4}, tgt_words = {5, 2, 6, 3, 1};
  const std::vector<bool> force = {true, false, true, false, true};
  const int64_t B = 5, S = 6, T = 7;
  std::mt19937_64 rng(7);
  std::vector<int64_t> src(B * S, kPad), tin(B * T, kPad), tout(B * T, kPad), tlen;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < src_len[b]; ++s) src[b * S + s] = data::Vocab::kNumSpecials + static_cast<int64_t>(rng() % 19);
    tin[b * T] = kBos;
    for (int64_t t = 0; t < tgt_words[b]; ++t) {
      const int64_t w = data::Vocab::kNumSpecials + static_cast<int64_t>(rng() % 15);
      tin[b * T + t + 1] = w;
      tout[b * T + t] = w;
    }
    tout[b * T + tgt_words[b]] = kEos;
    tlen.push_back(tgt_words[b] + 1);
  }
  const Tensor src_t = from_vector(src, Shape{B, S}), srclen_t = from_vector(src_len, Shape{B});
  const Tensor tin_t = from_vector(tin, Shape{B, T}), tout_t = from_vector(tout, Shape{B, T});
  const Tensor tlen_t = from_vector(tlen, Shape{B});

  auto gradients = [&] {
    std::vector<Tensor> out;
    for (auto& [name, p] : model.named_parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : zeros_like(p));
    return out;
  };

  model.zero_grad();
  const models::Seq2Seq::Loss batched = model.loss(src_t, srclen_t, tin_t, tout_t, tlen_t, force);
  batched.total.backward();
  const std::vector<Tensor> batched_grads = gradients();
  EXPECT_EQ(batched.tokens, 5 + 2 + 6 + 3 + 1 + B);

  // By hand: each row alone, trimmed to its own lengths.
  model.zero_grad();
  Tensor total;
  for (int64_t b = 0; b < B; ++b) {
    const Tensor row_src = src_t.narrow(0, b, 1).narrow(1, 0, src_len[b]).contiguous();
    models::EncoderOutput enc = model.encoder->forward(row_src, from_vector<int64_t>({src_len[b]}));
    models::DecoderState st = model.decoder->init(enc);
    int64_t input = kBos;
    for (int64_t t = 0; t < tlen[b]; ++t) {
      models::StepOutput o = model.decoder->step_features(from_vector<int64_t>({input}), st);
      const Tensor logp = log_softmax(model.decoder->classify(o.logits), 1);  // (1, V)
      const Tensor token_loss = neg(logp.select(1, tout[b * T + t]).select(0, 0));
      total = total.defined() ? total + token_loss : token_loss;
      int64_t predicted;
      {
        NoGradGuard ng;
        predicted = argmax(logp, 1).item<int64_t>();
      }
      if (t + 1 < tlen[b]) input = force[b] ? tin[b * T + t + 1] : predicted;
    }
  }
  total.backward();
  const std::vector<Tensor> by_hand_grads = gradients();

  EXPECT_NEAR(batched.total.item<double>(), total.item<double>(), 1e-5 * std::abs(total.item<double>()));
  size_t k = 0;
  for (auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(all_close(batched_grads[k], Ref::of(by_hand_grads[k]), 2e-4, 2e-5)) << name;
    ++k;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Decoders, Seq2SeqLoss,
    ::testing::Values(Case{AttentionKind::Bahdanau, false, 1, false}, Case{AttentionKind::Dot, false, 1, false},
                      Case{AttentionKind::General, false, 2, true}, Case{AttentionKind::Concat, false, 1, true},
                      Case{AttentionKind::Concat, true, 2, false}),
    [](const auto& info) {
      return models::attention_name(info.param.attention) + (info.param.input_feeding ? "_input_feeding" : "") +
             (info.param.layers > 1 ? "_2layers" : "") + (info.param.bidirectional ? "_bidirectional" : "");
    });

}  // namespace
}  // namespace attn::test
