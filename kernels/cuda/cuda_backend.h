// The CUDA backend: the same kernels as the CPU backend (kernels/backend.h) on one stream per
// device, memory from a caching allocator, GEMMs through cuBLAS.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <optional>
#include <string>
#include <utility>

#include "core/caching_allocator.h"
#include "kernels/backend.h"

namespace attn::cuda {

// Whether a CUDA device answers (any error from the runtime counts as "no").
bool cuda_available();
// Why not, when cuda_available() is false.
std::string cuda_unavailable_reason();

kernels::Backend& cuda_backend(Device device);  // DeviceError when no device answers
CachingAllocator& cuda_allocator(Device device);

// Per-device state: the stream every kernel and copy of the engine runs on, and the library
// handles bound to it.
struct DeviceContext {
  int index = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;  // created on first use
  cudaDeviceProp props{};
};
DeviceContext& context(Device device);
cudnnHandle_t cudnn_handle(Device device);

class CudaBackend final : public kernels::Backend {
 public:
  explicit CudaBackend(Device device) : device_(device) {}
  Device device() const override { return device_; }

  void fill(const Tensor& out, double value) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void copy_to_host(void* host_dst, const Tensor& src) override;
  void copy_from_host(const Tensor& dst, const void* host_src) override;
  void synchronize() override;

  void unary(kernels::UnaryOp op, const Tensor& out, const Tensor& x, double scalar) override;
  void binary(kernels::BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;
  void masked_fill(const Tensor& out, const Tensor& x, const Tensor& mask, double value) override;

  void sum(const Tensor& out, const Tensor& x) override;
  void max(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t dim) override;
  void softmax(const Tensor& out, const Tensor& x, int64_t dim, bool log) override;
  void softmax_backward(const Tensor& grad_x, const Tensor& grad_y, const Tensor& y, int64_t dim,
                        bool log) override;

  void bmm(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) override;

  void index_select(const Tensor& out, const Tensor& weight, const Tensor& indices) override;
  void gather_rows(const Tensor& out, const Tensor& rows, const Tensor& indices) override;
  void index_add(const Tensor& grad_weight, const Tensor& indices, const Tensor& grad) override;

  void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low, double high) override;
  void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double stddev) override;
  void dropout_mask(const Tensor& mask, uint64_t seed, uint64_t offset, double p) override;

  void nll_loss(const Tensor& losses, const Tensor& logp, const Tensor& target, int64_t ignore_index) override;
  void nll_loss_backward(const Tensor& grad_logp, const Tensor& grad_losses, const Tensor& target,
                         int64_t ignore_index) override;

  void lstm_cell_forward(const Tensor& xproj_t, const Tensor& gates, const Tensor& h, const Tensor& c,
                         const Tensor& y_t, const Tensor& act_t, const Tensor& hprev_t, const Tensor& cprev_t) override;
  void lstm_cell_backward(const Tensor& act_t, const Tensor& cprev_t, const Tensor& dy_t, const Tensor& dh,
                          const Tensor& dc, const Tensor& dgates_t) override;
  void attention_forward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                         const Tensor& values, const Tensor& lengths, const Tensor& context, const Tensor& weights,
                         const Tensor& tanh_cache) override;
  void attention_backward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                          const Tensor& values, const Tensor& lengths, const Tensor& weights, const Tensor& tanh_cache,
                          const Tensor& d_context, const Tensor& d_weights, const Tensor& dquery,
                          const Tensor& dkeys, const Tensor& dv, const Tensor& dvalues) override;
  void softmax_nll_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                           const Tensor& losses, const Tensor& lse) override;
  void softmax_nll_backward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                            const Tensor& lse, const Tensor& grad_losses, const Tensor& grad_logits) override;

  kernels::CudnnLstmOutput cudnn_lstm(const Tensor& x, const Tensor& lengths, const Tensor& hx, const Tensor& cx,
                                      const std::vector<Tensor>& params, int64_t num_layers, bool bidirectional,
                                      double dropout, uint64_t dropout_seed) override;

  void sum_squares(const Tensor& total, const Tensor& x) override;
  void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                const kernels::SgdConfig& cfg) override;
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const kernels::AdamConfig& cfg) override;

  cudaStream_t stream() const;

 private:
  // (position, value) of the first index outside [0, rows), skipping `ignore` if given; nullopt if none.
  std::optional<std::pair<int64_t, int64_t>> find_bad_index(const Tensor& idx, int64_t rows,
                                                            std::optional<int64_t> ignore = std::nullopt);
  Device device_;
};

}  // namespace attn::cuda
