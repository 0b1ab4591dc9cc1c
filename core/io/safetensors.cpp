#include "core/io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace attn::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; a big-endian host would need byte swaps");

namespace {

using json = nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";
constexpr uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit

const char* dtype_code(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
    default: return nullptr;
  }
}

// A header value for an error message. The header is untrusted: a value can be nested a
// hundred thousand levels deep (nlohmann's dump() recurses once per level: a stack overflow) or
// be megabytes long, so only a short flat array or a short scalar is shown as it is.
std::string brief(const json& j) {
  auto shown = [](const json& v) { return v.is_number() || v.is_boolean() || v.is_null(); };
  if (shown(j) || (j.is_array() && j.size() <= 16 && std::all_of(j.begin(), j.end(), shown))) return j.dump();
  if (j.is_string() && j.get_ref<const std::string&>().size() <= 40) return fmt::format("'{}'", j.get_ref<const std::string&>());
  if (j.is_array()) return fmt::format("(an array of {} items, not all numbers)", j.size());
  return fmt::format("(a JSON {})", j.type_name());
}

bool dtype_from_code(const std::string& code, DType& out) {
  if (code == "F32") out = DType::Float32;
  else if (code == "F64") out = DType::Float64;
  else if (code == "I64") out = DType::Int64;
  else if (code == "BOOL") out = DType::Bool;
  else return false;
  return true;
}

}  // namespace

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    ATTN_CHECK(!name.empty(), ValueError, "save_safetensors: a tensor with an empty name");
    ATTN_CHECK(name != kMetadataKey, ValueError, "save_safetensors: '{}' is reserved for the metadata", name);
    ATTN_CHECK(names.insert(name).second, ValueError, "save_safetensors: tensor name '{}' appears twice", name);
    ATTN_CHECK(t.defined(), ValueError, "save_safetensors: tensor '{}' is undefined", name);
    const char* code = dtype_code(t.dtype());
    ATTN_CHECK(code != nullptr, DTypeError, "save_safetensors: tensor '{}' has dtype {} (float32, float64, int64 and bool are supported)",
               name, t.dtype());
    Tensor h = t.to(kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(h.numel()) * dtype_size(h.dtype());
    json shape = json::array();
    for (int64_t d : h.shape()) shape.push_back(d);
    header[name] = {{"dtype", code}, {"shape", std::move(shape)}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    host.push_back(std::move(h));
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw ValueError(fmt::format("save_safetensors: a tensor name or metadata string is not valid UTF-8 ({})", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned

  std::string out;
  out.reserve(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xFF);
  out += text;
  for (const Tensor& h : host) {
    const size_t bytes = static_cast<size_t>(h.numel()) * dtype_size(h.dtype());
    if (bytes) out.append(static_cast<const char*>(h.raw_data()), bytes);
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), fmt::format("'{}'", path));
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  std::string have;
  for (const auto& [n, t] : tensors) have += (have.empty() ? "" : ", ") + n;
  throw IOError(fmt::format("safetensors file {}: no tensor '{}' (the file holds: {})",
                            source.empty() ? "(in memory)" : source, name, have.empty() ? "no tensors" : have));
}

// The first key found twice in one object of a JSON text, in one linear SAX pass. (A callback
// to json::parse did this before, but a callback makes nlohmann rescan the parent object each
// time a nested one closes: a header of 20000 entries took 3.6 s to read, 200000 minutes.)
namespace {

struct DuplicateKeyFinder final : nlohmann::json_sax<json> {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open_objects.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
    return true;
  }
  bool end_object() override {
    open_objects.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what) {
  auto fail = [&](const std::string& msg) { return IOError(fmt::format("safetensors file {}: {}", what, msg)); };
  if (bytes.size() < 8)
    throw fail(fmt::format("only {} bytes, too short for the 8-byte header length", bytes.size()));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  const uint64_t after = bytes.size() - 8;
  if (header_len > after)
    throw fail(fmt::format("the header length {} exceeds the {} bytes that follow it (truncated file?)", header_len,
                           after));
  if (header_len > kMaxHeader) throw fail(fmt::format("header length {} is larger than 100 MiB", header_len));
  const std::string_view header_text(bytes.data() + 8, static_cast<size_t>(header_len));
  if (header_text.empty() || header_text.front() != '{')
    throw fail("the header does not start with '{' (not a safetensors file?)");
  // The JSON parser stops at a NUL as at the end of its input: `{...}\0 garbage` loaded.
  if (const size_t nul = header_text.find('\0'); nul != std::string_view::npos)
    throw fail(fmt::format("the header holds a NUL byte at byte {} of its {} (not valid JSON)", nul + 1, header_len));

  // Parse, refusing duplicate keys (nlohmann would keep the last one silently).
  json header;
  try {
    header = json::parse(header_text);
  } catch (const json::exception& e) {
    throw fail(fmt::format("the header is not valid JSON: {}", e.what()));
  }
  DuplicateKeyFinder keys;
  json::sax_parse(header_text, &keys);
  if (!keys.duplicate.empty()) throw fail(fmt::format("the header has the key '{}' twice", keys.duplicate));
  if (!header.is_object()) throw fail("the header is not a JSON object");

  SafetensorsFile file;
  file.source = what;
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      if (!info.is_object()) throw fail("'__metadata__' is not an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) throw fail(fmt::format("metadata '{}' is not a string", k));
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("tensor '{}'", name);
    if (!info.is_object()) throw fail(fmt::format("{}: its entry is not an object", where));
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!info.contains(field)) throw fail(fmt::format("{}: missing field '{}'", where, field));
    const json& jd = info["dtype"];
    if (!jd.is_string()) throw fail(fmt::format("{}: 'dtype' is not a string", where));
    Entry e{name, DType::Float32, {}, 0, 0};
    if (!dtype_from_code(jd.get<std::string>(), e.dtype))
      throw fail(fmt::format("{}: unsupported dtype {} (F32, F64, I64 and BOOL are supported)", where, brief(jd)));
    const json& js = info["shape"];
    if (!js.is_array()) throw fail(fmt::format("{}: 'shape' is not an array", where));
    if (js.size() > 16) throw fail(fmt::format("{}: {} dimensions (at most 16 are supported)", where, js.size()));
    bool has_zero = false;
    for (const json& d : js) {
      if (!d.is_number_unsigned())
        throw fail(fmt::format("{}: shape {} holds something other than a non-negative integer", where, brief(js)));
      const uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t{1} << 56)) throw fail(fmt::format("{}: shape {} is too large", where, brief(js)));
      has_zero = has_zero || v == 0;
      e.shape.push_back(static_cast<int64_t>(v));
    }
    uint64_t numel = 1;
    if (has_zero) {
      // Empty, but empty() multiplies the dims in order in int64, as Python's loader does with
      // overflow checks: [2^32, 2^32, 0] overflowed there (an OutOfMemoryError without the
      // file's name); [2^56, 2, 0] is a valid empty tensor.
      int64_t running = 1;
      for (int64_t d : e.shape)
        if (__builtin_mul_overflow(running, d, &running))
          throw fail(fmt::format("{}: shape {} is too large (its dims' product overflows)", where, brief(js)));
      numel = 0;
    } else {
      for (int64_t d : e.shape) {
        const auto v = static_cast<uint64_t>(d);
        if (numel > (uint64_t{1} << 56) / v) throw fail(fmt::format("{}: shape {} is too large", where, brief(js)));
        numel *= v;
      }
    }
    const json& jo = info["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      throw fail(fmt::format("{}: 'data_offsets' must be two non-negative integers, found {}", where, brief(jo)));
    e.begin = jo[0].get<uint64_t>();
    e.end = jo[1].get<uint64_t>();
    if (e.end < e.begin) throw fail(fmt::format("{}: data_offsets [{}, {}] end before they begin", where, e.begin, e.end));
    const uint64_t expected = numel * dtype_size(e.dtype);
    if (e.end - e.begin != expected)
      throw fail(fmt::format("{}: data_offsets [{}, {}] hold {} bytes, but dtype {} and shape {} need {}", where, e.begin,
                             e.end, e.end - e.begin, jd.get<std::string>(), brief(js), expected));
    entries.push_back(std::move(e));
  }

  // The tensors must tile the data section exactly.
  const uint64_t data_size = after - header_len;
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  for (const Entry* e : by_offset) {
    if (e->end > data_size)
      throw fail(fmt::format("tensor '{}': data_offsets [{}, {}] extend past the {} bytes of data (truncated file?)",
                             e->name, e->begin, e->end, data_size));
    if (e->begin < pos)
      throw fail(fmt::format("tensor '{}': data_offsets [{}, {}] overlap the tensor before it (which ends at {})", e->name,
                             e->begin, e->end, pos));
    if (e->begin > pos)
      throw fail(fmt::format("tensor '{}': a gap of {} bytes before its data_offsets [{}, {}]", e->name, e->begin - pos,
                             e->begin, e->end));
    pos = e->end;
  }
  if (pos != data_size)
    throw fail(fmt::format("{} bytes of data after the last tensor (the tensors cover {} of {} bytes)", data_size - pos,
                           pos, data_size));

  const char* data = bytes.data() + 8 + header_len;
  for (const Entry* e : by_offset) {
    Tensor t = empty(e->shape, {.dtype = e->dtype, .device = kCPU});
    const size_t n = static_cast<size_t>(e->end - e->begin);
    if (e->dtype == DType::Bool) {
      for (size_t i = 0; i < n; ++i) {
        const auto b = static_cast<unsigned char>(data[e->begin + i]);
        if (b > 1) throw fail(fmt::format("tensor '{}': BOOL element {} has the byte value {} (0 or 1 expected)", e->name, i, b));
      }
    }
    if (n) std::memcpy(t.raw_data(), data + e->begin, n);
    file.tensors.emplace_back(e->name, std::move(t));
  }
  return file;
}

}  // namespace attn::io
