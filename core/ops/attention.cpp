// Fused attention: score, mask, softmax and context in one op with one fused backward.
//
//   additive:  score[b,t,s] = v . tanh(query[b,t] + keys[b,s])     (Bahdanau, Luong concat)
//   dot:       score[b,t,s] = query[b,t] . values[b,s]             (Luong dot; general)
//   weights[b,t,:] = softmax over s < lengths[b] (exactly 0 beyond)
//   context[b,t]   = sum_s weights[b,t,s] values[b,s]
//
// The backward reads the additive tanh terms from the forward's (B, T, S, A) cache on the CPU,
// or recomputes them (on GPUs, from prepared keys, and past 16M terms); besides, it saves only
// the inputs and the weights (B, T, S).
#include "core/autograd/node.h"
#include "core/ops/fused.h"
#include "core/ops/lengths.h"
#include "core/ops/op_utils.h"

namespace attn {

namespace {

struct AttentionBackward final : Node {
  SavedTensor query, keys, v, values, lengths, weights;  // query/weights as (B, T, .)
  SavedTensor keys_exp2;  // exp(2 keys) of prepared keys, or undefined
  Tensor tanh_cache;  // (B, T, S, A) or undefined: internal, never visible outside the op
  bool additive = false;
  bool single = false;  // the caller's query had no T dim
  AttentionBackward() { num_outputs = 2; }
  std::string_view name() const override { return additive ? "AdditiveAttentionBackward" : "DotAttentionBackward"; }

  TensorList apply(TensorList& g) override {
    const Tensor q = query.unpack(name()), val = values.unpack(name()), w = weights.unpack(name());
    const Tensor k = additive ? keys.unpack(name()) : Tensor(), vv = additive ? v.unpack(name()) : Tensor();
    const Tensor lens = lengths.unpack(name());
    const Tensor k_exp2 = keys_exp2.unpack(name());
    const int64_t B = q.size(0), T = q.size(1), H = val.size(2);
    const Options opt{q.dtype(), q.device()};
    Tensor dctx = g[0].defined() ? g[0].contiguous() : zeros(Shape{B, T, H}, opt);
    Tensor dw = g[1].defined() ? g[1].contiguous() : Tensor();
    if (single) {
      dctx = alias(dctx, Shape{B, 1, H}, contiguous_strides(Shape{B, 1, H}), dctx.offset());
      if (dw.defined()) dw = alias(dw, Shape{B, 1, dw.size(1)}, contiguous_strides(Shape{B, 1, dw.size(1)}), dw.offset());
    }
    Tensor dq = empty(q.shape(), opt), dvalues = empty(val.shape(), opt);
    // With one query row per batch entry (a decoder step) and a graph not kept for another
    // backward, d(keys) overwrites the tanh cache it is computed from (the kernel reads each
    // element, then writes it): no second B x S x A buffer, no write-allocation of fresh lines.
    const bool dk_into_cache = additive && T == 1 && tanh_cache.defined() && !retain_graph;
    Tensor dk = !additive        ? Tensor()
                : dk_into_cache ? alias(tanh_cache, k.shape(), contiguous_strides(k.shape()), tanh_cache.offset())
                                : empty(k.shape(), opt);
    Tensor dv = additive ? empty(vv.shape(), opt) : Tensor();
    kernels::dispatch(name(), {&q, &val})
        .attention_backward(q, k, k_exp2, vv, val, lens, w, tanh_cache, dctx, dw, dq, dk, dv, dvalues);
    if (single) dq = alias(dq, Shape{B, q.size(2)}, contiguous_strides(Shape{B, q.size(2)}), 0);
    TensorList out;
    out.push_back(dq);
    if (additive) {
      out.push_back(dk);
      out.push_back(dv);
    }
    out.push_back(dvalues);
    return out;
  }
  void release_saved() override {
    query.release();
    keys.release();
    v.release();
    values.release();
    lengths.release();
    weights.release();
    tanh_cache = Tensor();
    keys_exp2.release();
  }
};

AttentionOutput attention(const Tensor& query_in, const Tensor& keys_in, const Tensor& keys_exp2, const Tensor& v_in,
                          const Tensor& values_in, const Tensor& lengths, bool additive) {
  const std::string_view op = additive ? "additive_attention" : "dot_attention";
  check_defined(query_in, op);
  check_defined(values_in, op);
  check_defined(lengths, op);
  check_floating(query_in, op);
  ATTN_CHECK(values_in.dim() == 3, ShapeError, "{}: values must be (B, S, H), got shape {}", op, values_in.shape());
  const int64_t B = values_in.size(0), S = values_in.size(1), H = values_in.size(2);
  ATTN_CHECK(query_in.dim() == 2 || query_in.dim() == 3, ShapeError, "{}: query must be (B, D) or (B, T, D), got shape {}",
             op, query_in.shape());
  const bool single = query_in.dim() == 2;
  const int64_t D = query_in.size(-1);
  ATTN_CHECK(query_in.size(0) == B, ShapeError, "{}: query of shape {} and values of shape {} differ in batch size", op,
             query_in.shape(), values_in.shape());
  if (additive) {
    check_defined(keys_in, op);
    check_defined(v_in, op);
    ATTN_CHECK(keys_in.shape() == (Shape{B, S, D}), ShapeError,
               "{}: keys must be (B, S, A) = ({}, {}, {}) to match query {} and values {}, got shape {}", op, B, S, D,
               query_in.shape(), values_in.shape(), keys_in.shape());
    ATTN_CHECK(v_in.shape() == Shape{D}, ShapeError, "{}: v must be ({}), got shape {}", op, D, v_in.shape());
    ATTN_CHECK(!keys_exp2.defined() || (keys_exp2.shape() == keys_in.shape() && keys_exp2.dtype() == keys_in.dtype() &&
                                        keys_exp2.device() == keys_in.device()),
               ShapeError, "{}: prepared keys {} {} do not match the keys {} {}", op, keys_exp2.dtype(),
               keys_exp2.shape(), keys_in.dtype(), keys_in.shape());
  } else {
    ATTN_CHECK(D == H, ShapeError, "{}: query of shape {} and values of shape {} differ in feature size", op,
               query_in.shape(), values_in.shape());
  }
  for (const Tensor* t : {&keys_in, &v_in, &values_in}) {
    ATTN_CHECK(!t->defined() || t->dtype() == query_in.dtype(), DTypeError, "{}: dtypes differ ({} and {})", op,
               query_in.dtype(), t->dtype());
  }
  ATTN_CHECK(lengths.dtype() == DType::Int64 && lengths.shape() == Shape{B}, ShapeError,
             "{}: lengths must be int64 ({}), got {} {}", op, B, lengths.dtype(), lengths.shape());
  auto& be = kernels::dispatch(op, {&query_in, &keys_in, &v_in, &values_in, &lengths});
  check_lengths(lengths, S, op);
  const Tensor lens = lengths.contiguous();  // the kernels index lengths[b] directly

  const int64_t T = single ? 1 : query_in.size(1);
  Tensor q = query_in.contiguous();
  if (single) q = alias(q, Shape{B, 1, D}, Strides{D, D, 1}, q.offset());
  const Tensor k = additive ? keys_in.contiguous() : Tensor(), vv = additive ? v_in.contiguous() : Tensor();
  const Tensor k_exp2 = keys_exp2.defined() ? keys_exp2.contiguous() : Tensor();
  const Tensor val = values_in.contiguous();
  const Options opt{q.dtype(), q.device()};
  Tensor context = empty(Shape{B, T, H}, opt), weights = empty(Shape{B, T, S}, opt);
  const bool grad = additive ? needs_grad(query_in, keys_in, v_in, values_in) : needs_grad(query_in, values_in);
  // On the CPU the backward reads the forward's tanh values instead of recomputing them, while
  // they fit in 64 MB (beyond, it recomputes them, from prepared keys with a multiply and a
  // divide each). Even from prepared keys the cache pays: at T2, 2.5 us more in the forward,
  // 5 us less in the backward. GPUs recompute (cheaper than the memory).
  Tensor tanh_cache;
  if (additive && grad && q.device().is_cpu() && B * T * S * D <= (int64_t{16} << 20))
    tanh_cache = empty(Shape{B, T, S, D}, opt);
  be.attention_forward(q, k, k_exp2, vv, val, lens, context, weights, tanh_cache);

  AttentionOutput out{context, weights};
  if (single) {
    out.context = alias(context, Shape{B, H}, Strides{H, 1}, 0);
    out.weights = alias(weights, Shape{B, S}, Strides{S, 1}, 0);
  }
  if (grad) {
    auto node = additive ? make_node<AttentionBackward>({&query_in, &keys_in, &v_in, &values_in})
                         : make_node<AttentionBackward>({&query_in, &values_in});
    node->query = SavedTensor(q);
    if (additive) {
      node->keys = SavedTensor(k);
      node->v = SavedTensor(vv);
    }
    node->values = SavedTensor(val);
    node->lengths = SavedTensor(lens);
    node->weights = SavedTensor(weights, /*is_output=*/true);
    node->additive = additive;
    node->single = single;
    node->tanh_cache = tanh_cache;
    node->keys_exp2 = SavedTensor(k_exp2);
    set_history(out.context, node, 0);
    set_history(out.weights, node, 1);
  }
  return out;
}

}  // namespace

AttentionOutput additive_attention(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                                   const Tensor& lengths) {
  return attention(query, keys, Tensor(), v, values, lengths, true);
}

AdditiveKeys prepare_additive_keys(const Tensor& keys) {
  check_defined(keys, "prepare_additive_keys");
  check_floating(keys, "prepare_additive_keys");
  AdditiveKeys out{keys, Tensor(), keys.version()};
  if (keys.numel() == 0) return out;
  // exp(2 * 40) is finite in float32, so products of two factors are finite or inf, never NaN.
  const Tensor k = keys.detach().contiguous();
  out.exp2 = kernels::dispatch("prepare_additive_keys", {&k}).additive_keys_exp2(k);
  return out;
}

AttentionOutput additive_attention(const Tensor& query, const AdditiveKeys& keys, const Tensor& v,
                                   const Tensor& values, const Tensor& lengths) {
  check_defined(keys.keys, "additive_attention");
  ATTN_CHECK(keys.keys.version() == keys.version, ValueError,
             "additive_attention: the keys {} changed in place after prepare_additive_keys (version {} then, {} now)",
             keys.keys.shape(), keys.version, keys.keys.version());
  return attention(query, keys.keys, keys.exp2, v, values, lengths, true);
}

AttentionOutput dot_attention(const Tensor& query, const Tensor& values, const Tensor& lengths) {
  return attention(query, Tensor(), Tensor(), Tensor(), values, lengths, false);
}

}  // namespace attn
