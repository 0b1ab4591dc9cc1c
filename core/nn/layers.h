// Basic layers with PyTorch's parameter names, layouts and default initialization.
#pragma once

#include "core/nn/module.h"
#include "core/random.h"

namespace attn::nn {

// y = x W^T + b. weight (out, in), bias (out); both U(-1/sqrt(in), 1/sqrt(in)) as in PyTorch.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator(),
         Options opt = {});
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
};

// Lookup table (num, dim) drawn from N(0, 1); the padding row, if any, starts at zero and gets
// no gradient.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx = -1,
            Generator& gen = default_generator(), Options opt = {});
  Tensor forward(const Tensor& indices) const;
  Tensor weight;
  int64_t padding_idx;
};

// Inverted dropout in training mode, identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) const;
  double p;

 private:
  Generator* gen_;
};

}  // namespace attn::nn
