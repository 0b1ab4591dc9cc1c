#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace attn {

Device Device::parse(std::string_view s) {
  if (s == "cpu") return kCPU;
  if (s.substr(0, 4) == "cuda") {
    if (s.size() == 4) return kCUDA;
    int idx = -1;
    if (s[4] == ':') {
      auto r = std::from_chars(s.data() + 5, s.data() + s.size(), idx);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size() && idx >= 0 && idx < 128)
        return Device(DeviceType::CUDA, idx);
    }
  }
  throw ValueError(fmt::format("unknown device '{}' (expected cpu, cuda or cuda:N)", s));
}

std::string Device::str() const {
  if (is_cpu()) return "cpu";
  return index == 0 ? "cuda" : fmt::format("cuda:{}", index);
}

}  // namespace attn
