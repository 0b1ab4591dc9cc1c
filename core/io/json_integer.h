// Integer entries of JSON files the engine reads back (a model's config.json, a run's
// trainer.json). nlohmann's get<int64_t>() truncates 1.5 to 1 and turns 1e300 into undefined
// behaviour (a float-to-int overflow: "hidden -9223372036854775808"); these refuse anything but
// an integer in the type's range, naming the key.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace attn::io {

template <class Int>
Int json_integer(const nlohmann::json& object, const char* key) {
  static_assert(std::is_same_v<Int, int64_t> || std::is_same_v<Int, uint64_t>);
  const nlohmann::json& v = object.at(key);  // a missing key: nlohmann's out_of_range, as before
  bool ok = false;
  if constexpr (std::is_unsigned_v<Int>) {
    ok = v.is_number_unsigned();
  } else {
    ok = v.is_number_integer() &&
         (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  }
  ATTN_CHECK(ok, ValueError, "'{}' must be {}, found {}", key,
             std::is_unsigned_v<Int> ? "an integer >= 0" : "an integer within int64", v.dump());
  return v.get<Int>();
}

}  // namespace attn::io
