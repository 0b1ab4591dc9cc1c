// The untimed call before every timed one (time_interleaved's before_each): a copy that evicts
// the L2 (the spec's "L2 flushed"), between two buffers of half the flush size each, run by the
// backend's threads (twice the L2 of the running threads) or on the GPU's stream (128 MB: an
// H100 / H200 has 50 MB of L2). On a GPU it has a second job: queued before the start event,
// it keeps the stream busy while the host prepares the timed call (argument plans, scratch
// tensors, the launch itself), so the start event is stamped when the timed work can begin.
// After a synchronized sample the stream is empty, and without it that host time was timed.
#pragma once

#include <functional>

#include "core/device.h"

namespace attn::bench {

double l2_flush_bytes(Device d);
std::function<void()> make_l2_flush(Device d);

}  // namespace attn::bench
