// The table of op cases, in the spirit of ggml's test-backend-ops: each line names an op, draws
// random inputs of random shapes (contiguous or strided views, float32 or float64), runs the op,
// and gives the double-precision reference. The same table drives
//   - test_ops.cpp:          forward vs reference and backward vs finite differences (CPU);
//   - test_backend_ops.cpp:  CUDA vs CPU, forward and all gradients.
// Adding an op = adding one entry to op_cases() in op_cases.cpp.
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/ref_ops.h"

namespace attn::test {

struct Args {
  std::vector<Tensor> x;       // tensor inputs
  std::vector<int64_t> p;      // integer parameters drawn with the inputs (dims, sizes, ...)
};

struct Ctx {
  Generator& gen;
  std::mt19937& rng;
  Layout layout;
  DType dtype;
  Tensor rand(const Shape& s, double lo = -1.0, double hi = 1.0) {
    return rand_tensor(gen, s, layout, dtype, lo, hi);
  }
  Shape shape(int min_rank, int max_rank, int64_t max_dim) {
    return rand_shape(rng, min_rank, max_rank, max_dim);
  }
  int64_t pick(int64_t lo, int64_t hi) {  // uniform integer in [lo, hi]
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  }
};

struct OpCase {
  std::string name;
  std::function<Args(Ctx&)> make;
  std::function<Tensor(const Args&)> fn;
  std::function<Ref(const std::vector<Ref>&, const std::vector<int64_t>&)> ref;
  std::vector<int> wrt;  // inputs that get gradients (float ones)
  double rtol = 1e-5;    // float32 forward tolerance against the double reference
  double atol = 1e-6;
  double fd_eps = 1e-6;  // finite-difference step (float64)
  double fd_rtol = 1e-5;
};

const std::vector<OpCase>& op_cases();

}  // namespace attn::test
