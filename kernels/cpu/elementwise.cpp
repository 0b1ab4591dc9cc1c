// CPU elementwise kernels: fill, copy (with casts), unary and binary maps, where, masked_fill.
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loop.h"
#include "kernels/functors.h"

namespace attn::cpu {

using kernels::BinaryOp;
using kernels::UnaryOp;

void CpuBackend::fill(const Tensor& out, double value) {
  StridedIter it = make_iter(out, {});
  dispatch_all(out.dtype(), "fill", [&](auto tag) {
    using T = decltype(tag);
    elementwise<T>(it, kernels::fn::Fill<T>{static_cast<T>(value)});
  });
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() &&
      dst.shape() == src.shape()) {
    const int64_t es = static_cast<int64_t>(dtype_size(dst.dtype()));
    char* d = static_cast<char*>(dst.raw_data());
    const char* s = static_cast<const char*>(src.raw_data());
    parallel_for(dst.numel(), kParallelGrain * 4, [&](int64_t b, int64_t e) {
      std::memcpy(d + b * es, s + b * es, static_cast<size_t>((e - b) * es));
    });
    return;
  }
  StridedIter it = make_iter(dst, {&src});
  dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src.dtype(), "copy", [&](auto stag) {
      using S = decltype(stag);
      elementwise<D, S>(it, kernels::fn::Cast<D, S>{});
    });
  });
}

void CpuBackend::copy_to_host(void* host_dst, const Tensor& src) {
  ATTN_ASSERT(src.is_contiguous(), "copy_to_host needs a contiguous tensor");
  std::memcpy(host_dst, src.raw_data(), static_cast<size_t>(src.numel()) * dtype_size(src.dtype()));
}

void CpuBackend::copy_from_host(const Tensor& dst, const void* host_src) {
  ATTN_ASSERT(dst.is_contiguous(), "copy_from_host needs a contiguous tensor");
  std::memcpy(dst.raw_data(), host_src, static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype()));
}

void CpuBackend::unary(UnaryOp op, const Tensor& out, const Tensor& x, double scalar) {
  StridedIter it = make_iter(out, {&x});
  bool done = false;
  kernels::visit_elementwise_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    done = kernels::visit_unary<T>(op, scalar, [&](auto f) { elementwise<typename decltype(f)::out_t, T>(it, f); });
  });
  ATTN_CHECK(done, DTypeError, "{}: not defined for dtype {}", kernels::op_name(op), x.dtype());
}

void CpuBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  StridedIter it = make_iter(out, {&a, &b});
  bool done = false;
  kernels::visit_elementwise_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    done = kernels::visit_binary<T>(op, [&](auto f) { elementwise<typename decltype(f)::out_t, T, T>(it, f); });
  });
  ATTN_CHECK(done, DTypeError, "{}: not defined for dtype {}", kernels::op_name(op), a.dtype());
}

void CpuBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  StridedIter it = make_iter(out, {&cond, &a, &b});
  dispatch_all(out.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    elementwise<T, bool, T, T>(it, kernels::fn::Where<T>{});
  });
}

void CpuBackend::masked_fill(const Tensor& out, const Tensor& x, const Tensor& mask, double value) {
  StridedIter it = make_iter(out, {&x, &mask});
  dispatch_all(out.dtype(), "masked_fill", [&](auto tag) {
    using T = decltype(tag);
    elementwise<T, T, bool>(it, kernels::fn::MaskedFill<T>{static_cast<T>(value)});
  });
}

}  // namespace attn::cpu
