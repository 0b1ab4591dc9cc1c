#include "core/ops/composed.h"

#include <limits>

namespace attn::composed {

Tensor padding_mask(const Tensor& lengths, int64_t S) {
  NoGradGuard g;
  Tensor pos = arange(S, {.dtype = DType::Int64, .device = lengths.device()}).unsqueeze(0);  // (1, S)
  return ge(pos, lengths.unsqueeze(1));                                                     // (B, S)
}

LstmLayerOutput lstm_layer(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           bool reverse) {
  const int64_t S = x.size(1);
  const Tensor valid = logical_not(padding_mask(lengths, S));  // (B, S)
  const Tensor xproj = linear(x, w_ih, b_ih);                  // (B, S, 4H)
  Tensor h = h0, c = c0;
  std::vector<Tensor> outputs(static_cast<size_t>(S));
  for (int64_t step = 0; step < S; ++step) {
    const int64_t t = reverse ? S - 1 - step : step;
    const Tensor gates = xproj.select(1, t) + linear(h, w_hh, b_hh);
    const std::vector<Tensor> z = chunk(gates, 4, 1);
    const Tensor i = sigmoid(z[0]), f = sigmoid(z[1]), g = tanh(z[2]), o = sigmoid(z[3]);
    const Tensor c_new = f * c + i * g;
    const Tensor h_new = o * tanh(c_new);
    const Tensor m = valid.select(1, t).unsqueeze(1);  // (B, 1)
    c = where(m, c_new, c);
    h = where(m, h_new, h);
    outputs[static_cast<size_t>(t)] = masked_fill(h_new, logical_not(m), 0.0);
  }
  return {stack(outputs, 1), h, c};
}

namespace {

AttentionOutput finish(const Tensor& scores, const Tensor& values, const Tensor& lengths, bool single) {
  // scores (B, T, S)
  const Tensor mask = padding_mask(lengths, values.size(1)).unsqueeze(1);  // (B, 1, S)
  const Tensor w = softmax(masked_fill(scores, mask, -std::numeric_limits<double>::infinity()), -1);
  const Tensor context = bmm(w, values);  // (B, T, H)
  if (single) return {context.squeeze(1), w.squeeze(1)};
  return {context, w};
}

}  // namespace

AttentionOutput additive_attention(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                                   const Tensor& lengths) {
  const bool single = query.dim() == 2;
  const Tensor q = single ? query.unsqueeze(1) : query;               // (B, T, A)
  const Tensor pre = q.unsqueeze(2) + keys.unsqueeze(1);              // (B, T, S, A)
  const Tensor scores = matmul(tanh(pre), v);                          // (B, T, S)
  return finish(scores, values, lengths, single);
}

AttentionOutput dot_attention(const Tensor& query, const Tensor& values, const Tensor& lengths) {
  const bool single = query.dim() == 2;
  const Tensor q = single ? query.unsqueeze(1) : query;               // (B, T, H)
  const Tensor scores = bmm(q, values.transpose(1, 2));                // (B, T, S)
  return finish(scores, values, lengths, single);
}

Tensor softmax_nll(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing,
                   Reduction reduction) {
  const Tensor logp = log_softmax(logits, 1);
  Tensor losses = nll_loss(logp, target, ignore_index, Reduction::None);  // (N), 0 where ignored
  if (label_smoothing > 0.0) {
    const Tensor smooth = masked_fill(neg(mean(logp, {1})), eq(target, static_cast<double>(ignore_index)), 0.0);
    losses = losses * (1.0 - label_smoothing) + smooth * label_smoothing;
  }
  if (reduction == Reduction::None) return losses;
  Tensor total = sum(losses);
  if (reduction == Reduction::Sum) return total;
  Tensor count;
  {
    NoGradGuard g;
    count = sum(ne(target, static_cast<double>(ignore_index)).to(logits.dtype()));
  }
  return total / count;
}

}  // namespace attn::composed
