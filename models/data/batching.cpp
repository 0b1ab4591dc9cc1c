#include "models/data/batching.h"

#include <algorithm>

#include "core/error.h"
#include "core/philox.h"
#include "models/data/tokenizer.h"

namespace attn::data {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

ShuffleRng::ShuffleRng(uint64_t seed, uint64_t stream) : key_(splitmix64(seed ^ splitmix64(stream))) {}

uint32_t ShuffleRng::next_u32() { return philox::word(key_, counter_++); }

uint64_t ShuffleRng::next_u64() {
  const uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

uint64_t ShuffleRng::below(uint64_t n) {
  ATTN_ASSERT(n >= 1, "below({})", n);
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: draws under it would bias the modulo
  for (;;) {
    const uint64_t x = next_u64();
    if (x >= threshold) return x % n;
  }
}

Batch collate(const std::vector<Example>& examples, const std::vector<int64_t>& index) {
  ATTN_CHECK(!index.empty(), ValueError, "collate: an empty batch");
  const int64_t b = static_cast<int64_t>(index.size());
  int64_t s = 0, t = 0;
  for (int64_t i : index) {
    ATTN_CHECK(i >= 0 && i < static_cast<int64_t>(examples.size()), IndexError,
               "collate: example {} out of range for {} examples", i, examples.size());
    s = std::max(s, static_cast<int64_t>(examples[static_cast<size_t>(i)].src.size()));
    t = std::max(t, static_cast<int64_t>(examples[static_cast<size_t>(i)].tgt.size()) + 1);
  }
  std::vector<int64_t> src(static_cast<size_t>(b * s), Vocab::kPad), tgt_in(static_cast<size_t>(b * t), Vocab::kPad),
      tgt_out(static_cast<size_t>(b * t), Vocab::kPad), src_len, tgt_len;
  Batch batch;
  for (int64_t r = 0; r < b; ++r) {
    const Example& e = examples[static_cast<size_t>(index[static_cast<size_t>(r)])];
    std::copy(e.src.begin(), e.src.end(), src.begin() + r * s);
    tgt_in[static_cast<size_t>(r * t)] = Vocab::kBos;
    std::copy(e.tgt.begin(), e.tgt.end(), tgt_in.begin() + r * t + 1);
    std::copy(e.tgt.begin(), e.tgt.end(), tgt_out.begin() + r * t);
    tgt_out[static_cast<size_t>(r * t) + e.tgt.size()] = Vocab::kEos;
    src_len.push_back(static_cast<int64_t>(e.src.size()));
    tgt_len.push_back(static_cast<int64_t>(e.tgt.size()) + 1);
    batch.src_tokens += src_len.back();
    batch.tgt_tokens += tgt_len.back();
  }
  batch.src = from_vector<int64_t>(src, Shape{b, s});
  batch.tgt_in = from_vector<int64_t>(tgt_in, Shape{b, t});
  batch.tgt_out = from_vector<int64_t>(tgt_out, Shape{b, t});
  batch.src_len = from_vector<int64_t>(src_len, Shape{b});
  batch.tgt_len = from_vector<int64_t>(tgt_len, Shape{b});
  batch.index = index;
  return batch;
}

Batcher::Batcher(std::vector<Example> examples, BatcherOptions options)
    : examples_(std::move(examples)), opt_(options) {
  ATTN_CHECK(opt_.batch_size >= 1, ValueError, "Batcher: batch_size must be >= 1, got {}", opt_.batch_size);
  ATTN_CHECK(opt_.bucket_chunk >= 1, ValueError, "Batcher: bucket_chunk must be >= 1, got {}", opt_.bucket_chunk);
  for (size_t i = 0; i < examples_.size(); ++i) {
    const Example& e = examples_[i];
    ATTN_CHECK(!e.src.empty(), ValueError, "Batcher: example {} has an empty source", i);
    for (const auto* side : {&e.src, &e.tgt})
      for (int64_t id : *side)
        ATTN_CHECK(id >= 1, ValueError, "Batcher: example {} holds id {} (ids inside a sentence must be >= 1; 0 is <pad>)",
                   i, id);
  }
}

Batcher::Batcher(std::vector<Example> examples, int64_t batch_size, uint64_t seed, bool bucketing)
    : Batcher(std::move(examples), BatcherOptions{.batch_size = batch_size, .seed = seed, .bucketing = bucketing}) {}

int64_t Batcher::num_batches() const {
  const int64_t n = num_examples(), bs = opt_.batch_size;
  return n / bs + (n % bs != 0 ? 1 : 0);  // (n + bs - 1) / bs overflowed for a batch size near 2^63
}

std::vector<std::vector<int64_t>> Batcher::epoch_plan(int64_t epoch) const {
  ATTN_CHECK(epoch >= 0, ValueError, "Batcher::epoch_plan: epoch must be >= 0, got {}", epoch);
  const int64_t n = num_examples(), bs = opt_.batch_size;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  ShuffleRng rng(opt_.seed, static_cast<uint64_t>(epoch));
  if (opt_.shuffle) rng.shuffle(order);

  auto by_length = [&](int64_t a, int64_t b) {
    const Example& x = examples_[static_cast<size_t>(a)];
    const Example& y = examples_[static_cast<size_t>(b)];
    if (x.src.size() != y.src.size()) return x.src.size() < y.src.size();
    return x.tgt.size() < y.tgt.size();
  };
  // Examples sorted together: bucket_chunk batches' worth, or all (without overflowing for a
  // huge batch size: a negative or zero chunk crashed or never ended).
  int64_t chunk = std::max<int64_t>(n, 1), product = 0;
  if (opt_.bucketing && opt_.shuffle && !__builtin_mul_overflow(opt_.bucket_chunk, bs, &product))
    chunk = std::min(chunk, product);
  std::vector<std::vector<int64_t>> batches;
  batches.reserve(static_cast<size_t>(num_batches()));
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t c1 = c0 + std::min(n - c0, chunk);
    if (opt_.bucketing) std::stable_sort(order.begin() + c0, order.begin() + c1, by_length);
    for (int64_t b0 = c0, size = 0; b0 < c1; b0 += size) {
      size = std::min(c1 - b0, bs);  // b0 + bs could overflow
      batches.emplace_back(order.begin() + b0, order.begin() + b0 + size);
    }
  }
  if (opt_.shuffle && opt_.bucketing) rng.shuffle(batches);
  return batches;
}

std::vector<Batch> Batcher::epoch(int64_t epoch) const {
  std::vector<Batch> out;
  for (const auto& idx : epoch_plan(epoch)) out.push_back(make_batch(idx));
  return out;
}

std::vector<Example> encode_pairs(const std::vector<Pair>& pairs, const Vocab& src_vocab, const Vocab& tgt_vocab,
                                  int64_t max_len, EncodeStats* stats) {
  EncodeStats local;
  EncodeStats& st = stats ? *stats : local;
  std::vector<Example> out;
  out.reserve(pairs.size());
  for (const Pair& p : pairs) {
    const auto s = tokenize(p.src);
    const auto t = tokenize(p.tgt);
    if (s.empty() || (max_len > 0 && (static_cast<int64_t>(s.size()) > max_len ||
                                      static_cast<int64_t>(t.size()) > max_len))) {
      ++st.dropped;
      continue;
    }
    Example e;
    e.src = src_vocab.encode(s, false, true, &st.src_unknown);
    e.tgt = tgt_vocab.encode(t, false, false, &st.tgt_unknown);
    st.src_tokens += static_cast<int64_t>(s.size());
    st.tgt_tokens += static_cast<int64_t>(t.size());
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace attn::data
