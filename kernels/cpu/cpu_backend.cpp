#include "kernels/cpu/cpu_backend.h"

namespace attn::cpu {

CpuBackend& cpu_backend() {
  static CpuBackend instance;
  return instance;
}

}  // namespace attn::cpu
