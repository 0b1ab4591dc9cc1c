// The correctness check `attn bench kernels` runs on every variant before timing it: outputs
// and input gradients against a reference, with autograd and without (the forward rows time the
// no-grad path, which some ops take differently), NaN-proof.
#pragma once

#include <cmath>
#include <functional>
#include <vector>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/tensor.h"

namespace attn::bench {

// A variant of a kernel: inputs in, outputs out.
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// Norm-relative error of a against b; infinite when the shapes differ or anything is not finite
// (a NaN must fail the check, not vanish in a max).
inline double rel_err(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  if (!std::isfinite(num) || !std::isfinite(den)) return INFINITY;
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Outputs and input gradients of one variant (for the check).
inline std::vector<Tensor> outputs_and_grads(const Fn& f, const std::vector<Tensor>& in_template, const std::vector<Tensor>& R) {
  std::vector<Tensor> in;
  for (const Tensor& t : in_template) {
    Tensor c = t.detach();
    if (is_floating(c.dtype())) c.requires_grad_(true);
    in.push_back(c);
  }
  std::vector<Tensor> out = f(in);
  TensorList roots, grads;
  for (size_t k = 0; k < out.size(); ++k) {
    roots.push_back(out[k]);
    grads.push_back(R[k].to(out[k].dtype()).to(out[k].device()));
  }
  run_backward(roots, grads, false);
  for (const Tensor& t : in)
    if (is_floating(t.dtype())) out.push_back(t.grad());
  return out;
}

// The worst relative error of a variant against `ref` (outputs, then input gradients, on the
// CPU): with autograd (what fwd+bwd times) and without (what fwd times: some ops take another
// path then, e.g. no tanh cache). NaN-proof: a missing, extra or non-finite tensor is infinite.
inline double check_variant(const Fn& f, const std::vector<Tensor>& in, const std::vector<Tensor>& R,
                     const std::vector<Tensor>& ref) {
  const std::vector<Tensor> got = outputs_and_grads(f, in, R);
  if (got.size() != ref.size()) return INFINITY;
  double worst = 0;
  auto take = [&](const Tensor& a, const Tensor& b) {
    const double e = a.defined() ? rel_err(a.to(kCPU), b) : INFINITY;
    if (!(e <= worst)) worst = e;
  };
  for (size_t i = 0; i < got.size(); ++i) take(got[i], ref[i]);
  std::vector<Tensor> plain_in;
  for (const Tensor& t : in) plain_in.push_back(t.detach());
  NoGradGuard no_grad;
  const std::vector<Tensor> plain = f(plain_in);
  if (plain.size() != R.size()) return INFINITY;
  for (size_t i = 0; i < plain.size(); ++i) take(plain[i], ref[i]);
  return worst;
}

// Float tensors as float64 on the CPU (the composed op's inputs for the oracle).
inline std::vector<Tensor> as_double(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(is_floating(t.dtype()) ? t.to(kCPU).to(DType::Float64) : t.to(kCPU));
  return out;
}

}  // namespace attn::bench
