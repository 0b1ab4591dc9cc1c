// Iteration plans shared by the CPU and CUDA backends (host code).
//
// make_iter() lays the output and its inputs over the output's shape (inputs broadcast with
// stride 0), drops size-1 dims and merges dims that are contiguous for every operand, so that
// most calls become one flat loop. make_rows() describes a tensor as rows along one dim (the
// shape of softmax, max and the fused row kernels).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "core/tensor.h"

namespace attn::kernels {

inline constexpr int kMaxOperands = 4;

struct StridedIter {
  int nops = 0;
  int ndim = 0;                        // after coalescing; 0 for a single element
  SmallVector<int64_t, 6> sizes;       // outermost first
  SmallVector<int64_t, 6> strides[kMaxOperands];  // bytes
  char* base[kMaxOperands] = {};
  int64_t numel = 0;
};

// Operand 0 is `out`; the others are broadcast to out's shape.
StridedIter make_iter(const Tensor& out, std::initializer_list<const Tensor*> inputs);

// The rows of a tensor along one dim: every position of the other dims is one row of `len`
// elements, `step` apart. Several same-shaped operands share the row space (x, out, grad...).
struct RowSpace {
  int nops = 0;
  int64_t rows = 1;
  int64_t len = 1;
  int64_t step[kMaxOperands] = {};  // element stride along the row, per operand
  SmallVector<int64_t, 6> sizes;    // the other dims (coalesced)
  SmallVector<int64_t, 6> strides[kMaxOperands];

  // Element offset of row `r` for each operand.
  void offsets(int64_t r, int64_t* off) const {
    for (int k = 0; k < nops; ++k) off[k] = 0;
    for (size_t d = sizes.size(); d-- > 0;) {
      int64_t i = r % sizes[d];
      r /= sizes[d];
      for (int k = 0; k < nops; ++k) off[k] += i * strides[k][d];
    }
  }
};

// All operands must have the shape of the first one, except that an operand may have size 1
// at `dim` (a keepdim reduction result): its step is then 0.
RowSpace make_rows(std::initializer_list<const Tensor*> ops, int64_t dim);

// A sum of x into out (out has x's rank; dims where out has size 1 and x does not are summed):
// the kept and the summed dims, each list coalesced, with element strides.
struct ReduceDim {
  int64_t size, xs, os;  // size, stride in x, stride in out (0 for summed dims)
};
struct ReducePlan {
  SmallVector<ReduceDim, 6> kept, red;
  int64_t n_out() const;
  int64_t n_red() const;
  // The innermost input dim is kept and unit-stride in both: neighbouring outputs read
  // neighbouring inputs.
  bool inner_kept_contiguous() const {
    return !kept.empty() && kept.back().xs == 1 && kept.back().os == 1 && (red.empty() || red.back().xs != 1);
  }
};
ReducePlan make_reduce_plan(const Tensor& out, const Tensor& x);

// How a BLAS reads a row-major (rows x cols) matrix with element strides (rs, cs), if it can:
// as it is (trans = false, leading dim ld) or as the row-major transpose (trans = true).
struct MatrixLayout {
  bool trans = false;
  int64_t ld = 1;
};
bool matrix_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, MatrixLayout& m);

}  // namespace attn::kernels
