#include "tools/bench/harness.h"

#include "core/error.h"
#if ATTN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#endif

namespace attn::bench {

Clock cuda_clock(Device device) {
#if ATTN_WITH_CUDA
  struct Events {
    cudaEvent_t a = nullptr, b = nullptr;
    cudaStream_t stream;
    explicit Events(Device d) : stream(cuda::context(d).stream) {  // (makes d the current device)
      ATTN_CUDA_CHECK(cudaEventCreate(&a));
      ATTN_CUDA_CHECK(cudaEventCreate(&b));
    }
    ~Events() {
      cudaEventDestroy(a);
      cudaEventDestroy(b);
    }
  };
  auto ev = std::make_shared<Events>(device);
  return {[ev] { ATTN_CUDA_CHECK(cudaEventRecord(ev->a, ev->stream)); },
          [ev] {
            ATTN_CUDA_CHECK(cudaEventRecord(ev->b, ev->stream));
            ATTN_CUDA_CHECK(cudaEventSynchronize(ev->b));
            float ms = 0;
            ATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, ev->a, ev->b));
            return static_cast<double>(ms) * 1e-3;
          }};
#else
  throw DeviceError("GPU timing requested, but this build has no CUDA backend");
#endif
}

}  // namespace attn::bench
