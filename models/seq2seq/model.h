// The translators of the article (../shared/seed): an LSTM encoder and a Bahdanau or a Luong
// attention decoder, batched over padded sentences, with PyTorch-style parameter names so that
// a checkpoint's tensors load into the equivalent torch modules (bench/torch_seq2seq.py --check).
//
//   encoder.embedding.weight (Vs, H)          encoder.lstm.weight_ih_l0 ... (nn.LSTM(H, H, L))
//   Bahdanau: decoder.embedding.weight (Vt, H), decoder.fc_hidden.weight (H, H),
//             decoder.fc_encoder.weight (H, H), decoder.weight (1, H) (the "v" of the score),
//             decoder.lstm.* (nn.LSTM(2H, H, L), input [embedding; context]),
//             decoder.classifier.{weight (Vt, H), bias}
//   Luong:    decoder.embedding.weight, decoder.lstm.* (nn.LSTM(H, H, L), or 2H with input
//             feeding), decoder.attention.fc.weight (H, H) (general, concat),
//             decoder.attention.weight (1, H) (concat), decoder.classifier.{weight (Vt, 2H), bias}
//
// Choices where the article is silent: a bidirectional encoder sums its two directions (outputs
// and final states) so the decoder keeps size H; the decoder starts from the encoder's final
// (h, c) of every layer; with several layers, Bahdanau's query is the top layer's h_{t-1};
// Luong "input feeding" feeds the previous step's context vector next to the embedding (Luong
// only: Bahdanau's decoder feeds the context anyway); dropout applies to the embeddings and
// between LSTM layers; the training loss is the batch's summed token loss divided by its number
// of target tokens (the article steps once per sentence on its sum). An independent PyTorch
// version of these equations gives the same loss and gradients (tests/test_model_parity.cpp,
// bench/torch_model_parity.py).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/nn/layers.h"
#include "core/nn/lstm.h"

namespace attn::models {

enum class AttentionKind { Bahdanau, Dot, General, Concat };
AttentionKind parse_attention(const std::string& name);  // ValueError on an unknown name
std::string attention_name(AttentionKind kind);

struct ModelConfig {
  AttentionKind attention = AttentionKind::Concat;
  int64_t hidden = 256;
  int64_t layers = 1;
  bool bidirectional = false;
  double dropout = 0.1;
  bool input_feeding = false;  // Luong only
  int64_t src_vocab_size = 0, tgt_vocab_size = 0;
  int64_t max_src_len = 100;   // longer inputs are refused by translate

  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j, const std::string& what);  // IOError on bad fields
};

struct EncoderOutput {
  Tensor outputs;  // (B, S, H), zero at padded positions
  Tensor h, c;     // (L, B, H)
  Tensor lengths;  // (B) int64
};

class Encoder : public nn::Module {
 public:
  Encoder(const ModelConfig& cfg, Generator& gen);
  EncoderOutput forward(const Tensor& src, const Tensor& src_len) const;
  nn::Embedding* embedding;
  nn::LSTM* lstm;

 private:
  ModelConfig cfg_;
  Generator* gen_;
};

// Per-sentence decoder state between steps; every tensor has the batch as dim 0 (or dim 1 for
// h, c), so beams and teacher-forcing groups can be re-indexed with select_rows().
struct DecoderState {
  Tensor h, c;        // (L, B, H)
  Tensor feed;        // (B, H): the previous context (Luong input feeding), else undefined
  AdditiveKeys keys;  // (B, S, H): the encoder side of additive scores, computed once
  Tensor memory;      // (B, S, H): encoder outputs
  Tensor lengths;     // (B)
  DecoderState select_rows(const Tensor& index) const;  // index (B') int64 on the device
};

struct StepOutput {
  Tensor logits;   // (B, V) (from step_features: the classifier's input (B, F) instead)
  Tensor weights;  // (B, S) attention weights
};

class Decoder : public nn::Module {
 public:
  virtual ~Decoder() = default;
  virtual DecoderState init(const EncoderOutput& enc) const = 0;
  // One step for every row: input tokens (B) int64; updates `state`. The logits are
  // classify(features) of step_features: training keeps the features of all steps and runs the
  // classifier once over them, which turns T small weight-gradient GEMMs into one.
  virtual StepOutput step_features(const Tensor& input, DecoderState& state) const = 0;
  virtual Tensor classify(const Tensor& features) const = 0;
  virtual const nn::Linear& classifier_layer() const = 0;
  // The classifier prepared once for the steps of a batch that need their logits at every step
  // (searches; training rows that feed their own predictions): see prepare_linear. The model's
  // weights must not change while it is in use.
  PreparedLinear prepare_classifier() const {
    const nn::Linear& fc = classifier_layer();
    return prepare_linear(fc.weight, fc.bias);
  }
  Tensor classify(const Tensor& features, const PreparedLinear& classifier) const;
  StepOutput step(const Tensor& input, DecoderState& state, const PreparedLinear& classifier) const {
    StepOutput o = step_features(input, state);
    o.logits = classify(o.logits, classifier);
    return o;
  }
  // Teacher forcing over all T steps at once where the model allows it (Luong without input
  // feeding: one LSTM pass, multi-query attention): the classifier's input (B, T, F).
  virtual Tensor teacher_forced_features(const Tensor& tgt_in, const Tensor& tgt_len, const DecoderState& state) const {
    return Tensor();
  }
  virtual bool has_teacher_forced() const { return false; }
};

class BahdanauDecoder : public Decoder {
 public:
  BahdanauDecoder(const ModelConfig& cfg, Generator& gen);
  DecoderState init(const EncoderOutput& enc) const override;
  StepOutput step_features(const Tensor& input, DecoderState& state) const override;
  Tensor classify(const Tensor& features) const override;
  const nn::Linear& classifier_layer() const override { return *classifier; }
  nn::Embedding* embedding;
  nn::Linear *fc_hidden, *fc_encoder, *classifier;
  Tensor weight;  // (1, H)
  nn::LSTM* lstm;

 private:
  ModelConfig cfg_;
  Generator* gen_;
};

class LuongAttention : public nn::Module {
 public:
  LuongAttention(AttentionKind kind, int64_t hidden, Generator& gen);
  Tensor keys(const Tensor& memory) const;  // concat: fc(memory); otherwise undefined
  AttentionOutput forward(const Tensor& query, const DecoderState& state) const;  // query (B, H) or (B, T, H)
  AttentionKind kind;
  nn::Linear* fc = nullptr;
  Tensor weight;  // (1, H), concat only
};

class LuongDecoder : public Decoder {
 public:
  LuongDecoder(const ModelConfig& cfg, Generator& gen);
  DecoderState init(const EncoderOutput& enc) const override;
  StepOutput step_features(const Tensor& input, DecoderState& state) const override;
  Tensor classify(const Tensor& features) const override;
  const nn::Linear& classifier_layer() const override { return *classifier; }
  Tensor teacher_forced_features(const Tensor& tgt_in, const Tensor& tgt_len, const DecoderState& state) const override;
  bool has_teacher_forced() const override { return !cfg_.input_feeding; }
  nn::Embedding* embedding;
  nn::LSTM* lstm;
  LuongAttention* attention;
  nn::Linear* classifier;

 private:
  ModelConfig cfg_;
  Generator* gen_;
};

class Seq2Seq : public nn::Module {
 public:
  Seq2Seq(const ModelConfig& cfg, Generator& gen);
  const ModelConfig& config() const { return cfg_; }
  Encoder* encoder;
  Decoder* decoder;

  struct Loss {
    Tensor total;        // sum of token losses (scalar)
    int64_t tokens = 0;  // predicted target tokens (non-pad)
  };
  // Training loss of a batch: tgt_in / tgt_out (B, T) as data::Batch makes them. Rows with
  // teacher_force[b] feed the reference tokens, the others their own previous prediction.
  Loss loss(const Tensor& src, const Tensor& src_len, const Tensor& tgt_in, const Tensor& tgt_out,
            const Tensor& tgt_len, const std::vector<bool>& teacher_force, double label_smoothing = 0.0) const;

 private:
  // Summed loss of the classifier over features (B, T, F) at the non-pad targets (B, T). With
  // `logits` (B, T, V) computed already (without a graph), they are reused, not recomputed.
  Tensor classify_targets(const Tensor& features, const Tensor& targets, double label_smoothing,
                          const Tensor& logits = Tensor()) const;

  ModelConfig cfg_;
  Generator* gen_;
};

}  // namespace attn::models
