#include "tests/test_util.h"

#include "kernels/backend.h"

namespace attn::test {

bool gpu_available(std::string* why) {
  try {
    if (kernels::has_backend(DeviceType::CUDA)) return true;
    if (why) *why = ATTN_WITH_CUDA ? "no CUDA device answers on this machine" : "this build has no CUDA backend";
  } catch (const std::exception& e) {
    if (why) *why = e.what();
  }
  return false;
}

}  // namespace attn::test
