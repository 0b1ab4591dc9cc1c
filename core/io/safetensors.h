// The safetensors format (huggingface/safetensors), the checkpoint format of the engine:
//
//   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data]
//   header = {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value", ...}}   (metadata optional, strings only)
//
// Offsets are relative to the start of the data section; every tensor is stored contiguous,
// row-major and little-endian. The header is padded with spaces so the data starts at a multiple
// of 8 bytes (as the reference implementation does). Supported dtypes: F32, F64, I64, BOOL.
//
// Loading is strict, as the reference implementation is: the tensors must tile the data section
// exactly (no gaps, no overlaps, nothing after the last one), BOOL bytes must be 0 or 1, and every
// problem is an attn::IOError naming the file and what is wrong.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace attn::io {

// Tensors from any device and with any strides (copied to host, contiguous); the data section
// keeps the given order, the JSON header has its keys sorted (nlohmann's order). Written
// atomically (core/io/atomic_file.h). ValueError for a duplicate, empty or reserved
// ("__metadata__") name or an undefined tensor; DTypeError for an unsupported dtype.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  // CPU tensors in data-section order (which is the saved order; empty tensors that share an
  // offset come in header order, i.e. by name).
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  std::string source;  // what the tensors were read from ("'path'" for a file), for messages
  // The tensor called `name`; IOError naming the file and its tensors when absent.
  const Tensor& at(const std::string& name) const;
};

SafetensorsFile load_safetensors(const std::string& path);

// The same from / to bytes in memory; `what` names the source in error messages.
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what);

}  // namespace attn::io
