// Padded mini-batches and the order they come in, reproducible from (seed, epoch) alone.
//
// One epoch with bucketing: the examples are shuffled (Fisher-Yates driven by Philox words, with
// an explicit rejection-sampled integer draw, so the order is the same with every compiler and
// standard library), cut into chunks of bucket_chunk * batch_size, each chunk stably sorted by
// (source length, target length) and cut into batches of batch_size sentences (the last batch of
// a chunk may be smaller), and finally the order of the batches is shuffled with the same
// stream. Without bucketing the shuffled examples are cut into batches directly. With
// shuffle off the examples keep their order (bucketing then sorts the whole set by length):
// that is the evaluation order, the same for every epoch.
//
// epoch(k) derives its stream from (seed, k) only, so a resumed run reproduces epoch k's order
// without replaying epochs 0..k-1.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "models/data/tsv.h"
#include "models/data/vocab.h"

namespace attn::data {

struct Example {
  std::vector<int64_t> src, tgt;  // token ids; no <s> / </s> on tgt (the batch adds them)
};

struct Batch {
  Tensor src;      // (B, S) int64, padded with <pad> = 0
  Tensor src_len;  // (B) int64
  Tensor tgt_in;   // (B, T) int64: <s> + tgt, padded with 0;  T = max(len(tgt)) + 1
  Tensor tgt_out;  // (B, T) int64: tgt + </s>, padded with 0
  Tensor tgt_len;  // (B) int64: len(tgt) + 1 (the </s> counts)
  std::vector<int64_t> index;  // the examples of each row
  int64_t src_tokens = 0;      // sum of src_len
  int64_t tgt_tokens = 0;      // sum of tgt_len: the number of predicted tokens
  int64_t size() const { return static_cast<int64_t>(index.size()); }
};

// Pads the given examples into a batch (rows in the order of `index`).
Batch collate(const std::vector<Example>& examples, const std::vector<int64_t>& index);

struct BatcherOptions {
  int64_t batch_size = 64;  // sentences per batch
  uint64_t seed = 0;
  bool bucketing = true;
  bool shuffle = true;
  int64_t bucket_chunk = 100;  // bucketing sorts within chunks of bucket_chunk * batch_size
};

class Batcher {
 public:
  // ValueError for batch_size < 1, bucket_chunk < 1, an empty source, or an id < 1 in an
  // example (0 is <pad>, so it cannot appear inside a sentence).
  Batcher(std::vector<Example> examples, BatcherOptions options);
  Batcher(std::vector<Example> examples, int64_t batch_size, uint64_t seed, bool bucketing = true);

  // The example indices of each batch of epoch `epoch` (cheap: no tensors).
  std::vector<std::vector<int64_t>> epoch_plan(int64_t epoch) const;
  std::vector<Batch> epoch(int64_t epoch) const;
  Batch make_batch(const std::vector<int64_t>& index) const { return collate(examples_, index); }

  int64_t num_examples() const { return static_cast<int64_t>(examples_.size()); }
  int64_t num_batches() const;  // per epoch
  const std::vector<Example>& examples() const { return examples_; }
  const BatcherOptions& options() const { return opt_; }

 private:
  std::vector<Example> examples_;
  BatcherOptions opt_;
};

// Deterministic integer draws for the shuffles: Philox 4x32-10 words of a key derived from
// (seed, stream). Exposed for tests and for other data-order code.
class ShuffleRng {
 public:
  ShuffleRng(uint64_t seed, uint64_t stream);
  uint32_t next_u32();
  uint64_t next_u64();
  uint64_t below(uint64_t n);  // uniform in [0, n), n >= 1 (rejection sampling, no modulo bias)
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    for (size_t i = v.size(); i > 1; --i) {
      const size_t j = static_cast<size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// Tokenizes and encodes sentence pairs: src = tokens + </s>, tgt = tokens (Batch adds <s>, </s>).
// Pairs with more than max_len tokens on either side (before specials) are dropped when
// max_len > 0. Counts go to `stats` when given.
struct EncodeStats {
  int64_t src_tokens = 0, tgt_tokens = 0, src_unknown = 0, tgt_unknown = 0, dropped = 0;
};
std::vector<Example> encode_pairs(const std::vector<Pair>& pairs, const Vocab& src_vocab, const Vocab& tgt_vocab,
                                  int64_t max_len = 0, EncodeStats* stats = nullptr);

}  // namespace attn::data
