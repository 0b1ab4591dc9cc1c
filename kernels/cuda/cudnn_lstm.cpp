// cuDNN's LSTM (cudnnRNNForward / cudnnRNNBackwardData_v8 / cudnnRNNBackwardWeights_v8) on the
// engine's parameters, as a second CUDA implementation of nn::LSTM.
//
// cuDNN keeps all weights of a stack in one "weight space". Where each of our parameter chunks
// lives in it is asked once per call with cudnnGetRNNWeightParams (pseudo-layer l * D + d,
// linear layers 0-3 = input weights of gates i, f, g, o, 4-7 = recurrent ones, the same gate
// order and row-major layout as PyTorch), then the parameters are copied in before the forward
// and the weight gradients copied out after the backward. Padded batches use the batch-major
// unpacked layout with per-sequence lengths, which gives the same semantics as the fused layer:
// padded outputs are zero and each sequence's final state is taken at its own length.
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/autograd/node.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace attn::cuda {

namespace {

cudnnDataType_t cudnn_type(DType t) {
  if (t == DType::Float32) return CUDNN_DATA_FLOAT;
  if (t == DType::Float64) return CUDNN_DATA_DOUBLE;
  throw DTypeError(fmt::format("cuDNN LSTM: dtype {} is not supported", t));
}

// One contiguous run of a parameter copied to / from the weight space (offsets in elements).
struct Chunk {
  size_t param;
  int64_t src, dst, count;
};

// Descriptors of one call, destroyed with it (shared by the forward and its backward node).
struct Rnn {
  cudnnHandle_t handle = nullptr;
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnDropoutDescriptor_t drop = nullptr;
  cudnnRNNDataDescriptor_t xd = nullptr, yd = nullptr;
  cudnnTensorDescriptor_t hd = nullptr;
  Tensor dropout_states, dev_lengths, weights;
  size_t weight_bytes = 0, work_bytes = 0, reserve_bytes = 0;
  std::vector<Chunk> chunks;
  ~Rnn() {
    if (hd) cudnnDestroyTensorDescriptor(hd);
    if (yd) cudnnDestroyRNNDataDescriptor(yd);
    if (xd) cudnnDestroyRNNDataDescriptor(xd);
    if (rnn) cudnnDestroyRNNDescriptor(rnn);
    if (drop) cudnnDestroyDropoutDescriptor(drop);
  }
};

int64_t tensor_numel(cudnnTensorDescriptor_t d) {
  cudnnDataType_t t;
  int nb = 0, dims[8], strides[8];
  ATTN_CUDNN_CHECK(cudnnGetTensorNdDescriptor(d, 8, &t, &nb, dims, strides));
  int64_t n = 1;
  for (int i = 0; i < nb; ++i) n *= dims[i];
  return n;
}

std::shared_ptr<Rnn> make_rnn(const Tensor& x, const std::vector<int64_t>& lengths, int64_t H, int64_t L, bool bidir,
                              double dropout, uint64_t dropout_seed) {
  auto r = std::make_shared<Rnn>();
  const Device dev = x.device();
  r->handle = cudnn_handle(dev);
  const int64_t B = x.size(0), S = x.size(1), I = x.size(2), D = bidir ? 2 : 1;
  const cudnnDataType_t dt = cudnn_type(x.dtype());
  ATTN_CUDNN_CHECK(cudnnCreateDropoutDescriptor(&r->drop));
  if (dropout > 0) {
    size_t bytes = 0;
    ATTN_CUDNN_CHECK(cudnnDropoutGetStatesSize(r->handle, &bytes));
    r->dropout_states = empty(Shape{static_cast<int64_t>(bytes)}, {DType::Bool, dev});
    ATTN_CUDNN_CHECK(cudnnSetDropoutDescriptor(r->drop, r->handle, static_cast<float>(dropout), r->dropout_states.raw_data(),
                                               bytes, static_cast<unsigned long long>(dropout_seed)));
  } else {
    ATTN_CUDNN_CHECK(cudnnSetDropoutDescriptor(r->drop, r->handle, 0.0f, nullptr, 0, 0));
  }
  const bool tf32 = kernels::allow_tf32() && x.dtype() == DType::Float32;
  const cudnnMathType_t math = x.dtype() == DType::Float64 ? CUDNN_DEFAULT_MATH : (tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH);
  ATTN_CUDNN_CHECK(cudnnCreateRNNDescriptor(&r->rnn));
  ATTN_CUDNN_CHECK(cudnnSetRNNDescriptor_v8(r->rnn, CUDNN_RNN_ALGO_STANDARD, CUDNN_LSTM, CUDNN_RNN_DOUBLE_BIAS,
                                            bidir ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, dt, dt,
                                            math, static_cast<int32_t>(I), static_cast<int32_t>(H), static_cast<int32_t>(H),
                                            static_cast<int32_t>(L), r->drop, CUDNN_RNN_PADDED_IO_ENABLED));
  std::vector<int> seq(lengths.begin(), lengths.end());
  double fill = 0.0;
  float fill_f = 0.0f;
  void* fill_ptr = x.dtype() == DType::Float64 ? static_cast<void*>(&fill) : static_cast<void*>(&fill_f);
  ATTN_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&r->xd));
  ATTN_CUDNN_CHECK(cudnnSetRNNDataDescriptor(r->xd, dt, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, static_cast<int>(S),
                                             static_cast<int>(B), static_cast<int>(I), seq.data(), fill_ptr));
  ATTN_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&r->yd));
  ATTN_CUDNN_CHECK(cudnnSetRNNDataDescriptor(r->yd, dt, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, static_cast<int>(S),
                                             static_cast<int>(B), static_cast<int>(D * H), seq.data(), fill_ptr));
  ATTN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&r->hd));
  const int dims[3] = {static_cast<int>(L * D), static_cast<int>(B), static_cast<int>(H)};
  const int strides[3] = {static_cast<int>(B * H), static_cast<int>(H), 1};
  ATTN_CUDNN_CHECK(cudnnSetTensorNdDescriptor(r->hd, dt, 3, dims, strides));
  // sequence lengths on the device, as int32
  r->dev_lengths = empty(Shape{(B + 1) / 2}, {DType::Int64, dev});
  ATTN_CUDA_CHECK(cudaMemcpyAsync(r->dev_lengths.raw_data(), seq.data(), seq.size() * sizeof(int), cudaMemcpyHostToDevice,
                                  context(dev).stream));
  ATTN_CUDA_CHECK(cudaStreamSynchronize(context(dev).stream));  // `seq` is a local
  ATTN_CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(r->handle, r->rnn, &r->weight_bytes));
  ATTN_CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(r->handle, r->rnn, CUDNN_FWD_MODE_TRAINING, r->xd, &r->work_bytes, &r->reserve_bytes));
  const size_t es = dtype_size(x.dtype());
  r->weights = empty(Shape{static_cast<int64_t>(r->weight_bytes / es)}, {x.dtype(), dev});
  // Where each parameter chunk lives in the weight space.
  cudnnTensorDescriptor_t md, bd;
  ATTN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&md));
  ATTN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bd));
  const char* base = static_cast<const char*>(r->weights.raw_data());
  for (int64_t pl = 0; pl < L * D; ++pl) {
    const int64_t layer_in = pl < D ? I : D * H;
    for (int lin = 0; lin < 8; ++lin) {
      void* m = nullptr;
      void* b = nullptr;
      ATTN_CUDNN_CHECK(cudnnGetRNNWeightParams(r->handle, r->rnn, static_cast<int32_t>(pl), r->weight_bytes,
                                               r->weights.raw_data(), lin, md, &m, bd, &b));
      const int64_t cols = lin < 4 ? layer_in : H, gate = lin % 4;
      const size_t pw = static_cast<size_t>(pl * 4 + (lin < 4 ? 0 : 1)), pb = static_cast<size_t>(pl * 4 + (lin < 4 ? 2 : 3));
      ATTN_CHECK(tensor_numel(md) == H * cols && tensor_numel(bd) == H, BackendError,
                 "cuDNN LSTM: unexpected weight layout (pseudo-layer {}, linear layer {}: {} and {} elements)", pl, lin,
                 tensor_numel(md), tensor_numel(bd));
      r->chunks.push_back({pw, gate * H * cols, (static_cast<const char*>(m) - base) / static_cast<int64_t>(es), H * cols});
      r->chunks.push_back({pb, gate * H, (static_cast<const char*>(b) - base) / static_cast<int64_t>(es), H});
    }
  }
  cudnnDestroyTensorDescriptor(md);
  cudnnDestroyTensorDescriptor(bd);
  return r;
}

// Copies between the parameters (or their gradients) and a weight space.
void move_chunks(const Rnn& r, const std::vector<Tensor>& params, const Tensor& space, bool to_space, cudaStream_t s) {
  const size_t es = dtype_size(space.dtype());
  for (const Chunk& c : r.chunks) {
    char* p = static_cast<char*>(params[c.param].raw_data()) + c.src * static_cast<int64_t>(es);
    char* w = static_cast<char*>(space.raw_data()) + c.dst * static_cast<int64_t>(es);
    ATTN_CUDA_CHECK(cudaMemcpyAsync(to_space ? w : p, to_space ? p : w, static_cast<size_t>(c.count) * es,
                                    cudaMemcpyDeviceToDevice, s));
  }
}

struct CudnnLstmBackward final : Node {
  std::shared_ptr<Rnn> r;
  SavedTensor x, hx, cx, y;  // y: the output, saved detached (no reference cycle) with its version
  Tensor reserve;
  std::vector<Shape> param_shapes;
  CudnnLstmBackward() { num_outputs = 3; }
  std::string_view name() const override { return "CudnnLstmBackward"; }
  TensorList apply(TensorList& g) override {
    const Tensor xx = x.unpack(name()), h0 = hx.unpack(name()), c0 = cx.unpack(name());
    const Device dev = xx.device();
    const cudaStream_t stream = context(dev).stream;
    const Options opt{xx.dtype(), dev};
    const Tensor y_out = y.unpack(name());  // fails if the output was modified in place since
    const Tensor dy = g[0].defined() ? g[0].contiguous() : zeros(y_out.shape(), opt);
    const Tensor dhy = g[1].defined() ? g[1].contiguous() : zeros(h0.shape(), opt);
    const Tensor dcy = g[2].defined() ? g[2].contiguous() : zeros(c0.shape(), opt);
    // dx zeroed: cuDNN documents its padding fill for outputs only, and padded positions of x
    // must get a zero gradient (an embedding below would add garbage otherwise).
    Tensor dx = zeros(xx.shape(), opt), dhx = empty(h0.shape(), opt), dcx = empty(c0.shape(), opt);
    Tensor work = empty(Shape{static_cast<int64_t>(r->work_bytes) + 1}, {DType::Bool, dev});
    ATTN_CUDNN_CHECK(cudnnRNNBackwardData_v8(
        r->handle, r->rnn, static_cast<const int32_t*>(r->dev_lengths.raw_data()), r->yd, y_out.raw_data(), dy.raw_data(), r->xd,
        dx.raw_data(), r->hd, h0.raw_data(), dhy.raw_data(), dhx.raw_data(), r->hd, c0.raw_data(), dcy.raw_data(),
        dcx.raw_data(), r->weight_bytes, r->weights.raw_data(), r->work_bytes, work.raw_data(), r->reserve_bytes,
        reserve.raw_data()));
    Tensor dweights = zeros(r->weights.shape(), opt);
    ATTN_CUDNN_CHECK(cudnnRNNBackwardWeights_v8(
        r->handle, r->rnn, CUDNN_WGRAD_MODE_ADD, static_cast<const int32_t*>(r->dev_lengths.raw_data()), r->xd,
        xx.raw_data(), r->hd, h0.raw_data(), r->yd, y_out.raw_data(), r->weight_bytes, dweights.raw_data(), r->work_bytes,
        work.raw_data(), r->reserve_bytes, reserve.raw_data()));
    std::vector<Tensor> dparams;
    for (const Shape& s : param_shapes) dparams.push_back(empty(s, opt));
    move_chunks(*r, dparams, dweights, /*to_space=*/false, stream);
    TensorList out;
    out.push_back(dx);
    out.push_back(dhx);
    out.push_back(dcx);
    for (Tensor& p : dparams) out.push_back(p);
    return out;
  }
  void release_saved() override {
    x.release();
    hx.release();
    cx.release();
    y.release();
    reserve = Tensor();
    r.reset();
  }
};

}  // namespace

kernels::CudnnLstmOutput CudaBackend::cudnn_lstm(const Tensor& x_in, const Tensor& lengths, const Tensor& hx_in,
                                                 const Tensor& cx_in, const std::vector<Tensor>& params,
                                                 int64_t num_layers, bool bidirectional, double dropout,
                                                 uint64_t dropout_seed) {
  const int64_t D = bidirectional ? 2 : 1;
  ATTN_CHECK(x_in.dim() == 3 && static_cast<int64_t>(params.size()) == 4 * num_layers * D, ShapeError,
             "cudnn_lstm: input {} and {} parameters for {} layer(s) x {} direction(s)", x_in.shape(), params.size(),
             num_layers, D);
  ATTN_CHECK(params[1].dim() == 2, ShapeError, "cudnn_lstm: weight_hh_l0 must be (4H, H), got shape {}", params[1].shape());
  const int64_t H = params[1].size(1), B = x_in.size(0), S = x_in.size(1), I = x_in.size(2);
  // The weight space is laid out and copied by x's element size: every parameter and state must
  // have x's dtype, device and PyTorch's shapes, or the copies would run past their buffers.
  for (int64_t pl = 0; pl < num_layers * D; ++pl) {  // pseudo-layer: layer pl / D, direction pl % D
    const int64_t in = pl < D ? I : D * H;
    const Tensor* p = &params[static_cast<size_t>(4 * pl)];
    ATTN_CHECK(p[0].shape() == (Shape{4 * H, in}) && p[1].shape() == (Shape{4 * H, H}) && p[2].shape() == Shape{4 * H} &&
                   p[3].shape() == Shape{4 * H},
               ShapeError,
               "cudnn_lstm: layer {} direction {}: weights must be (4H, {}), (4H, H), (4H), (4H) with H = {}, got {}, {}, "
               "{}, {}",
               pl / D, pl % D, in, H, p[0].shape(), p[1].shape(), p[2].shape(), p[3].shape());
  }
  for (const Tensor* t : {&hx_in, &cx_in}) {
    ATTN_CHECK(t->shape() == (Shape{num_layers * D, B, H}), ShapeError,
               "cudnn_lstm: initial states must be (layers * directions, B, H) = ({}, {}, {}), got shape {}",
               num_layers * D, B, H, t->shape());
    ATTN_CHECK(t->dtype() == x_in.dtype() && t->device() == x_in.device(), DTypeError,
               "cudnn_lstm: initial states must be {} on {}, got {} on {}", x_in.dtype(), x_in.device(), t->dtype(),
               t->device());
  }
  for (const Tensor& t : params) {
    ATTN_CHECK(t.dtype() == x_in.dtype() && t.device() == x_in.device(), DTypeError,
               "cudnn_lstm: parameters must be {} on {}, got one {} on {}", x_in.dtype(), x_in.device(), t.dtype(),
               t.device());
  }
  ATTN_CHECK(lengths.dim() == 1 && lengths.size(0) == B && lengths.dtype() == DType::Int64, ShapeError,
             "cudnn_lstm: lengths must be int64 ({}) for a batch of {}, got {} {}", B, B, lengths.dtype(), lengths.shape());
  const std::vector<int64_t> lv = lengths.to_vector<int64_t>();
  for (size_t b = 0; b < lv.size(); ++b) {
    ATTN_CHECK(lv[b] >= 1 && lv[b] <= S, ValueError, "cudnn_lstm: lengths[{}] = {} is outside [1, {}]", b, lv[b], S);
  }
  // cuDNN takes its sizes as int (the states' stride is B * H) and no empty batch: a clear error
  // here rather than a wrapped size or CUDNN_STATUS_BAD_PARAM
  ATTN_CHECK(B > 0, ShapeError, "cudnn_lstm: an empty batch (input of shape {}); the fused implementation takes one",
             x_in.shape());
  for (const int64_t size : {S, I, num_layers * D, 4 * H, B * D * H})
    ATTN_CHECK(size <= std::numeric_limits<int32_t>::max(), ShapeError,
               "cudnn_lstm: input of shape {} with hidden size {} and {} layers exceeds cuDNN's int sizes", x_in.shape(), H,
               num_layers);
  const Tensor x = x_in.contiguous(), hx = hx_in.contiguous(), cx = cx_in.contiguous();
  std::shared_ptr<Rnn> r = make_rnn(x, lv, H, num_layers, bidirectional, dropout, dropout_seed);
  const cudaStream_t s = stream();
  std::vector<Tensor> contiguous_params;
  for (const Tensor& p : params) contiguous_params.push_back(p.contiguous());
  move_chunks(*r, contiguous_params, r->weights, /*to_space=*/true, s);
  const Options opt{x.dtype(), device_};
  Tensor y = empty(Shape{B, S, D * H}, opt), hy = empty(hx.shape(), opt), cy = empty(cx.shape(), opt);
  Tensor work = empty(Shape{static_cast<int64_t>(r->work_bytes) + 1}, {DType::Bool, device_});
  Tensor reserve = empty(Shape{static_cast<int64_t>(r->reserve_bytes) + 1}, {DType::Bool, device_});
  ATTN_CUDNN_CHECK(cudnnRNNForward(r->handle, r->rnn, CUDNN_FWD_MODE_TRAINING,
                                   static_cast<const int32_t*>(r->dev_lengths.raw_data()), r->xd, x.raw_data(), r->yd,
                                   y.raw_data(), r->hd, hx.raw_data(), hy.raw_data(), r->hd, cx.raw_data(), cy.raw_data(),
                                   r->weight_bytes, r->weights.raw_data(), r->work_bytes, work.raw_data(),
                                   r->reserve_bytes, reserve.raw_data()));
  kernels::CudnnLstmOutput out{y, hy, cy};
  bool grad = needs_grad(x_in, hx_in, cx_in);
  for (const Tensor& p : params) grad = grad || needs_grad(p);
  if (grad) {
    auto node = std::make_shared<CudnnLstmBackward>();
    node->next_edges.push_back(gradient_edge(x_in));
    node->next_edges.push_back(gradient_edge(hx_in));
    node->next_edges.push_back(gradient_edge(cx_in));
    for (const Tensor& p : params) {
      node->next_edges.push_back(gradient_edge(p));
      node->param_shapes.push_back(p.shape());
    }
    node->r = r;
    node->x = SavedTensor(x);
    node->hx = SavedTensor(hx);
    node->cx = SavedTensor(cx);
    node->y = SavedTensor(y, /*is_output=*/true);
    node->reserve = reserve;
    set_history(out.output, node, 0);
    set_history(out.h_n, node, 1);
    set_history(out.c_n, node, 2);
  }
  return out;
}

}  // namespace attn::cuda
