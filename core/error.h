// Error types. Every error the engine raises on bad input is one of these, with a message that
// names the op, the shapes, the values or the file involved, so the caller can fix the input.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace attn {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error {  // shapes that do not fit (mismatch, broadcast, bad view)
 public:
  using Error::Error;
};
class DeviceError : public Error {  // tensors on different devices, or a device not built in
 public:
  using Error::Error;
};
class DTypeError : public Error {  // dtype not supported by an op, or mixed dtypes
 public:
  using Error::Error;
};
class IndexError : public Error {  // an index out of range (embedding ids, targets, dims)
 public:
  using Error::Error;
};
class ValueError : public Error {  // an argument outside its domain (p of dropout, ...)
 public:
  using Error::Error;
};
class AutogradError : public Error {  // misuse of the graph: freed graph, in-place change, ...
 public:
  using Error::Error;
};
class OutOfMemoryError : public Error {  // an allocation the device could not satisfy
 public:
  using Error::Error;
};
class IOError : public Error {  // a file that cannot be read, written or parsed
 public:
  using Error::Error;
};
class BackendError : public Error {  // a CUDA / cuBLAS / cuDNN call failed
 public:
  using Error::Error;
};

}  // namespace attn

// ATTN_CHECK(cond, ShapeError, "fmt {}", args...): throw the given error type when cond is false.
#define ATTN_CHECK(cond, ErrorType, ...)                   \
  do {                                                     \
    if (!(cond)) [[unlikely]] {                            \
      throw ::attn::ErrorType(::fmt::format(__VA_ARGS__)); \
    }                                                      \
  } while (0)

// Internal invariants: a failure here is a bug in the engine, so the message carries the location.
#define ATTN_ASSERT(cond, ...)                                                               \
  do {                                                                                       \
    if (!(cond)) [[unlikely]] {                                                              \
      throw ::attn::Error(::fmt::format("internal error at {}:{}: {} ({})", __FILE__, __LINE__, \
                                        #cond, ::fmt::format(__VA_ARGS__)));                 \
    }                                                                                        \
  } while (0)
