// The sequence lengths that the LSTM and attention ops take (int64 (B), each in [1, S]).
//
// Checking them means reading them: on a GPU that is a synchronizing device-to-host copy, and a
// decoder passes the same lengths at every one of its steps. So the lengths tensors that passed
// are remembered (storage, place, version, largest length): the same tensor, unchanged since,
// is not read again. An in-place write bumps the storage's version and forces a new check; a
// write through a raw pointer (data<int64_t>()) bumps nothing and is not seen, as PyTorch's
// saved-tensor checks do not see one either.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace attn {

// A lengths tensor as the cache tells tensors apart: the storage it lives in (weak: a freed
// storage never matches, even when its memory comes back for another tensor), where in it, and
// the storage's version.
struct LengthsIdentity {
  std::weak_ptr<Storage> storage;
  int64_t offset = 0, stride = 0, size = 0;
  uint64_t version = 0;
  LengthsIdentity() = default;
  explicit LengthsIdentity(const Tensor& t)
      : storage(t.storage()), offset(t.offset()), stride(t.stride(0)), size(t.size(0)), version(t.version()) {}
  bool matches(const Tensor& t) const {
    return storage.lock() == t.storage() && offset == t.offset() && size == t.size(0) && stride == t.stride(0) &&
           version == t.version();
  }
};

struct LengthsRange {
  int64_t shortest = 1, longest = 1;  // shortest: a lower bound for lengths noted unread
};

// ValueError naming `op` unless 1 <= lengths[b] <= S for every b. Reads the lengths only when
// this tensor, unchanged, has not passed for a length of at least S's largest entry before.
LengthsRange check_lengths(const Tensor& lengths, int64_t S, std::string_view op);

// The checked lengths on the host: read at most once per tensor (and version) while it stays
// among the remembered ones.
std::vector<int64_t> host_lengths(const Tensor& lengths, int64_t S, std::string_view op);

// For code that made `lengths` itself and knows its largest entry (e.g. a tensor of ones for a
// one-step LSTM call): remember it as checked, without reading it.
void note_checked_lengths(const Tensor& lengths, int64_t max_length);

// How many times check_lengths read lengths from their device (for tests and profiling).
int64_t lengths_reads();

}  // namespace attn
