// CPU reductions: sum over any set of dims, max along a dim (with argmax), softmax and
// log_softmax along a dim with their backward. Sums of float accumulate in double.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/loop.h"
#include "kernels/cpu/row_math.h"

namespace attn::cpu {

namespace {

using kernels::ReduceDim;
using Dims = SmallVector<ReduceDim, 6>;

int64_t space_size(const Dims& dims) {
  int64_t n = 1;
  for (const ReduceDim& d : dims) n *= d.size;
  return n;
}

// Offsets (x, out) of linear index i within a dim list.
inline void space_offsets(const Dims& dims, int64_t i, int64_t& xo, int64_t& oo) {
  xo = 0;
  oo = 0;
  for (size_t d = dims.size(); d-- > 0;) {
    int64_t k = i % dims[d].size;
    i /= dims[d].size;
    xo += k * dims[d].xs;
    oo += k * dims[d].os;
  }
}

template <typename T>
void sum_typed(const Tensor& out, const Tensor& x) {
  using Acc = acc_t<T>;
  const kernels::ReducePlan plan = kernels::make_reduce_plan(out, x);
  const Dims& kept = plan.kept;
  const Dims& red = plan.red;
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  const int64_t n_out = space_size(kept);
  const int64_t n_red = space_size(red);
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n_red, 1));

  if (plan.inner_kept_contiguous()) {
    // Inner dim kept and contiguous: accumulate whole rows (vectorizes), blocks of the row in
    // parallel.
    constexpr int64_t kBlock = 256;
    const int64_t inner = kept.back().size;
    Dims outer(kept.begin(), kept.end() - 1);
    const int64_t n_outer = space_size(outer);
    const int64_t nblocks = (inner + kBlock - 1) / kBlock;
    parallel_for(n_outer * nblocks, std::max<int64_t>(1, grain / kBlock), [&](int64_t b, int64_t e) {
      Acc acc[kBlock];
      for (int64_t task = b; task < e; ++task) {
        int64_t o = task / nblocks, j0 = (task % nblocks) * kBlock;
        int64_t len = std::min(kBlock, inner - j0);
        int64_t xo, oo;
        space_offsets(outer, o, xo, oo);
        for (int64_t j = 0; j < len; ++j) acc[j] = 0;
        for (int64_t r = 0; r < n_red; ++r) {
          int64_t rx, unused;
          space_offsets(red, r, rx, unused);
          const T* row = xp + xo + rx + j0;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) acc[j] += static_cast<Acc>(row[j]);
        }
        for (int64_t j = 0; j < len; ++j) op[oo + j0 + j] = static_cast<T>(acc[j]);
      }
    });
    return;
  }
  // General case: each output element sums its reduced elements; the innermost reduced dim is
  // walked as a strided run.
  const int64_t rin = red.empty() ? 1 : red.back().size;
  const int64_t rin_stride = red.empty() ? 0 : red.back().xs;
  const Dims red_outer =
      red.empty() ? Dims() : Dims(red.begin(), red.end() - 1);
  const int64_t n_red_outer = space_size(red_outer);
  parallel_for(n_out, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t xo, oo;
      space_offsets(kept, o, xo, oo);
      Acc acc = 0;
      for (int64_t r = 0; r < n_red_outer; ++r) {
        int64_t rx, unused;
        space_offsets(red_outer, r, rx, unused);
        const T* p = xp + xo + rx;
        if (rin_stride == 1) {
#pragma omp simd reduction(+ : acc)
          for (int64_t j = 0; j < rin; ++j) acc += static_cast<Acc>(p[j]);
        } else {
          for (int64_t j = 0; j < rin; ++j) acc += static_cast<Acc>(p[j * rin_stride]);
        }
      }
      op[oo] = static_cast<T>(acc);
    }
  });
}

}  // namespace

void CpuBackend::sum(const Tensor& out, const Tensor& x) {
  dispatch_numeric(x.dtype(), "sum", [&](auto tag) { sum_typed<decltype(tag)>(out, x); });
}

void CpuBackend::max(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t dim) {
  RowSpace rs = make_rows({&x, &values, &indices}, dim);
  dispatch_numeric(x.dtype(), "max", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* vp = values.data<T>();
    int64_t* ip = indices.data<int64_t>();
    parallel_for(rs.rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(rs.len, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t off[3];
        rs.offsets(r, off);
        const T* p = xp + off[0];
        if constexpr (std::is_floating_point_v<T>) {
          if (rs.step[0] == 1) {  // contiguous: two vectorized passes instead of a branch per element
            const int64_t arg = row_argmax(p, rs.len);
            vp[off[1]] = p[arg];
            ip[off[2]] = arg;
            continue;
          }
        }
        T best = p[0];
        int64_t arg = 0;
        for (int64_t j = 1; j < rs.len; ++j) {
          T v = p[j * rs.step[0]];
          if constexpr (std::is_floating_point_v<T>) {
            if (std::isnan(best)) break;  // NaN wins, as in PyTorch
            if (v > best || std::isnan(v)) {
              best = v;
              arg = j;
            }
          } else if (v > best) {
            best = v;
            arg = j;
          }
        }
        vp[off[1]] = best;
        ip[off[2]] = arg;
      }
    });
  });
}

namespace {

// One softmax row: x read with stride sx, y written with stride sy. exp in the element type
// (vectorized fast exp for float), the sum carried in double.
template <typename T>
inline void softmax_row(const T* x, T* y, int64_t len, int64_t sx, int64_t sy, bool log) {
  using Acc = acc_t<T>;
  if (log && sx == 1) {  // one pass over memory for the log-sum-exp, one to write
    const auto lse = row_logsumexp(x, len);
    const T mx = static_cast<T>(lse.max), log_sum = static_cast<T>(lse.log_sum);
    for (int64_t j = 0; j < len; ++j) y[j * sy] = (x[j] - mx) - log_sum;  // (see LogSumExp)
    return;
  }
  T mx = -std::numeric_limits<T>::infinity();
  if (sx == 1) {
    mx = row_max(x, len);
  } else {
    for (int64_t j = 0; j < len; ++j) mx = std::max(mx, x[j * sx]);
  }
  if (std::isinf(mx) && mx < 0) mx = 0;  // a row of -inf: avoid inf - inf
  Acc total = 0;
  if (log) {  // strided rows (contiguous ones took row_logsumexp above)
    for (int64_t j = 0; j < len; ++j) total += static_cast<Acc>(exp_nonpositive_t(x[j * sx] - mx));
    const T log_sum = static_cast<T>(std::log(total));
    for (int64_t j = 0; j < len; ++j) y[j * sy] = (x[j * sx] - mx) - log_sum;
    return;
  }
  if (sx == 1 && sy == 1) {
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < len; ++j) {
      const T e = exp_nonpositive_t(x[j] - mx);
      y[j] = e;
      total += static_cast<Acc>(e);
    }
    const T inv = static_cast<T>(Acc(1) / total);
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) y[j] *= inv;
    return;
  }
  for (int64_t j = 0; j < len; ++j) {
    const T e = exp_nonpositive_t(x[j * sx] - mx);
    y[j * sy] = e;
    total += static_cast<Acc>(e);
  }
  const T inv = static_cast<T>(Acc(1) / total);
  for (int64_t j = 0; j < len; ++j) y[j * sy] *= inv;
}

}  // namespace

void CpuBackend::softmax(const Tensor& out, const Tensor& x, int64_t dim, bool log) {
  RowSpace rs = make_rows({&x, &out}, dim);
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    parallel_for(rs.rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(rs.len, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t off[2];
        rs.offsets(r, off);
        softmax_row(xp + off[0], op + off[1], rs.len, rs.step[0], rs.step[1], log);
      }
    });
  });
}

void CpuBackend::softmax_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& y,
                                  int64_t dim, bool log) {
  RowSpace rs = make_rows({&grad_x, &grad_y, &y}, dim);
  dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    using Acc = acc_t<T>;
    T* gx = grad_x.data<T>();
    const T* gy = grad_y.data<T>();
    const T* yp = y.data<T>();
    const int64_t s0 = rs.step[0], s1 = rs.step[1], s2 = rs.step[2], len = rs.len;
    parallel_for(rs.rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(len, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t off[3];
        rs.offsets(r, off);
        T* a = gx + off[0];
        const T* g = gy + off[1];
        const T* yy = yp + off[2];
        Acc dot = 0;
        if (log) {
          // d/dx of log_softmax: g - softmax * sum(g)
          for (int64_t j = 0; j < len; ++j) dot += g[j * s1];
          const T d = static_cast<T>(dot);
          for (int64_t j = 0; j < len; ++j) a[j * s0] = g[j * s1] - exp_nonpositive_t(yy[j * s2]) * d;  // y <= 0
        } else {
          // d/dx of softmax: y * (g - sum(g * y))
          for (int64_t j = 0; j < len; ++j) dot += static_cast<Acc>(g[j * s1]) * yy[j * s2];
          for (int64_t j = 0; j < len; ++j)
            a[j * s0] = static_cast<T>(yy[j * s2] * (g[j * s1] - dot));
        }
      }
    });
  });
}

}  // namespace attn::cpu
