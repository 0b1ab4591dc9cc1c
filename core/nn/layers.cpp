#include "core/nn/layers.h"

#include <cmath>

#include "core/autograd/grad_mode.h"
#include "core/ops/ops.h"

namespace attn::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator& gen, Options opt) {
  ATTN_CHECK(in_features > 0 && out_features > 0, ValueError,
             "Linear: features must be positive, got in={} out={}", in_features, out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = uniform(Shape{out_features, in_features}, -bound, bound, gen, opt);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = uniform(Shape{out_features}, -bound, bound, gen, opt);
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t pad, Generator& gen,
                     Options opt)
    : padding_idx(pad) {
  ATTN_CHECK(num_embeddings > 0 && embedding_dim > 0, ValueError,
             "Embedding: sizes must be positive, got ({}, {})", num_embeddings, embedding_dim);
  weight = normal(Shape{num_embeddings, embedding_dim}, 0.0, 1.0, gen, opt);
  if (padding_idx >= 0) {
    ATTN_CHECK(padding_idx < num_embeddings, IndexError,
               "Embedding: padding_idx {} out of range for {} rows", padding_idx, num_embeddings);
    weight.select(0, padding_idx).zero_();
  }
  register_parameter("weight", &weight);
}

Tensor Embedding::forward(const Tensor& indices) const { return embedding(weight, indices, padding_idx); }

Dropout::Dropout(double prob, Generator& gen) : p(prob), gen_(&gen) {
  ATTN_CHECK(p >= 0.0 && p <= 1.0, ValueError, "Dropout: probability must be in [0, 1], got {}", p);
}

Tensor Dropout::forward(const Tensor& x) const { return dropout(x, p, is_training(), *gen_); }

}  // namespace attn::nn
