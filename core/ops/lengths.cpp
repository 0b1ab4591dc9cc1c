#include "core/ops/lengths.h"

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "core/error.h"

namespace attn {

namespace {

// A lengths tensor that passed: the storage it lives in (weak: a freed storage never matches,
// even when its memory comes back for another tensor), where in it, its version then, and its
// largest entry.
struct Checked {
  std::weak_ptr<Storage> storage;
  int64_t offset = 0, stride = 0, size = 0;
  uint64_t version = 0;
  int64_t max_length = 0;
  uint64_t last_use = 0;
};

// A few entries are enough: the encoder's lengths, a decoder's, the ones of one-step calls. The
// least recently used one goes first, so the lengths a decoder passes at every step stay while
// each step's fresh ones come and go.
thread_local std::array<Checked, 8> g_checked;
thread_local uint64_t g_clock = 0;
thread_local int64_t g_reads = 0;

bool same_tensor(const Checked& c, const Tensor& t) {
  return c.storage.lock() == t.storage() && c.offset == t.offset() && c.size == t.size(0) &&
         c.stride == t.stride(0) && c.version == t.version();
}

void remember(const Tensor& t, int64_t max_length) {
  Checked* oldest = &g_checked[0];
  for (Checked& c : g_checked) {
    if (c.last_use < oldest->last_use) oldest = &c;
  }
  *oldest = {t.storage(), t.offset(), t.stride(0), t.size(0), t.version(), max_length, ++g_clock};
}

}  // namespace

void check_lengths(const Tensor& lengths, int64_t S, std::string_view op) {
  ATTN_CHECK(lengths.defined() && lengths.dtype() == DType::Int64 && lengths.dim() == 1, ShapeError,
             "{}: lengths must be a 1-D int64 tensor", op);
  for (Checked& c : g_checked) {
    if (c.max_length >= 1 && c.max_length <= S && same_tensor(c, lengths)) {
      c.last_use = ++g_clock;
      return;
    }
  }
  ++g_reads;
  const std::vector<int64_t> lv = lengths.to_vector<int64_t>();
  int64_t longest = 0;
  for (size_t b = 0; b < lv.size(); ++b) {
    ATTN_CHECK(lv[b] >= 1 && lv[b] <= S, ValueError, "{}: lengths[{}] = {} is outside [1, {}] (the padded length)", op,
               b, lv[b], S);
    longest = std::max(longest, lv[b]);
  }
  if (!lv.empty()) remember(lengths, longest);
}

void note_checked_lengths(const Tensor& lengths, int64_t max_length) {
  ATTN_CHECK(lengths.defined() && lengths.dtype() == DType::Int64 && lengths.dim() == 1 && max_length >= 1, ValueError,
             "note_checked_lengths: expects 1-D int64 lengths and a largest length >= 1");
  remember(lengths, max_length);
}

int64_t lengths_reads() { return g_reads; }

}  // namespace attn
