#include "models/seq2seq/model.h"

#include <cmath>

#include "core/io/json_integer.h"
#include "core/ops/fused.h"
#include "core/ops/lengths.h"
#include "core/profiler.h"

namespace attn::models {

AttentionKind parse_attention(const std::string& name) {
  if (name == "bahdanau") return AttentionKind::Bahdanau;
  if (name == "dot") return AttentionKind::Dot;
  if (name == "general") return AttentionKind::General;
  if (name == "concat") return AttentionKind::Concat;
  throw ValueError(fmt::format("unknown attention '{}' (bahdanau, dot, general or concat)", name));
}

std::string attention_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::Bahdanau: return "bahdanau";
    case AttentionKind::Dot: return "dot";
    case AttentionKind::General: return "general";
    case AttentionKind::Concat: return "concat";
  }
  return "?";
}

nlohmann::json ModelConfig::to_json() const {
  return {{"format", "attn-seq2seq"},
          {"version", 1},
          {"attention", attention_name(attention)},
          {"hidden", hidden},
          {"layers", layers},
          {"bidirectional", bidirectional},
          {"dropout", dropout},
          {"input_feeding", input_feeding},
          {"src_vocab_size", src_vocab_size},
          {"tgt_vocab_size", tgt_vocab_size},
          {"max_src_len", max_src_len}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& what) {
  ModelConfig c;
  try {
    ATTN_CHECK(j.value("format", "") == "attn-seq2seq", IOError, "{}: not an attn-seq2seq config (format '{}')", what,
               j.value("format", ""));
    c.attention = parse_attention(j.at("attention").get<std::string>());
    c.hidden = io::json_integer<int64_t>(j, "hidden");
    c.layers = io::json_integer<int64_t>(j, "layers");
    c.bidirectional = j.at("bidirectional").get<bool>();
    c.dropout = j.at("dropout").get<double>();
    c.input_feeding = j.at("input_feeding").get<bool>();
    c.src_vocab_size = io::json_integer<int64_t>(j, "src_vocab_size");
    c.tgt_vocab_size = io::json_integer<int64_t>(j, "tgt_vocab_size");
    c.max_src_len = io::json_integer<int64_t>(j, "max_src_len");
  } catch (const nlohmann::json::exception& e) {
    throw IOError(fmt::format("{}: bad model config: {}", what, e.what()));
  } catch (const ValueError& e) {
    throw IOError(fmt::format("{}: bad model config: {}", what, e.what()));
  }
  ATTN_CHECK(c.hidden > 0 && c.layers > 0 && c.src_vocab_size > 4 && c.tgt_vocab_size > 4 && c.max_src_len > 0 &&
                 c.dropout >= 0 && c.dropout < 1,
             IOError,
             "{}: model config out of range: hidden {}, layers {}, source / target vocabulary {} / {} (each needs more "
             "than the 4 special tokens), max_src_len {}, dropout {}",
             what, c.hidden, c.layers, c.src_vocab_size, c.tgt_vocab_size, c.max_src_len, c.dropout);
  return c;
}

// ------------------------------------------------------------------ encoder

Encoder::Encoder(const ModelConfig& cfg, Generator& gen) : cfg_(cfg), gen_(&gen) {
  embedding = register_module("embedding", std::make_unique<nn::Embedding>(cfg.src_vocab_size, cfg.hidden, -1, gen));
  lstm = register_module("lstm", std::make_unique<nn::LSTM>(cfg.hidden, cfg.hidden, cfg.layers, cfg.bidirectional,
                                                            cfg.layers > 1 ? cfg.dropout : 0.0, gen));
}

EncoderOutput Encoder::forward(const Tensor& src, const Tensor& src_len) const {
  Tensor emb = dropout(embedding->forward(src), cfg_.dropout, is_training(), *gen_);
  nn::LstmOutput o = lstm->forward(emb, src_len);
  if (!cfg_.bidirectional) return {o.output, o.h_n, o.c_n, src_len};
  const int64_t H = cfg_.hidden, L = cfg_.layers, B = src.size(0);
  Tensor out = o.output.narrow(2, 0, H) + o.output.narrow(2, H, H);
  Tensor h = sum(o.h_n.reshape(Shape{L, 2, B, H}), Shape{1});
  Tensor c = sum(o.c_n.reshape(Shape{L, 2, B, H}), Shape{1});
  return {out, h, c, src_len};
}

// ------------------------------------------------------------------ decoder state

DecoderState DecoderState::select_rows(const Tensor& index) const {
  DecoderState s;
  auto rows = [&](const Tensor& t) { return t.defined() ? index_rows(t, index) : Tensor(); };
  s.h = index_rows(h.transpose(0, 1), index).transpose(0, 1);  // (L, B', H)
  s.c = index_rows(c.transpose(0, 1), index).transpose(0, 1);
  s.feed = rows(feed);
  s.keys = {rows(keys.keys), rows(keys.exp2), 0};
  if (s.keys.keys.defined()) s.keys.version = s.keys.keys.version();
  s.memory = rows(memory);
  {
    NoGradGuard g;
    s.lengths = index_rows(lengths, index);
  }
  return s;
}

namespace {

// The lengths of a one-step LSTM call. Made here, so known to be valid: the LSTM need not read
// them back to check (on a GPU, a synchronizing copy at every decoder step).
Tensor ones_lengths(const Tensor& like, int64_t B) {
  Tensor ones = full(Shape{B}, 1.0, {.dtype = DType::Int64, .device = like.device()});
  note_checked_lengths(ones, 1);
  return ones;
}

Tensor v_of(const Tensor& weight) { return weight.reshape(Shape{weight.size(1)}); }  // (1, H) -> (H)

Tensor init_v(int64_t H, Generator& gen) {
  const double k = 1.0 / std::sqrt(static_cast<double>(H));
  return uniform(Shape{1, H}, -k, k, gen);
}

}  // namespace

// ------------------------------------------------------------------ Bahdanau

BahdanauDecoder::BahdanauDecoder(const ModelConfig& cfg, Generator& gen) : cfg_(cfg), gen_(&gen) {
  const int64_t H = cfg.hidden;
  embedding = register_module("embedding", std::make_unique<nn::Embedding>(cfg.tgt_vocab_size, H, -1, gen));
  fc_hidden = register_module("fc_hidden", std::make_unique<nn::Linear>(H, H, false, gen));
  fc_encoder = register_module("fc_encoder", std::make_unique<nn::Linear>(H, H, false, gen));
  weight = init_v(H, gen);
  register_parameter("weight", &weight);
  lstm = register_module("lstm", std::make_unique<nn::LSTM>(2 * H, H, cfg.layers, false, cfg.layers > 1 ? cfg.dropout : 0.0, gen));
  classifier = register_module("classifier", std::make_unique<nn::Linear>(H, cfg.tgt_vocab_size, true, gen));
}

DecoderState BahdanauDecoder::init(const EncoderOutput& enc) const {
  DecoderState s;
  s.h = enc.h;
  s.c = enc.c;
  s.memory = enc.outputs;
  s.lengths = enc.lengths;
  s.keys = prepare_additive_keys(fc_encoder->forward(enc.outputs));  // once per batch, not once per step
  return s;
}

Tensor Decoder::classify(const Tensor& features, const PreparedLinear& classifier) const {
  PROFILE_STAGE("classifier_loss");
  return linear(features, classifier);
}

Tensor BahdanauDecoder::classify(const Tensor& features) const {
  PROFILE_STAGE("classifier_loss");
  return classifier->forward(features);
}

StepOutput BahdanauDecoder::step_features(const Tensor& input, DecoderState& state) const {
  const int64_t B = input.size(0);
  AttentionOutput att;
  {
    PROFILE_STAGE("attention");
    Tensor query = fc_hidden->forward(state.h.select(0, cfg_.layers - 1));  // from h_{t-1}
    att = additive_attention(query, state.keys, v_of(weight), state.memory, state.lengths);
  }
  nn::LstmOutput o;
  {
    PROFILE_STAGE("decoder_cell");
    Tensor emb = dropout(embedding->forward(input), cfg_.dropout, is_training(), *gen_);  // (B, H)
    Tensor x = cat({emb, att.context}, 1).unsqueeze(1);                                  // (B, 1, 2H)
    o = lstm->forward(x, ones_lengths(input, B), state.h, state.c);
    state.h = o.h_n;
    state.c = o.c_n;
  }
  return {o.output.squeeze(1), att.weights};
}

// ------------------------------------------------------------------ Luong

LuongAttention::LuongAttention(AttentionKind k, int64_t H, Generator& gen) : kind(k) {
  if (k == AttentionKind::General || k == AttentionKind::Concat)
    fc = register_module("fc", std::make_unique<nn::Linear>(H, H, false, gen));
  if (k == AttentionKind::Concat) {
    weight = init_v(H, gen);
    register_parameter("weight", &weight);
  }
}

Tensor LuongAttention::keys(const Tensor& memory) const {
  return kind == AttentionKind::Concat ? fc->forward(memory) : Tensor();
}

AttentionOutput LuongAttention::forward(const Tensor& query, const DecoderState& state) const {
  switch (kind) {
    case AttentionKind::Dot: return dot_attention(query, state.memory, state.lengths);
    case AttentionKind::General: return dot_attention(fc->forward(query), state.memory, state.lengths);
    case AttentionKind::Concat:
      return additive_attention(fc->forward(query), state.keys, v_of(weight), state.memory, state.lengths);
    default: throw ValueError("LuongAttention: bahdanau is not a Luong score");
  }
}

LuongDecoder::LuongDecoder(const ModelConfig& cfg, Generator& gen) : cfg_(cfg), gen_(&gen) {
  const int64_t H = cfg.hidden;
  attention = register_module("attention", std::make_unique<LuongAttention>(cfg.attention, H, gen));
  embedding = register_module("embedding", std::make_unique<nn::Embedding>(cfg.tgt_vocab_size, H, -1, gen));
  lstm = register_module("lstm", std::make_unique<nn::LSTM>(cfg.input_feeding ? 2 * H : H, H, cfg.layers, false,
                                                            cfg.layers > 1 ? cfg.dropout : 0.0, gen));
  classifier = register_module("classifier", std::make_unique<nn::Linear>(2 * H, cfg.tgt_vocab_size, true, gen));
}

DecoderState LuongDecoder::init(const EncoderOutput& enc) const {
  DecoderState s;
  s.h = enc.h;
  s.c = enc.c;
  s.memory = enc.outputs;
  s.lengths = enc.lengths;
  if (Tensor keys = attention->keys(enc.outputs); keys.defined()) s.keys = prepare_additive_keys(keys);
  if (cfg_.input_feeding) s.feed = zeros(Shape{enc.outputs.size(0), cfg_.hidden}, {enc.outputs.dtype(), enc.outputs.device()});
  return s;
}

Tensor LuongDecoder::classify(const Tensor& features) const {
  PROFILE_STAGE("classifier_loss");
  return classifier->forward(features);
}

StepOutput LuongDecoder::step_features(const Tensor& input, DecoderState& state) const {
  const int64_t B = input.size(0);
  Tensor out;
  {
    PROFILE_STAGE("decoder_cell");
    Tensor x = dropout(embedding->forward(input), cfg_.dropout, is_training(), *gen_);  // (B, H)
    if (cfg_.input_feeding) x = cat({x, state.feed}, 1);
    nn::LstmOutput o = lstm->forward(x.unsqueeze(1), ones_lengths(input, B), state.h, state.c);
    state.h = o.h_n;
    state.c = o.c_n;
    out = o.output.squeeze(1);  // (B, H)
  }
  AttentionOutput att;
  {
    PROFILE_STAGE("attention");
    att = attention->forward(out, state);
    if (cfg_.input_feeding) state.feed = att.context;
  }
  return {cat({out, att.context}, 1), att.weights};
}

Tensor LuongDecoder::teacher_forced_features(const Tensor& tgt_in, const Tensor& tgt_len, const DecoderState& state) const {
  if (cfg_.input_feeding) return Tensor();
  nn::LstmOutput o;
  {
    PROFILE_STAGE("decoder_cell");
    Tensor emb = dropout(embedding->forward(tgt_in), cfg_.dropout, is_training(), *gen_);  // (B, T, H)
    o = lstm->forward(emb, tgt_len, state.h, state.c);                                    // one pass over T
  }
  AttentionOutput att;
  {
    PROFILE_STAGE("attention");
    att = attention->forward(o.output, state);  // T queries at once
  }
  return cat({o.output, att.context}, 2);  // (B, T, 2H): the classifier's input
}

// ------------------------------------------------------------------ the model

Seq2Seq::Seq2Seq(const ModelConfig& cfg, Generator& gen) : cfg_(cfg), gen_(&gen) {
  encoder = register_module("encoder", std::make_unique<Encoder>(cfg, gen));
  if (cfg.attention == AttentionKind::Bahdanau)
    decoder = register_module("decoder", std::make_unique<BahdanauDecoder>(cfg, gen));
  else
    decoder = register_module("decoder", std::make_unique<LuongDecoder>(cfg, gen));
}

namespace {

Tensor rows_index(const std::vector<int64_t>& rows, Device d) {
  return from_vector(rows, Shape{static_cast<int64_t>(rows.size())}).to(d);
}

}  // namespace

Tensor Seq2Seq::classify_targets(const Tensor& features, const Tensor& targets, double label_smoothing,
                                 const Tensor& precomputed) const {
  // Only the positions with a target go through the classifier: padding would cost a (V x F)
  // product per padded position, forward and backward.
  const int64_t F = features.size(-1);
  const Tensor flat_targets = targets.reshape(Shape{-1});
  std::vector<int64_t> keep;
  const std::vector<int64_t> host = flat_targets.to_vector<int64_t>();
  for (size_t i = 0; i < host.size(); ++i)
    if (host[i] != 0) keep.push_back(static_cast<int64_t>(i));
  const Tensor idx = from_vector(keep, Shape{static_cast<int64_t>(keep.size())}).to(features.device());
  const Tensor rows = index_rows(features.reshape(Shape{-1, F}), idx);
  Tensor logits;
  if (precomputed.defined()) {
    Tensor y;
    {
      NoGradGuard g;
      y = index_rows(precomputed.reshape(Shape{-1, precomputed.size(-1)}), idx);
    }
    const nn::Linear& fc = decoder->classifier_layer();
    logits = linear_with_output(rows, fc.weight, fc.bias, y);
  } else {
    logits = decoder->classify(rows);
  }
  PROFILE_STAGE("classifier_loss");
  Tensor t;
  {
    NoGradGuard g;
    t = index_rows(flat_targets, idx);
  }
  return softmax_nll(logits, t, 0, label_smoothing, Reduction::Sum);
}

Seq2Seq::Loss Seq2Seq::loss(const Tensor& src, const Tensor& src_len, const Tensor& tgt_in, const Tensor& tgt_out,
                            const Tensor& tgt_len, const std::vector<bool>& teacher_force, double label_smoothing) const {
  const int64_t B = src.size(0), T = tgt_in.size(1);
  ATTN_CHECK(static_cast<int64_t>(teacher_force.size()) == B, ValueError,
             "Seq2Seq::loss: {} teacher-forcing flags for a batch of {}", teacher_force.size(), B);
  const Device dev = src.device();
  EncoderOutput enc;
  DecoderState state;
  {
    PROFILE_STAGE("encoder");
    enc = encoder->forward(src, src_len);
  }
  {
    PROFILE_STAGE("attention");  // the attention keys, projected once per batch
    state = decoder->init(enc);
  }
  Loss out;
  {
    NoGradGuard g;
    out.tokens = sum(ne(tgt_out, 0.0).to(DType::Int64)).item<int64_t>();
  }
  std::vector<int64_t> forced, free;
  for (int64_t b = 0; b < B; ++b) (teacher_force[static_cast<size_t>(b)] ? forced : free).push_back(b);

  Tensor total;
  auto add = [&](const Tensor& t) { total = total.defined() ? total + t : t; };
  std::vector<int64_t> stepwise = free;
  if (!decoder->has_teacher_forced()) {
    stepwise.resize(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) stepwise[static_cast<size_t>(b)] = b;
  } else if (!forced.empty()) {
    // The teacher-forced rows in one pass where the decoder allows it.
    const bool all = forced.size() == static_cast<size_t>(B);
    const Tensor idx = all ? Tensor() : rows_index(forced, dev);
    const DecoderState sub = all ? state : state.select_rows(idx);
    const Tensor tin = all ? tgt_in : index_rows(tgt_in, idx), tout = all ? tgt_out : index_rows(tgt_out, idx);
    const Tensor tlen = all ? tgt_len : index_rows(tgt_len, idx);
    Tensor features = decoder->teacher_forced_features(tin, tlen, sub);  // (B', T, F)
    add(classify_targets(features, tout, label_smoothing));
  }
  if (!stepwise.empty()) {
    const bool all = stepwise.size() == static_cast<size_t>(B);
    const Tensor idx = all ? Tensor() : rows_index(stepwise, dev);
    DecoderState st = all ? state : state.select_rows(idx);
    const Tensor tin = all ? tgt_in : index_rows(tgt_in, idx), tout = all ? tgt_out : index_rows(tgt_out, idx);
    std::vector<bool> mask_host;
    bool any_free = false;
    for (int64_t b : stepwise) {
      mask_host.push_back(teacher_force[static_cast<size_t>(b)]);
      any_free = any_free || !teacher_force[static_cast<size_t>(b)];
    }
    const Tensor force = from_vector(mask_host, Shape{static_cast<int64_t>(mask_host.size())}).to(dev);
    Tensor input = tin.select(1, 0).contiguous();
    std::vector<Tensor> features, logits;
    PreparedLinear classifier;
    if (any_free) {
      NoGradGuard g;
      classifier = decoder->prepare_classifier();
    }
    for (int64_t t = 0; t < T; ++t) {
      StepOutput o = decoder->step_features(input, st);
      features.push_back(o.logits);
      if (any_free) {
        // Rows without teacher forcing feed their own prediction, so the classifier runs at
        // every step, without a graph; its backward runs once over all steps below.
        NoGradGuard g;
        logits.push_back(decoder->classify(o.logits, classifier));
        if (t + 1 < T) input = where(force, tin.select(1, t + 1), argmax(logits.back(), 1)).contiguous();
      } else if (t + 1 < T) {
        input = tin.select(1, t + 1).contiguous();
      }
    }
    Tensor all_logits;
    if (any_free) {
      NoGradGuard g;
      all_logits = stack(logits, 1);
    }
    add(classify_targets(stack(features, 1), tout, label_smoothing, all_logits));
  }
  out.total = total;
  return out;
}

}  // namespace attn::models
