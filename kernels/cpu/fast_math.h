// Vectorizable float exp / tanh / sigmoid for the CPU kernels.
//
// glibc's expf and tanhf are scalar calls (about 5 and 25 ns here), which made exp and tanh run
// at 3 and 0.6 GB/s. These are branch-free straight-line code that GCC turns into AVX2 loops:
//   exp:  x = n ln2 + r (Cody-Waite, two-part ln2), exp(r) by a degree-6 polynomial on
//         |r| <= ln2/2, times 2^n built in the exponent bits. Max relative error ~1.2e-7 (1-2 ulp)
//         over [-87, 88]; exp(x > 88.72) = inf, exp(x < -87.33) = 0 (no denormals).
//   tanh: |x| < 0.5: odd polynomial in x (Taylor to x^15, error < 1e-8 there); otherwise
//         1 - 2 / (exp(2|x|) + 1) with the sign restored. Max abs error ~1.5e-7.
//   sigmoid: 1 / (1 + exp(-x)).
// float64 keeps the C library (gradient checks want exact math; speed does not matter there).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace attn::cpu {

inline float fast_exp(float x) {
  // clamp so that 2^n stays a normal float; the result is fixed up below
  const float xc = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);
  // round to nearest by the 1.5 * 2^23 trick (vectorizes; std::nearbyint is a call)
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693145751953125f;  // ln2 high part (exact product for |n| < 2^9)
  r = r - n * 1.428606765330187045e-06f;  // ln2 low part
  // exp(r) on |r| <= 0.3466: Taylor coefficients 1/k!, degree 7 (truncation < 1e-8)
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float y = p * scale;
  y = x > 88.72283f ? INFINITY : y;
  y = x < -87.33654f ? 0.0f : y;
  return x != x ? x : y;  // NaN in, NaN out
}

inline float fast_tanh(float x) {
  const float ax = std::fabs(x);
  // |x| < 0.5: x + x^3 * Q(x^2), the Taylor series of tanh through x^15 (next term < 1e-8)
  const float x2 = x * x;
  float q = -1.45583438e-3f;    // -929569/638512875  (x^15)
  q = q * x2 + 3.59212803e-3f;  // 21844/6081075      (x^13)
  q = q * x2 - 8.86323552e-3f;  // -1382/155925       (x^11)
  q = q * x2 + 2.18694885e-2f;  // 62/2835            (x^9)
  q = q * x2 - 5.39682540e-2f;  // -17/315            (x^7)
  q = q * x2 + 1.33333333e-1f;  // 2/15               (x^5)
  q = q * x2 - 3.33333333e-1f;  // -1/3               (x^3)
  const float small = x + x * x2 * q;
  const float e = fast_exp(2.0f * ax);
  const float big = 1.0f - 2.0f / (e + 1.0f);
  const float y = ax < 0.5f ? small : std::copysign(big, x);
  return x != x ? x : y;
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// Type-generic entry points: float uses the fast versions, double the C library.
inline float exp_t(float x) { return fast_exp(x); }
inline double exp_t(double x) { return std::exp(x); }
inline float tanh_t(float x) { return fast_tanh(x); }
inline double tanh_t(double x) { return std::tanh(x); }
inline float sigmoid_t(float x) { return fast_sigmoid(x); }
inline double sigmoid_t(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace attn::cpu
