#include "kernels/iter.h"

namespace attn::kernels {

StridedIter make_iter(const Tensor& out, std::initializer_list<const Tensor*> inputs) {
  StridedIter it;
  it.nops = 1 + static_cast<int>(inputs.size());
  ATTN_ASSERT(it.nops <= kMaxOperands, "too many operands: {}", it.nops);
  const Shape& shape = out.shape();
  const int rank = static_cast<int>(shape.size());
  it.numel = out.numel();

  // Fast path: every operand contiguous with out's shape, one flat loop.
  bool flat = out.is_contiguous();
  for (const Tensor* t : inputs) flat = flat && t->shape() == shape && t->is_contiguous();
  if (flat) {
    it.base[0] = static_cast<char*>(out.raw_data());
    int k = 1;
    for (const Tensor* t : inputs) it.base[k++] = static_cast<char*>(t->raw_data());
    if (it.numel != 1) {
      it.ndim = 1;
      it.sizes.push_back(it.numel);
      it.strides[0].push_back(static_cast<int64_t>(dtype_size(out.dtype())));
      k = 1;
      for (const Tensor* t : inputs) it.strides[k++].push_back(static_cast<int64_t>(dtype_size(t->dtype())));
    }
    return it;
  }

  // Byte strides of every operand over out's shape (right-aligned broadcast).
  SmallVector<int64_t, 6> full[kMaxOperands];
  const Tensor* ops[kMaxOperands] = {&out};
  int k = 1;
  for (const Tensor* t : inputs) ops[k++] = t;
  for (int op = 0; op < it.nops; ++op) {
    const Tensor& t = *ops[op];
    it.base[op] = static_cast<char*>(t.raw_data());
    const int64_t es = static_cast<int64_t>(dtype_size(t.dtype()));
    const int tr = static_cast<int>(t.dim());
    ATTN_ASSERT(tr <= rank, "operand of rank {} wider than output rank {}", tr, rank);
    full[op].resize(rank, 0);
    for (int d = 0; d < tr; ++d) {
      int od = rank - tr + d;
      int64_t sz = t.shape()[d];
      ATTN_ASSERT(sz == shape[od] || sz == 1, "operand shape {} does not broadcast to {}",
                  t.shape(), shape);
      full[op][od] = (sz == 1 && shape[od] != 1) ? 0 : t.strides()[d] * es;
    }
  }
  // Drop size-1 dims, then merge a dim into the next inner one when contiguous for all.
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    if (it.ndim > 0) {
      bool mergeable = true;
      // the previous kept dim (outer) merges with d (inner) if stride_outer == stride_d * size_d
      for (int op = 0; op < it.nops; ++op) {
        if (it.strides[op][it.ndim - 1] != full[op][d] * shape[d]) {
          mergeable = false;
          break;
        }
      }
      if (mergeable) {
        it.sizes[it.ndim - 1] *= shape[d];
        for (int op = 0; op < it.nops; ++op) it.strides[op][it.ndim - 1] = full[op][d];
        continue;
      }
    }
    it.sizes.push_back(shape[d]);
    for (int op = 0; op < it.nops; ++op) it.strides[op].push_back(full[op][d]);
    ++it.ndim;
  }
  return it;
}

}  // namespace attn::kernels

namespace attn::kernels {

RowSpace make_rows(std::initializer_list<const Tensor*> ops, int64_t dim) {
  RowSpace rs;
  rs.nops = static_cast<int>(ops.size());
  ATTN_ASSERT(rs.nops <= kMaxOperands, "too many operands");
  const Tensor& first = **ops.begin();
  const Shape& shape = first.shape();
  rs.len = shape[dim];
  int k = 0;
  for (const Tensor* t : ops) {
    rs.step[k] = t->shape()[dim] == 1 ? 0 : t->strides()[dim];
    ++k;
  }
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d == dim || shape[d] == 1) continue;
    int kk = 0;
    bool merge = !rs.sizes.empty();
    if (merge) {
      for (const Tensor* t : ops) {
        if (rs.strides[kk].back() != t->strides()[d] * shape[d]) merge = false;
        ++kk;
      }
    }
    if (merge) {
      rs.sizes.back() *= shape[d];
      kk = 0;
      for (const Tensor* t : ops) rs.strides[kk++].back() = t->strides()[d];
    } else {
      rs.sizes.push_back(shape[d]);
      kk = 0;
      for (const Tensor* t : ops) rs.strides[kk++].push_back(t->strides()[d]);
    }
    rs.rows *= shape[d];
  }
  return rs;
}

}  // namespace attn::kernels
