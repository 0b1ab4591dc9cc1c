// The CPU backend: every kernel of kernels/backend.h with OpenMP and OpenBLAS. Its methods are
// spread over one file per family (elementwise.cpp, reduce.cpp, gemm.cpp, ...).
#pragma once

#include "kernels/backend.h"

namespace attn::cpu {

class CpuBackend final : public kernels::Backend {
 public:
  Device device() const override { return kCPU; }

  void fill(const Tensor& out, double value) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void copy_to_host(void* host_dst, const Tensor& src) override;
  void copy_from_host(const Tensor& dst, const void* host_src) override;
  void synchronize() override {}

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
  std::shared_ptr<const kernels::PreparedMatrix> prepare_rhs(const Tensor& b) override;
  void matmul_prepared(const Tensor& out, const Tensor& a, const Tensor& b, const kernels::PreparedMatrix* prepared,
                       bool accumulate) override;

  void index_select(const Tensor& out, const Tensor& weight, const Tensor& indices) override;
  void gather_rows(const Tensor& out, const Tensor& rows, const Tensor& indices) override;
  void index_add(const Tensor& grad_weight, const Tensor& indices, const Tensor& grad) override;

  void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double low,
                      double high) override;
  void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean,
                     double stddev) override;
  void dropout_mask(const Tensor& mask, uint64_t seed, uint64_t offset, double p) override;

  void nll_loss(const Tensor& losses, const Tensor& logp, const Tensor& target,
                int64_t ignore_index) override;
  void nll_loss_backward(const Tensor& grad_logp, const Tensor& grad_losses, const Tensor& target,
                         int64_t ignore_index) override;

  void lstm_cell_forward(const Tensor& xproj_t, const Tensor& gates, const Tensor& h, const Tensor& c,
                         const Tensor& y_t, const Tensor& act_t, const Tensor& hprev_t, const Tensor& cprev_t) override;
  void lstm_cell_backward(const Tensor& act_t, const Tensor& cprev_t, const Tensor& dy_t, const Tensor& dh,
                          const Tensor& dc, const Tensor& dgates_t) override;
  void attention_forward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                         const Tensor& values, const Tensor& lengths, const Tensor& context, const Tensor& weights,
                         const Tensor& tanh_cache) override;
  Tensor additive_keys_exp2(const Tensor& keys) override;
  void attention_backward(const Tensor& query, const Tensor& keys, const Tensor& keys_exp2, const Tensor& v,
                          const Tensor& values, const Tensor& lengths, const Tensor& weights, const Tensor& tanh_cache,
                          const Tensor& d_context, const Tensor& d_weights, const Tensor& dquery,
                          const Tensor& dkeys, const Tensor& dv, const Tensor& dvalues) override;
  void softmax_nll_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                           const Tensor& losses, const Tensor& lse) override;
  void softmax_nll_backward(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                            const Tensor& lse, const Tensor& grad_losses, const Tensor& grad_logits) override;

  void sum_squares(const Tensor& total, const Tensor& x) override;
  void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                const kernels::SgdConfig& cfg) override;
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                 const Tensor& exp_avg_sq, const kernels::AdamConfig& cfg) override;
};

CpuBackend& cpu_backend();

}  // namespace attn::cpu
