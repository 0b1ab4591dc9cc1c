// Vectorizable float exp / tanh / sigmoid for the CPU kernels.
//
// glibc's expf and tanhf are scalar calls (about 5 and 25 ns here), which made exp and tanh run
// at 3 and 0.6 GB/s. These are branch-free straight-line code that GCC turns into AVX2 loops:
//   exp:  x = n ln2 + r (Cody-Waite, two-part ln2), exp(r) by a degree-6 polynomial on
//         |r| <= ln2/2, times 2^n built in the exponent bits. Max relative error ~1.2e-7 (1-2 ulp)
//         over [-87, 88]; exp(x > 88.72) = inf, exp(x < -87.33) = 0 (no denormals).
//   tanh: a rational function from Lambert's continued fraction (12 terms) on |x| <= 9, which
//         is 1.7x faster than a polynomial + exp blend. Max abs error 3.5e-7 (about 3 ulp near
//         +-1, 2 ulp near 0), measured over [-10, 10] against double tanh.
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
  // Lambert's continued fraction for tanh cut after 12 terms, as x P(x^2) / Q(x^2) (degrees 6
  // and 6 in x^2, all coefficients positive: no cancellation in float). tanh(9) rounds to 1.
  const float xc = x < -9.0f ? -9.0f : (x > 9.0f ? 9.0f : x);
  const float z = xc * xc;
  float p = 1.2648855557e-13f;
  p = p * z + 5.1797063508e-10f;
  p = p * z + 3.2286836253e-07f;
  p = p * z + 6.6252587992e-05f;
  p = p * z + 5.2173913043e-03f;
  p = p * z + 1.4666666667e-01f;
  p = p * z + 1.0f;
  float q = 1.1510458557e-11f;
  q = q * z + 1.5193805296e-08f;
  q = q * z + 5.2304674730e-06f;
  q = q * z + 6.6252587992e-04f;
  q = q * z + 3.1884057971e-02f;
  q = q * z + 4.8000000000e-01f;
  q = q * z + 1.0f;
  const float y = xc * p / q;
  const float clamped = y > 1.0f ? 1.0f : (y < -1.0f ? -1.0f : y);
  return x != x ? x : clamped;
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
