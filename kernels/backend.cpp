#include "kernels/backend.h"

#include "kernels/cpu/cpu_backend.h"
#if ATTN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace attn::kernels {

namespace {
bool g_allow_tf32 = false;
}
void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

void Backend::matmul_prepared(const Tensor& out, const Tensor& a, const Tensor& b, const PreparedMatrix*, bool accumulate) {
  auto as3 = [](const Tensor& m) {  // (R, C) -> (1, R, C) over the same memory, no autograd
    return Tensor(std::make_shared<TensorImpl>(m.storage(), Shape{1, m.size(0), m.size(1)},
                                               Strides{0, m.stride(0), m.stride(1)}, m.offset(), m.dtype()));
  };
  bmm(as3(out), as3(a), as3(b), accumulate);
}

Backend& backend(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
#if ATTN_WITH_CUDA
  return cuda::cuda_backend(device);  // DeviceError when no GPU answers
#else
  throw DeviceError(fmt::format(
      "device {} requested, but this build of the engine has no CUDA backend (rebuild with "
      "-DATTN_CUDA=ON where nvcc is installed)",
      device));
#endif
}

bool has_backend(DeviceType type) {
  if (type == DeviceType::CPU) return true;
#if ATTN_WITH_CUDA
  return cuda::cuda_available();
#else
  return false;
#endif
}

std::string backend_unavailable_reason(DeviceType type) {
  if (type == DeviceType::CPU) return {};
#if ATTN_WITH_CUDA
  return cuda::cuda_available() ? std::string() : cuda::cuda_unavailable_reason();
#else
  return "this build of the engine has no CUDA backend";
#endif
}

Backend& dispatch(std::string_view op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (!first) {
      first = t;
    } else if (t->device() != first->device()) [[unlikely]] {
      throw DeviceError(fmt::format("{}: expected all tensors on one device, got {} and {}", op,
                                    first->device(), t->device()));
    }
  }
  ATTN_ASSERT(first != nullptr, "{}: no tensor to dispatch on", op);
  if (first->device().is_cpu()) [[likely]] return cpu::cpu_backend();
  return backend(first->device());
}

CudnnLstmOutput Backend::cudnn_lstm(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const std::vector<Tensor>&, int64_t, bool, double, uint64_t) {
  throw DeviceError(fmt::format("cuDNN's LSTM runs on CUDA devices only, not on {}", device()));
}

bool is_comparison(UnaryOp op) { return op >= UnaryOp::EqScalar && op <= UnaryOp::LogicalNot; }
bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

std::string_view op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Square: return "square";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::AddScalar: return "add_scalar";
    case UnaryOp::MulScalar: return "mul_scalar";
    case UnaryOp::RSubScalar: return "rsub_scalar";
    case UnaryOp::DivScalar: return "div_scalar";
    case UnaryOp::RDivScalar: return "rdiv_scalar";
    case UnaryOp::PowScalar: return "pow_scalar";
    case UnaryOp::EqScalar: return "eq_scalar";
    case UnaryOp::NeScalar: return "ne_scalar";
    case UnaryOp::LtScalar: return "lt_scalar";
    case UnaryOp::LeScalar: return "le_scalar";
    case UnaryOp::GtScalar: return "gt_scalar";
    case UnaryOp::GeScalar: return "ge_scalar";
    case UnaryOp::LogicalNot: return "logical_not";
  }
  return "?";
}

std::string_view op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::TanhBackward: return "tanh_backward";
    case BinaryOp::SigmoidBackward: return "sigmoid_backward";
    case BinaryOp::ReluBackward: return "relu_backward";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::LogicalAnd: return "logical_and";
    case BinaryOp::LogicalOr: return "logical_or";
  }
  return "?";
}

}  // namespace attn::kernels
