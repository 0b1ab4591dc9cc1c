// Generator: a seed plus a position in the Philox stream. Each draw reserves a range of words
// (rounded up to a multiple of 4) and advances the position, so consecutive draws never overlap
// and a saved (seed, offset) pair restores the exact state for resumed training.
#pragma once

#include <cstdint>

namespace attn {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves `n` words and returns the offset of the first one.
  uint64_t reserve(uint64_t n) {
    uint64_t start = offset_;
    offset_ += (n + 3) & ~uint64_t{3};
    return start;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide generator used when none is passed (like torch.manual_seed).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace attn
