#include "core/ops/lengths.h"

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "core/error.h"

namespace attn {

namespace {

// A lengths tensor that passed: which one, its shortest and largest entries, and its values
// when they were read.
struct Checked {
  TensorIdentity id;
  int64_t min_length = 0, max_length = 0;
  std::shared_ptr<const std::vector<int64_t>> values;
  uint64_t last_use = 0;
};

// A few entries are enough: the encoder's lengths, a decoder's, the ones of one-step calls. The
// least recently used one goes first, so the lengths a decoder passes at every step stay while
// each step's fresh ones come and go.
thread_local std::array<Checked, 8> g_checked;
thread_local uint64_t g_clock = 0;
thread_local int64_t g_reads = 0;

Checked& remember(const Tensor& t, int64_t min_length, int64_t max_length,
                  std::shared_ptr<const std::vector<int64_t>> values) {
  Checked* oldest = &g_checked[0];
  for (Checked& c : g_checked) {
    if (c.last_use < oldest->last_use) oldest = &c;
  }
  *oldest = {TensorIdentity(t), min_length, max_length, std::move(values), ++g_clock};
  return *oldest;
}

void check_is_lengths(const Tensor& lengths, std::string_view op) {
  ATTN_CHECK(lengths.defined() && lengths.dtype() == DType::Int64 && lengths.dim() == 1, ShapeError,
             "{}: lengths must be a 1-D int64 tensor", op);
}

// The remembered entry for non-empty `lengths` (checked against S), reading and checking it if
// there is none.
Checked& checked_entry(const Tensor& lengths, int64_t S, std::string_view op) {
  for (Checked& c : g_checked) {
    if (c.max_length >= 1 && c.max_length <= S && c.id.matches(lengths)) {
      c.last_use = ++g_clock;
      return c;
    }
  }
  ++g_reads;
  auto lv = std::make_shared<std::vector<int64_t>>(lengths.to_vector<int64_t>());
  int64_t shortest = S, longest = 0;
  for (size_t b = 0; b < lv->size(); ++b) {
    const int64_t n = (*lv)[b];
    ATTN_CHECK(n >= 1 && n <= S, ValueError, "{}: lengths[{}] = {} is outside [1, {}] (the padded length)", op, b, n, S);
    shortest = std::min(shortest, n);
    longest = std::max(longest, n);
  }
  return remember(lengths, shortest, longest, std::move(lv));
}

}  // namespace

LengthsRange check_lengths(const Tensor& lengths, int64_t S, std::string_view op) {
  check_is_lengths(lengths, op);
  if (lengths.numel() == 0) return {S, 0};  // an empty batch: nothing to read or remember
  const Checked& c = checked_entry(lengths, S, op);
  return {c.min_length, c.max_length};
}

std::vector<int64_t> host_lengths(const Tensor& lengths, int64_t S, std::string_view op) {
  check_is_lengths(lengths, op);
  if (lengths.numel() == 0) return {};
  Checked& c = checked_entry(lengths, S, op);
  if (!c.values) {  // noted unread: read now, once
    ++g_reads;
    auto lv = std::make_shared<const std::vector<int64_t>>(lengths.to_vector<int64_t>());
    c.min_length = *std::min_element(lv->begin(), lv->end());
    c.values = std::move(lv);
  }
  return *c.values;
}

void note_checked_lengths(const Tensor& lengths, int64_t max_length) {
  ATTN_CHECK(lengths.defined() && lengths.dtype() == DType::Int64 && lengths.dim() == 1 && max_length >= 1, ValueError,
             "note_checked_lengths: expects 1-D int64 lengths and a largest length >= 1");
  remember(lengths, 1, max_length, nullptr);  // every length is >= 1; only max_length 1 pins them all
}

int64_t lengths_reads() { return g_reads; }

}  // namespace attn
