// Host side of the CUDA backend (compiled by the C++ compiler): device contexts, the caching
// allocator's device memory, cuBLAS GEMMs, and for every other kernel the plan (strides,
// coalesced dims, validation) handed to the launchers of kernels/cuda/*.cu.
#include "kernels/cuda/cuda_backend.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/launch.h"
#include "kernels/iter.h"

namespace attn::cuda {

using kernels::BinaryOp;
using kernels::UnaryOp;

// ---------------------------------------------------------------- errors

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  const std::string msg = fmt::format("CUDA error {} ({}): {} in `{}` at {}:{}", static_cast<int>(err),
                                      cudaGetErrorName(err), cudaGetErrorString(err), expr, file, line);
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  if (err == cudaErrorMemoryAllocation) throw OutOfMemoryError(msg);
  throw BackendError(msg);
}

// A library that could not allocate its own workspace is out of memory too (the caching
// allocator may hold the rest of the card in its free lists).
void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
  const std::string msg = fmt::format("cuBLAS error {} ({}) in `{}` at {}:{}", static_cast<int>(st),
                                      cublasGetStatusString(st), expr, file, line);
  if (st == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfMemoryError(msg);
  throw BackendError(msg);
}

void throw_cudnn_error(cudnnStatus_t st, const char* expr, const char* file, int line) {
  const std::string msg = fmt::format("cuDNN error {} ({}) in `{}` at {}:{}", static_cast<int>(st),
                                      cudnnGetErrorString(st), expr, file, line);
  if (st == CUDNN_STATUS_ALLOC_FAILED) throw OutOfMemoryError(msg);
  throw BackendError(msg);
}

// ---------------------------------------------------------------- devices

namespace {

constexpr int kMaxDevices = 16;

struct Probe {
  int count = 0;
  std::string reason;
};

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    const cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      r.reason = fmt::format("the CUDA runtime reports {}: {}", cudaGetErrorName(err), cudaGetErrorString(err));
      r.count = 0;
      cudaGetLastError();
    } else if (r.count == 0) {
      r.reason = "the CUDA runtime sees no device";
    }
    return r;
  }();
  return p;
}

void check_device(Device device) {
  ATTN_CHECK(cuda_available(), DeviceError, "device {} requested, but no GPU is usable: {}", device,
             cuda_unavailable_reason());
  ATTN_CHECK(device.index >= 0 && device.index < probe().count, DeviceError,
             "device {} requested, but only {} CUDA device(s) exist", device, probe().count);
}

void set_device(int index) {
  thread_local int current = -1;
  if (current != index) {
    ATTN_CUDA_CHECK(cudaSetDevice(index));
    current = index;
  }
}

// cudaMalloc / cudaFree for the caching allocator; reports the device's free memory on OOM.
class CudaMemory final : public MemorySource {
 public:
  explicit CudaMemory(int index) : index_(index) {}
  void* raw_alloc(size_t nbytes) override {
    set_device(index_);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, nbytes);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    ATTN_CUDA_CHECK(err);
    return p;
  }
  void raw_free(void* ptr) override {
    set_device(index_);
    const cudaError_t err = cudaFree(ptr);
    if (err == cudaErrorCudartUnloading) {  // at process exit, after the runtime shut down: the memory is gone anyway
      cudaGetLastError();
      return;
    }
    ATTN_CUDA_CHECK(err);
  }
  std::string describe() const override {
    size_t free_b = 0, total = 0;
    if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) {
      cudaGetLastError();
      return {};
    }
    return fmt::format("; the device has {} free of {}", format_bytes(static_cast<int64_t>(free_b)),
                       format_bytes(static_cast<int64_t>(total)));
  }

 private:
  int index_;
};

struct DeviceState {
  DeviceContext ctx;
  std::unique_ptr<CachingAllocator> allocator;
  std::unique_ptr<CudaBackend> backend;
};

std::mutex g_mu;
// Never destroyed: the CUDA runtime registers its own shutdown at the first CUDA call, so it
// runs before the destructors of globals made earlier; freeing device memory after it fails.
// The process exit returns the memory, streams and handles.
std::array<std::unique_ptr<DeviceState>, kMaxDevices>& g_devices = *new std::array<std::unique_ptr<DeviceState>, kMaxDevices>();

DeviceState& state(Device device) {
  const int i = device.index;
  if (i >= 0 && i < kMaxDevices && g_devices[i]) [[likely]] {
    set_device(i);
    return *g_devices[i];
  }
  check_device(device);
  ATTN_CHECK(i < kMaxDevices, DeviceError, "CUDA device {}: at most {} CUDA devices are supported", i, kMaxDevices);
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_devices[i]) {
    auto s = std::make_unique<DeviceState>();
    set_device(i);
    s->ctx.index = i;
    ATTN_CUDA_CHECK(cudaGetDeviceProperties(&s->ctx.props, i));
    ATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&s->ctx.stream, cudaStreamNonBlocking));
    ATTN_CUBLAS_CHECK(cublasCreate(&s->ctx.cublas));
    ATTN_CUBLAS_CHECK(cublasSetStream(s->ctx.cublas, s->ctx.stream));
    s->allocator = std::make_unique<CachingAllocator>(device.str(), std::make_unique<CudaMemory>(i));
    s->allocator->set_stream(reinterpret_cast<uintptr_t>(s->ctx.stream));
    if (const char* off = std::getenv("ATTN_CUDA_NO_CACHING"); off && *off && std::string_view(off) != "0")
      s->allocator->set_caching(false);  // for compute-sanitizer (see CachingAllocator::set_caching)
    s->backend = std::make_unique<CudaBackend>(device);
    g_devices[i] = std::move(s);
  }
  set_device(i);
  return *g_devices[i];
}

}  // namespace

bool cuda_available() { return probe().count > 0; }
std::string cuda_unavailable_reason() { return probe().reason; }
kernels::Backend& cuda_backend(Device device) { return *state(device).backend; }
CachingAllocator& cuda_allocator(Device device) { return *state(device).allocator; }
DeviceContext& context(Device device) { return state(device).ctx; }

cudnnHandle_t cudnn_handle(Device device) {
  DeviceContext& ctx = context(device);
  if (!ctx.cudnn) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!ctx.cudnn) {
      ATTN_CUDNN_CHECK(cudnnCreate(&ctx.cudnn));
      ATTN_CUDNN_CHECK(cudnnSetStream(ctx.cudnn, ctx.stream));
    }
  }
  return ctx.cudnn;
}

// ---------------------------------------------------------------- plans

namespace {

OffsetCalc to_calc(const SmallVector<int64_t, 6>& sizes, const SmallVector<int64_t, 6>* strides, int nops,
                   std::string_view op) {
  ATTN_CHECK(static_cast<int>(sizes.size()) <= kMaxDims, ShapeError,
             "{}: operands need {} separate dims after merging (the CUDA kernels take up to {}); make "
             "them contiguous first",
             op, sizes.size(), kMaxDims);
  OffsetCalc c;
  c.ndim = static_cast<int>(sizes.size());
  c.nops = nops;
  for (int d = 0; d < c.ndim; ++d) {
    c.sizes[d] = sizes[d];
    for (int k = 0; k < nops; ++k) c.strides[k][d] = strides[k][d];
  }
  return c;
}

ElementwiseArgs elementwise_args(const Tensor& out, std::initializer_list<const Tensor*> inputs, std::string_view op) {
  kernels::StridedIter it = kernels::make_iter(out, inputs);
  ElementwiseArgs a;
  a.n = it.numel;
  for (int k = 0; k < it.nops; ++k) a.ptr[k] = it.base[k];
  bool contiguous = it.ndim <= 1;
  if (it.ndim == 1) {
    const Tensor* ops[kMaxOperands] = {&out};
    int k = 1;
    for (const Tensor* t : inputs) ops[k++] = t;
    for (k = 0; k < it.nops; ++k)
      contiguous = contiguous && it.strides[k][0] == static_cast<int64_t>(dtype_size(ops[k]->dtype()));
  }
  a.contiguous = contiguous;
  if (!contiguous) a.calc = to_calc(it.sizes, it.strides, it.nops, op);
  return a;
}

RowArgs row_args(std::initializer_list<const Tensor*> ops, int64_t dim, std::string_view op) {
  kernels::RowSpace rs = kernels::make_rows(ops, dim);
  RowArgs a;
  a.rows = rs.rows;
  a.len = rs.len;
  a.calc = to_calc(rs.sizes, rs.strides, rs.nops, op);
  int k = 0;
  for (const Tensor* t : ops) {
    a.step[k] = rs.step[k];
    a.ptr[k] = t->raw_data();
    ++k;
  }
  return a;
}

int sm_count(Device d) { return context(d).props.multiProcessorCount; }

}  // namespace

cudaStream_t CudaBackend::stream() const { return context(device_).stream; }

// ---------------------------------------------------------------- memory

void CudaBackend::fill(const Tensor& out, double value) {
  ATTN_CUDA_CHECK(launch_fill(out.dtype(), elementwise_args(out, {}, "fill"), value, stream()));
}

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.shape() == src.shape() && dst.is_contiguous() && src.is_contiguous()) {
    const size_t bytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
    if (bytes) ATTN_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  ATTN_CUDA_CHECK(launch_copy(dst.dtype(), src.dtype(), elementwise_args(dst, {&src}, "copy"), stream()));
}

void CudaBackend::copy_to_host(void* host_dst, const Tensor& src) {
  ATTN_ASSERT(src.is_contiguous(), "copy_to_host needs a contiguous tensor");
  const size_t bytes = static_cast<size_t>(src.numel()) * dtype_size(src.dtype());
  ATTN_CUDA_CHECK(cudaMemcpyAsync(host_dst, src.raw_data(), bytes, cudaMemcpyDeviceToHost, stream()));
  ATTN_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::copy_from_host(const Tensor& dst, const void* host_src) {
  ATTN_ASSERT(dst.is_contiguous(), "copy_from_host needs a contiguous tensor");
  const size_t bytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
  ATTN_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), host_src, bytes, cudaMemcpyHostToDevice, stream()));
  ATTN_CUDA_CHECK(cudaStreamSynchronize(stream()));  // the host buffer may go away after return
}

void CudaBackend::synchronize() { ATTN_CUDA_CHECK(cudaStreamSynchronize(stream())); }

// ---------------------------------------------------------------- elementwise

void CudaBackend::unary(UnaryOp op, const Tensor& out, const Tensor& x, double scalar) {
  ATTN_CHECK(unary_supported(op, x.dtype()), DTypeError, "{}: not defined for dtype {}", kernels::op_name(op), x.dtype());
  ATTN_CUDA_CHECK(launch_unary(op, x.dtype(), scalar, elementwise_args(out, {&x}, kernels::op_name(op)), stream()));
}

void CudaBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  ATTN_CHECK(binary_supported(op, a.dtype()), DTypeError, "{}: not defined for dtype {}", kernels::op_name(op), a.dtype());
  ATTN_CUDA_CHECK(launch_binary(op, a.dtype(), elementwise_args(out, {&a, &b}, kernels::op_name(op)), stream()));
}

void CudaBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  ATTN_CUDA_CHECK(launch_where(out.dtype(), elementwise_args(out, {&cond, &a, &b}, "where"), stream()));
}

void CudaBackend::masked_fill(const Tensor& out, const Tensor& x, const Tensor& mask, double value) {
  ATTN_CUDA_CHECK(launch_masked_fill(out.dtype(), elementwise_args(out, {&x, &mask}, "masked_fill"), value, stream()));
}

// ---------------------------------------------------------------- reductions

void CudaBackend::sum(const Tensor& out, const Tensor& x) {
  ATTN_CHECK(x.dtype() != DType::Bool, DTypeError, "sum: not defined for bool on {}", device_);
  const kernels::ReducePlan plan = kernels::make_reduce_plan(out, x);
  SumArgs a;
  a.n_out = plan.n_out();
  a.n_red = plan.n_red();
  a.x = x.raw_data();
  a.out = out.raw_data();
  a.inner_kept_contiguous = plan.inner_kept_contiguous();
  SmallVector<int64_t, 6> ks, kx, ko, rs, rx;
  for (const auto& d : plan.kept) {
    ks.push_back(d.size);
    kx.push_back(d.xs);
    ko.push_back(d.os);
  }
  for (const auto& d : plan.red) {
    rs.push_back(d.size);
    rx.push_back(d.xs);
  }
  const SmallVector<int64_t, 6> kstr[2] = {kx, ko};
  a.kept = to_calc(ks, kstr, 2, "sum");
  a.red = to_calc(rs, &rx, 1, "sum");
  // Split long reductions so that there is work for every SM.
  const bool per_thread = a.inner_kept_contiguous || a.n_red < 64;
  const int64_t sms = sm_count(device_);
  if (per_thread) {
    const int64_t want = (sms * 2048 + a.n_out - 1) / std::max<int64_t>(a.n_out, 1);
    a.chunks = std::clamp<int64_t>(want, 1, std::max<int64_t>(1, a.n_red / 256));
  } else {
    const int64_t want = (sms * 8 + a.n_out - 1) / std::max<int64_t>(a.n_out, 1);
    a.chunks = std::clamp<int64_t>(want, 1, std::max<int64_t>(1, a.n_red / 2048));
  }
  a.chunks = std::min<int64_t>(a.chunks, 65535);
  if (x.dtype() == DType::Int64) a.chunks = 1;  // the partials are double: exact int64 sums need one pass
  Tensor scratch;
  if (a.chunks > 1) {
    scratch = empty(Shape{a.n_out * a.chunks}, {DType::Float64, device_});
    a.partial = scratch.data<double>();
  }
  ATTN_CUDA_CHECK(launch_sum(x.dtype(), a, stream()));
}

void CudaBackend::max(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t dim) {
  ATTN_CUDA_CHECK(launch_max(x.dtype(), row_args({&x, &values, &indices}, dim, "max"), stream()));
}

void CudaBackend::softmax(const Tensor& out, const Tensor& x, int64_t dim, bool log) {
  ATTN_CUDA_CHECK(launch_softmax(x.dtype(), row_args({&x, &out}, dim, "softmax"), log, stream()));
}

void CudaBackend::softmax_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& y, int64_t dim, bool log) {
  ATTN_CUDA_CHECK(launch_softmax_backward(y.dtype(), row_args({&grad_x, &grad_y, &y}, dim, "softmax_backward"), log, stream()));
}

// ---------------------------------------------------------------- GEMM (cuBLAS)

void CudaBackend::bmm(const Tensor& out, const Tensor& a_in, const Tensor& b_in, bool accumulate) {
  ATTN_ASSERT(out.dim() == 3 && a_in.dim() == 3 && b_in.dim() == 3, "bmm wants 3-d operands");
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) fill(out, 0.0);
    return;
  }
  Tensor a = a_in, b = b_in;
  kernels::MatrixLayout la, lb, lc;
  if (!kernels::matrix_layout(M, K, a.stride(1), a.stride(2), la)) {
    a = empty(a.shape(), {a.dtype(), device_});
    copy(a, a_in);
    kernels::matrix_layout(M, K, a.stride(1), a.stride(2), la);
  }
  if (!kernels::matrix_layout(K, N, b.stride(1), b.stride(2), lb)) {
    b = empty(b.shape(), {b.dtype(), device_});
    copy(b, b_in);
    kernels::matrix_layout(K, N, b.stride(1), b.stride(2), lb);
  }
  ATTN_ASSERT(kernels::matrix_layout(M, N, out.stride(1), out.stride(2), lc) && !lc.trans,
              "bmm output must be row-major, strides {}", out.strides());
  // Row-major C = A B is column-major C^T = B^T A^T: B goes first. A row-major operand read
  // column-major is already its transpose (CUBLAS_OP_N); a transposed layout needs OP_T.
  const cublasOperation_t op_b = lb.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = la.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t sa = a.size(0) == 1 ? 0 : a.stride(0), sb = b.size(0) == 1 ? 0 : b.stride(0);
  const int64_t sc = out.stride(0);
  cublasHandle_t h = context(device_).cublas;
  const bool tf32 = kernels::allow_tf32() && out.dtype() == DType::Float32;
  ATTN_CUBLAS_CHECK(cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  ATTN_CHECK(std::max({M, N, K, la.ld, lb.ld, lc.ld, B}) <= INT_MAX, ShapeError,
             "bmm: ({}, {}, {}) x ({}, {}) products with leading dims {}, {}, {} exceed cuBLAS's int range", B, M, K,
             K, N, la.ld, lb.ld, lc.ld);
  const int n = static_cast<int>(N), m = static_cast<int>(M), k = static_cast<int>(K);
  if (out.dtype() == DType::Float32) {
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    ATTN_CUBLAS_CHECK(cublasSgemmStridedBatched(h, op_b, op_a, n, m, k, &alpha, b.data<float>(), static_cast<int>(lb.ld), sb,
                                                a.data<float>(), static_cast<int>(la.ld), sa, &beta, out.data<float>(),
                                                static_cast<int>(lc.ld), sc, static_cast<int>(B)));
  } else if (out.dtype() == DType::Float64) {
    const double alpha = 1.0, beta = accumulate ? 1.0 : 0.0;
    ATTN_CUBLAS_CHECK(cublasDgemmStridedBatched(h, op_b, op_a, n, m, k, &alpha, b.data<double>(), static_cast<int>(lb.ld), sb,
                                                a.data<double>(), static_cast<int>(la.ld), sa, &beta, out.data<double>(),
                                                static_cast<int>(lc.ld), sc, static_cast<int>(B)));
  } else {
    throw DTypeError(fmt::format("bmm: dtype {} is not supported on {}", out.dtype(), device_));
  }
}

// ---------------------------------------------------------------- indexing

std::optional<std::pair<int64_t, int64_t>> CudaBackend::find_bad_index(const Tensor& idx, int64_t rows,
                                                                       std::optional<int64_t> ignore) {
  const int64_t n = idx.numel();
  if (n == 0) return std::nullopt;
  Tensor bad = empty(Shape{1}, {DType::Int64, device_});
  const int64_t s = idx.dim() ? idx.stride(0) : 1;
  ATTN_CUDA_CHECK(launch_find_bad_index(idx.data<int64_t>(), s, n, rows, ignore.has_value(), ignore.value_or(0),
                                        bad.data<int64_t>(), stream()));
  uint64_t pos = 0;
  copy_to_host(&pos, bad);
  if (pos >= static_cast<uint64_t>(n)) return std::nullopt;
  int64_t value = 0;
  ATTN_CUDA_CHECK(cudaMemcpyAsync(&value, idx.data<int64_t>() + static_cast<int64_t>(pos) * s, sizeof(value),
                                  cudaMemcpyDeviceToHost, stream()));
  synchronize();
  return std::make_pair(static_cast<int64_t>(pos), value);
}

namespace {
GatherArgs gather_args(const Tensor& table, const Tensor& indices, const Tensor& vec) {
  GatherArgs a;
  a.n = indices.numel();
  a.d = table.size(1);
  a.idx = indices.data<int64_t>();
  a.idx_stride = indices.dim() ? indices.stride(0) : 1;
  a.rows = table.raw_data();
  a.rows_s0 = table.stride(0);
  a.rows_s1 = table.stride(1);
  a.vec = vec.raw_data();
  a.vec_s0 = vec.stride(0);
  a.vec_s1 = vec.stride(1);
  return a;
}
}  // namespace

void CudaBackend::index_select(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  if (auto bad = find_bad_index(indices, weight.size(0))) {
    throw IndexError(fmt::format("embedding: index {} at position {} is out of range for {} rows", bad->second,
                                 bad->first, weight.size(0)));
  }
  ATTN_CUDA_CHECK(launch_index_select(weight.dtype(), gather_args(weight, indices, out), stream()));
}

void CudaBackend::gather_rows(const Tensor& out, const Tensor& rows, const Tensor& indices) {
  ATTN_CUDA_CHECK(launch_index_select(rows.dtype(), gather_args(rows, indices, out), stream()));
}

void CudaBackend::index_add(const Tensor& grad_weight, const Tensor& indices, const Tensor& grad) {
  if (auto bad = find_bad_index(indices, grad_weight.size(0))) {
    throw IndexError(fmt::format("embedding backward: index {} at position {} is out of range for {} rows",
                                 bad->second, bad->first, grad_weight.size(0)));
  }
  ATTN_CUDA_CHECK(launch_index_add(grad.dtype(), gather_args(grad_weight, indices, grad), stream()));
}

// ---------------------------------------------------------------- random

void CudaBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low, double high) {
  ATTN_ASSERT(out.is_contiguous(), "random output must be contiguous");
  ATTN_CUDA_CHECK(launch_uniform(out.dtype(), out.raw_data(), out.numel(), seed, offset, low, high, stream()));
}

void CudaBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double stddev) {
  ATTN_ASSERT(out.is_contiguous(), "random output must be contiguous");
  ATTN_CUDA_CHECK(launch_normal(out.dtype(), out.raw_data(), out.numel(), seed, offset, mean, stddev, stream()));
}

void CudaBackend::dropout_mask(const Tensor& mask, uint64_t seed, uint64_t offset, double p) {
  ATTN_ASSERT(mask.is_contiguous(), "dropout mask must be contiguous");
  ATTN_CUDA_CHECK(launch_dropout_mask(mask.dtype(), mask.raw_data(), mask.numel(), seed, offset, p, stream()));
}

// ---------------------------------------------------------------- losses

namespace {
NllArgs nll_args(const Tensor& mat, const Tensor& vec, const Tensor& target, int64_t ignore_index) {
  NllArgs a;
  a.n = mat.size(0);
  a.c = mat.size(1);
  a.ignore_index = ignore_index;
  a.logp = mat.raw_data();
  a.s0 = mat.stride(0);
  a.s1 = mat.stride(1);
  a.vec = vec.raw_data();
  a.vs = vec.stride(0);
  a.target = target.data<int64_t>();
  a.ts = target.stride(0);
  return a;
}
}  // namespace

void CudaBackend::nll_loss(const Tensor& losses, const Tensor& logp, const Tensor& target, int64_t ignore_index) {
  if (auto bad = find_bad_index(target, logp.size(1), ignore_index)) {
    throw IndexError(fmt::format("nll_loss: target {} at position {} is out of range for {} classes", bad->second,
                                 bad->first, logp.size(1)));
  }
  ATTN_CUDA_CHECK(launch_nll(logp.dtype(), nll_args(logp, losses, target, ignore_index), stream()));
}

void CudaBackend::nll_loss_backward(const Tensor& grad_logp, const Tensor& grad_losses, const Tensor& target,
                                    int64_t ignore_index) {
  ATTN_CUDA_CHECK(launch_nll_backward(grad_logp.dtype(), nll_args(grad_logp, grad_losses, target, ignore_index), stream()));
}

// ---------------------------------------------------------------- fused kernels

void CudaBackend::lstm_cell_forward(const Tensor& xproj_t, const Tensor& gates, const Tensor& h, const Tensor& c,
                                    const Tensor& y_t, const Tensor& act_t, const Tensor& hprev_t,
                                    const Tensor& cprev_t) {
  LstmCellArgs a;
  a.B = h.size(0);
  a.H = h.size(1);
  a.xproj = xproj_t.raw_data();
  a.xproj_s = xproj_t.stride(0);
  a.gates = gates.raw_data();
  a.gates_s = gates.stride(0);
  a.h = h.raw_data();
  a.h_s = h.stride(0);
  a.c = c.raw_data();
  a.c_s = c.stride(0);
  a.y = y_t.raw_data();
  a.y_s = y_t.stride(0);
  a.act = act_t.raw_data();
  a.act_s = act_t.stride(0);
  a.hprev = hprev_t.raw_data();
  a.hprev_s = hprev_t.stride(0);
  a.cprev = cprev_t.raw_data();
  a.cprev_s = cprev_t.stride(0);
  ATTN_CUDA_CHECK(launch_lstm_cell_forward(h.dtype(), a, stream()));
}

void CudaBackend::lstm_cell_backward(const Tensor& act_t, const Tensor& cprev_t, const Tensor& dy_t, const Tensor& dh,
                                     const Tensor& dc, const Tensor& dgates_t) {
  LstmCellArgs a;
  a.B = dh.size(0);
  a.H = dh.size(1);
  a.act = act_t.raw_data();
  a.act_s = act_t.stride(0);
  a.cprev = cprev_t.raw_data();
  a.cprev_s = cprev_t.stride(0);
  a.y = dy_t.defined() ? dy_t.raw_data() : nullptr;
  a.y_s = dy_t.defined() ? dy_t.stride(0) : 0;
  a.h = dh.raw_data();
  a.h_s = dh.stride(0);
  a.c = dc.raw_data();
  a.c_s = dc.stride(0);
  a.dgates = dgates_t.raw_data();
  a.dgates_s = dgates_t.stride(0);
  ATTN_CUDA_CHECK(launch_lstm_cell_backward(dh.dtype(), a, stream()));
}

namespace {
AttentionArgs attention_args(const Tensor& query, const Tensor& keys, const Tensor& v, const Tensor& values,
                             const Tensor& lengths) {
  AttentionArgs a;
  a.B = query.size(0);
  a.T = query.size(1);
  a.D = query.size(2);
  a.S = values.size(1);
  a.H = values.size(2);
  a.lengths = lengths.data<int64_t>();
  a.query = query.raw_data();
  a.keys = keys.defined() ? keys.raw_data() : nullptr;
  a.v = v.defined() ? v.raw_data() : nullptr;
  a.values = values.raw_data();
  return a;
}
}  // namespace

void CudaBackend::attention_forward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                                    const Tensor& values, const Tensor& lengths, const Tensor& context,
                                    const Tensor& weights, const Tensor& tanh_cache) {
  // prepare_additive_keys() makes exp(2 keys) on the CPU only: these kernels compute tanh directly
  ATTN_CHECK(!keys_exp2.defined(), ValueError, "attention: the CUDA kernels take no exp(2 keys)");
  AttentionArgs a = attention_args(query, keys, v, values, lengths);
  // grid.y = ceil(S / 8) and ceil(H / 256) blocks, at most 65535 each; grid.x = B * T rows
  ATTN_CHECK(a.S <= int64_t{65535} * 8 && a.H <= int64_t{65535} * 256 && a.B * a.T <= int64_t{0x7fffffff}, ShapeError,
             "attention: B*T = {}, S = {}, H = {} is over the CUDA kernels' grid limits", a.B * a.T, a.S, a.H);
  a.tanh_cache = tanh_cache.defined() ? tanh_cache.raw_data() : nullptr;
  a.context = context.raw_data();
  a.weights = weights.raw_data();
  // The raw scores, between the scores kernel and the softmax + context kernel (stream-ordered:
  // the caching allocator reuses this block only for work queued after both).
  Tensor scores = empty(Shape{a.B * a.T * a.S}, {query.dtype(), device_});
  a.scratch = scores.raw_data();
  ATTN_CUDA_CHECK(launch_attention_forward(query.dtype(), a, stream()));
}

void CudaBackend::attention_backward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                                     const Tensor& values, const Tensor& lengths, const Tensor& weights,
                                     const Tensor& tanh_cache,
                                     const Tensor& d_context, const Tensor& d_weights, const Tensor& dquery,
                                     const Tensor& dkeys, const Tensor& dv, const Tensor& dvalues) {
  ATTN_CHECK(!keys_exp2.defined(), ValueError, "attention backward: the CUDA kernels take no exp(2 keys)");
  AttentionArgs a = attention_args(query, keys, v, values, lengths);
  a.tanh_cache = tanh_cache.defined() ? tanh_cache.raw_data() : nullptr;
  a.weights = weights.raw_data();
  a.d_context = d_context.raw_data();
  a.d_weights = d_weights.defined() ? d_weights.raw_data() : nullptr;
  a.dquery = dquery.raw_data();
  a.dkeys = dkeys.defined() ? dkeys.raw_data() : nullptr;
  a.dv = dv.defined() ? dv.raw_data() : nullptr;
  a.dvalues = dvalues.raw_data();
  Tensor scratch = empty(Shape{a.B * a.T * a.S}, {DType::Float64, device_});
  a.scratch = scratch.raw_data();
  ATTN_CUDA_CHECK(launch_attention_backward(query.dtype(), a, stream()));
}

void CudaBackend::softmax_nll_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                                      const Tensor& losses, const Tensor& lse) {
  if (auto bad = find_bad_index(target, logits.size(1), ignore_index)) {
    throw IndexError(fmt::format("softmax_nll: target {} at position {} is out of range for {} classes", bad->second,
                                 bad->first, logits.size(1)));
  }
  // one block per row (kMaxGridX)
  ATTN_CHECK(logits.size(0) <= kMaxGridX, ShapeError, "softmax_nll: logits of shape {} have more rows than the CUDA kernel takes ({})",
             logits.shape(), kMaxGridX);
  SoftmaxNllArgs a;
  a.N = logits.size(0);
  a.V = logits.size(1);
  a.ignore_index = ignore_index;
  a.smoothing = smoothing;
  a.logits = logits.raw_data();
  a.target = target.data<int64_t>();
  a.target_s = target.stride(0);
  a.losses = losses.raw_data();
  a.lse = lse.raw_data();
  ATTN_CUDA_CHECK(launch_softmax_nll_forward(logits.dtype(), a, stream()));
}

void CudaBackend::softmax_nll_backward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                       double smoothing, const Tensor& lse, const Tensor& grad_losses,
                                       const Tensor& grad_logits) {
  // one block per row (kMaxGridX)
  ATTN_CHECK(logits.size(0) <= kMaxGridX, ShapeError, "softmax_nll: logits of shape {} have more rows than the CUDA kernel takes ({})",
             logits.shape(), kMaxGridX);
  SoftmaxNllArgs a;
  a.N = logits.size(0);
  a.V = logits.size(1);
  a.ignore_index = ignore_index;
  a.smoothing = smoothing;
  a.logits = logits.raw_data();
  a.target = target.data<int64_t>();
  a.target_s = target.stride(0);
  a.lse = lse.raw_data();
  a.grad_losses = grad_losses.raw_data();
  a.grad_losses_s = grad_losses.stride(0);
  a.grad_logits = grad_logits.raw_data();
  ATTN_CUDA_CHECK(launch_softmax_nll_backward(logits.dtype(), a, stream()));
}

// ---------------------------------------------------------------- optimizers

void CudaBackend::sum_squares(const Tensor& total, const Tensor& x) {
  ATTN_ASSERT(x.is_contiguous() && total.dtype() == DType::Float64, "sum_squares wants contiguous input, float64 total");
  ATTN_CUDA_CHECK(launch_sum_squares(x.dtype(), x.raw_data(), x.numel(), total.data<double>(), stream()));
}

void CudaBackend::sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                           const kernels::SgdConfig& cfg) {
  SgdArgs a{cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay, cfg.grad_scale, cfg.nesterov, cfg.first_step};
  void* buf = cfg.momentum != 0.0 ? momentum_buffer.raw_data() : nullptr;
  ATTN_CUDA_CHECK(launch_sgd(param.dtype(), param.raw_data(), grad.raw_data(), buf, param.numel(), a, stream()));
}

void CudaBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                            const kernels::AdamConfig& cfg) {
  AdamArgs a{cfg.lr,
             cfg.beta1,
             cfg.beta2,
             cfg.eps,
             cfg.weight_decay,
             1.0 - std::pow(cfg.beta1, static_cast<double>(cfg.step)),
             1.0 - std::pow(cfg.beta2, static_cast<double>(cfg.step)),
             cfg.grad_scale,
             cfg.decoupled_weight_decay};
  ATTN_CUDA_CHECK(launch_adam(param.dtype(), param.raw_data(), grad.raw_data(), exp_avg.raw_data(),
                              exp_avg_sq.raw_data(), param.numel(), a, stream()));
}

}  // namespace attn::cuda
