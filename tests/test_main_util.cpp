#include "tests/test_util.h"

#include "kernels/backend.h"

namespace attn::test {

bool gpu_available(std::string* why) {
  try {
    if (kernels::has_backend(DeviceType::CUDA)) return true;
    if (why) *why = kernels::backend_unavailable_reason(DeviceType::CUDA);
  } catch (const std::exception& e) {
    if (why) *why = e.what();
  }
  return false;
}

}  // namespace attn::test
