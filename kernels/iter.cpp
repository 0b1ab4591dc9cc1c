#include "kernels/iter.h"

#include <algorithm>

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

namespace attn::kernels {

namespace {
void push_coalesced(SmallVector<ReduceDim, 6>& dims, ReduceDim d) {
  if (!dims.empty()) {
    ReduceDim& o = dims.back();
    if (o.xs == d.xs * d.size && o.os == d.os * d.size) {
      o.size *= d.size;
      o.xs = d.xs;
      o.os = d.os;
      return;
    }
  }
  dims.push_back(d);
}
int64_t product(const SmallVector<ReduceDim, 6>& dims) {
  int64_t n = 1;
  for (const ReduceDim& d : dims) n *= d.size;
  return n;
}
}  // namespace

int64_t ReducePlan::n_out() const { return product(kept); }
int64_t ReducePlan::n_red() const { return product(red); }

ReducePlan make_reduce_plan(const Tensor& out, const Tensor& x) {
  ReducePlan p;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) == 1) continue;
    if (out.size(d) == 1)
      push_coalesced(p.red, {x.size(d), x.stride(d), 0});
    else
      push_coalesced(p.kept, {x.size(d), x.stride(d), out.stride(d)});
  }
  return p;
}

bool matrix_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, MatrixLayout& m) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= std::max<int64_t>(1, cols))) {
    m.trans = false;
    m.ld = rows == 1 ? std::max<int64_t>(1, cols) : rs;
    return true;
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= std::max<int64_t>(1, rows))) {
    m.trans = true;  // memory holds the (cols x rows) transpose, row-major
    m.ld = cols == 1 ? std::max<int64_t>(1, rows) : cs;
    return true;
  }
  return false;
}

}  // namespace attn::kernels
