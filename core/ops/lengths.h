// The sequence lengths that the LSTM and attention ops take (int64 (B), each in [1, S]).
//
// Checking them means reading them: on a GPU that is a synchronizing device-to-host copy, and a
// decoder passes the same lengths at every one of its steps. So the lengths tensors that passed
// are remembered (storage, place, version, largest length): the same tensor, unchanged since,
// is not read again (core/tensor_identity.h: an in-place write through a Tensor method forces
// a new check, a write through a raw pointer is not seen).
#pragma once

#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "core/tensor_identity.h"

namespace attn {

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
