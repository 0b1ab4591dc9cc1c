// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. The n-th group of four 32-bit words of a stream is a pure function
// of (seed, n), so any thread on any device computes any element without shared state. The CPU
// and CUDA kernels both call these functions, which is what gives one seed the same dropout
// mask and the same initial weights on both devices.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ATTN_HD __host__ __device__ __forceinline__
#else
#define ATTN_HD inline
#endif

namespace attn::philox {

struct U32x4 {
  uint32_t v[4];
};

ATTN_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// One block: counter (4 words) and key (2 words) in, 4 random words out.
ATTN_HD U32x4 philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, ctr.v[0], hi0, lo0);
    mulhilo(kM1, ctr.v[2], hi1, lo1);
    U32x4 next;
    next.v[0] = hi1 ^ ctr.v[1] ^ k0;
    next.v[1] = lo1;
    next.v[2] = hi0 ^ ctr.v[3] ^ k1;
    next.v[3] = lo0;
    ctr = next;
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

// Word `i` of the stream (seed, offset): block (offset + i) / 4, lane (offset + i) % 4.
// Offsets handed out by Generator are multiples of 4, so a draw starts on a block boundary.
// Block `b` of the stream: words 4b .. 4b + 3.
ATTN_HD U32x4 block(uint64_t seed, uint64_t b) {
  U32x4 ctr{{static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), 0u, 0u}};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}
ATTN_HD uint32_t word(uint64_t seed, uint64_t index) { return block(seed, index >> 2).v[index & 3]; }

// Uniform in [0, 1) with 24 random bits: exactly representable in float, so CPU and GPU agree
// bit for bit and a comparison against a dropout probability gives the same mask on both.
ATTN_HD float to_unit_float(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }

// low + span * x with one rounding (a fused multiply-add) on both devices: nvcc contracts the
// plain expression into an FMA and g++ in ISO mode does not, so uniform(-0.03, 0.05) differed
// by an ulp here and there between the CPU and the GPU.
template <typename T>
ATTN_HD T affine(T low, T span, T x) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float)) return fmaf(span, x, low);
  else return fma(span, x, low);
#else
  return std::fma(span, x, low);
#endif
}

}  // namespace attn::philox
