#include "tools/bench/l2_flush.h"

#include <omp.h>
#include <unistd.h>

#include <memory>

#include "core/ops/ops.h"
#include "kernels/backend.h"

namespace attn::bench {

double l2_flush_bytes(Device d) {
  if (d.is_cuda()) return 128.0 * (1 << 20);
  long l2 = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l2 <= 0) l2 = 1 << 20;
  return 2.0 * static_cast<double>(l2) * omp_get_max_threads();
}

std::function<void()> make_l2_flush(Device d) {
  struct Buffers {
    Tensor from, to;
  };
  const int64_t n = static_cast<int64_t>(l2_flush_bytes(d) / 8);  // floats per buffer: half the bytes
  auto buffers = std::make_shared<Buffers>(Buffers{zeros({n}, {.device = d}), zeros({n}, {.device = d})});
  kernels::Backend* be = &kernels::backend(d);
  return [buffers, be] { be->copy(buffers->to, buffers->from); };
}

}  // namespace attn::bench
