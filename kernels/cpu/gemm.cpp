// CPU matrix products through OpenBLAS (CBLAS). Operands are passed with their strides: a
// matrix whose last or second-to-last dim has unit stride goes to BLAS as it is, with the
// transpose flag saying which; only a matrix with neither (rare) is copied first.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/packed_gemm.h"
#include "kernels/iter.h"

namespace attn::cpu {

namespace {

struct BlasMatrix {
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 1;
};

bool blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, BlasMatrix& m) {
  kernels::MatrixLayout l;
  if (!kernels::matrix_layout(rows, cols, rs, cs, l)) return false;
  m.trans = l.trans ? CblasTrans : CblasNoTrans;
  m.ld = l.ld;
  return true;
}

// CBLAS takes int sizes: a size or leading dimension past INT_MAX would wrap silently. (Checked
// before the parallel regions, where an exception cannot leave.)
inline void check_blas_ints(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  for (const int64_t v : {M, N, K, lda, ldb, ldc})
    ATTN_CHECK(v <= std::numeric_limits<int>::max(), ShapeError,
               "matmul: a GEMM of ({} x {}) by ({} x {}) (leading dimensions {}, {}, {}) exceeds BLAS's int sizes", M, K, K,
               N, lda, ldb, ldc);
}

inline void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                      float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}
inline void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                      const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                      double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

}  // namespace

void CpuBackend::bmm(const Tensor& out, const Tensor& a_in, const Tensor& b_in, bool accumulate) {
  ATTN_ASSERT(out.dim() == 3 && a_in.dim() == 3 && b_in.dim() == 3, "bmm wants 3-d operands");
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  if (B == 0 || M == 0 || N == 0) return;  // before the layout checks: an empty output's strides can be anything
  Tensor a = a_in, b = b_in;
  BlasMatrix ma, mb, mc;
  if (!blas_layout(M, K, a.stride(1), a.stride(2), ma)) {
    a = empty(a.shape(), {a.dtype(), kCPU});
    copy(a, a_in);
    blas_layout(M, K, a.stride(1), a.stride(2), ma);
  }
  if (!blas_layout(K, N, b.stride(1), b.stride(2), mb)) {
    b = empty(b.shape(), {b.dtype(), kCPU});
    copy(b, b_in);
    blas_layout(K, N, b.stride(1), b.stride(2), mb);
  }
  const bool out_ok = blas_layout(M, N, out.stride(1), out.stride(2), mc) && mc.trans == CblasNoTrans;
  ATTN_ASSERT(out_ok, "bmm output must be row-major, strides {}", out.strides());
  if (K == 0) {
    if (!accumulate) fill(out, 0.0);
    return;
  }
  check_blas_ints(M, N, K, ma.ld, mb.ld, mc.ld);
  dispatch_float(out.dtype(), "bmm", [&](auto tag) {
    using T = decltype(tag);
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* cp = out.data<T>();
    const T beta = accumulate ? T(1) : T(0);
    const int64_t sa = a.size(0) == 1 ? 0 : a.stride(0);
    const int64_t sb = b.size(0) == 1 ? 0 : b.stride(0);
    const int64_t sc = out.stride(0);
    const int nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    if (nthreads > 1 && B == 1 && M <= 64 && N >= 32 * nthreads && work >= 1 << 16) {
      // Few rows (a decoder step, a GEMV): OpenBLAS threads these poorly; give each OpenMP
      // thread its own block of columns instead (BLAS runs single-threaded inside).
#pragma omp parallel num_threads(nthreads)
      {
        const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
        const int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16;
        const int64_t n0 = id * chunk, n1 = std::min(N, n0 + chunk);
        if (n0 < n1) {
          const T* bcol = mb.trans == CblasNoTrans ? bp + n0 : bp + n0 * mb.ld;
          gemm_call(ma.trans, mb.trans, M, n1 - n0, K, ap, ma.ld, bcol, mb.ld, beta, cp + n0, mc.ld);
        }
      }
      return;
    }
    if (nthreads > 1 && B >= nthreads && work < 1 << 20) {
      // Many small products (attention over a batch): one thread per group of them.
#pragma omp parallel for num_threads(nthreads) schedule(static)
      for (int64_t i = 0; i < B; ++i)
        gemm_call(ma.trans, mb.trans, M, N, K, ap + i * sa, ma.ld, bp + i * sb, mb.ld, beta, cp + i * sc, mc.ld);
      return;
    }
    for (int64_t i = 0; i < B; ++i) {
      gemm_call(ma.trans, mb.trans, M, N, K, ap + i * sa, ma.ld, bp + i * sb, mb.ld, beta, cp + i * sc, mc.ld);
    }
  });
}

namespace {

struct CpuPrepared final : kernels::PreparedMatrix {
  PackedPanels panels;
  const void* source = nullptr;  // b's first element and geometry, to catch a mismatched b
  Shape shape;
  Strides strides;
};

}  // namespace

std::shared_ptr<const kernels::PreparedMatrix> CpuBackend::prepare_rhs(const Tensor& b) {
  // others take the plain bmm (float64, and every product in a build without FMA)
  if (!kPackedGemmUsed || b.dtype() != DType::Float32 || b.dim() != 2) return nullptr;
  auto p = std::make_shared<CpuPrepared>();
  p->panels = pack_panels(b.data<float>(), b.size(0), b.size(1), b.stride(0), b.stride(1));
  p->source = b.data<float>();
  p->shape = b.shape();
  p->strides = b.strides();
  return p;
}

void CpuBackend::matmul_prepared(const Tensor& out, const Tensor& a, const Tensor& b, const kernels::PreparedMatrix* prepared,
                                 bool accumulate) {
  const auto* p = dynamic_cast<const CpuPrepared*>(prepared);
  const bool packed_ok = p && a.dtype() == DType::Float32 && out.dtype() == DType::Float32 && a.dim() == 2 &&
                         out.dim() == 2 && a.stride(1) == 1 && out.stride(1) == 1 && a.size(1) == p->panels.K &&
                         out.size(1) == p->panels.N && out.size(0) == a.size(0);
  if (!packed_ok) return Backend::matmul_prepared(out, a, b, nullptr, accumulate);
  ATTN_ASSERT(b.data<float>() == p->source && b.shape() == p->shape && b.strides() == p->strides,
              "matmul_prepared: b is not the matrix that was prepared");
  packed_gemm(a.size(0), a.data<float>(), a.stride(0), p->panels, out.data<float>(), out.stride(0), accumulate);
}

}  // namespace attn::cpu
