// The fused ops of core/ops/fused.h written with primitive ops only: the oracle the fused
// kernels are tested against and the "composed" baseline `attn bench kernels` times them with.
// Same signatures and semantics as the fused versions.
#pragma once

#include "core/ops/fused.h"

namespace attn::composed {

LstmLayerOutput lstm_layer(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           bool reverse = false);
AttentionOutput additive_attention(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                                   const Tensor& lengths);
AttentionOutput dot_attention(const Tensor& query, const Tensor& values, const Tensor& lengths);
Tensor softmax_nll(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                   double label_smoothing = 0.0, Reduction reduction = Reduction::Mean);

// (B, S) bool: true at padded positions (s >= lengths[b]).
Tensor padding_mask(const Tensor& lengths, int64_t S);

}  // namespace attn::composed
