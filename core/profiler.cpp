#include "core/profiler.h"

#include "kernels/backend.h"

namespace attn {

Profiler& Profiler::instance() {
  static Profiler p;
  return p;
}

void Profiler::sync() const {
  if (!device_.is_cpu()) kernels::backend(device_).synchronize();
}

}  // namespace attn
