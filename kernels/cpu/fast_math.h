// Vectorizable float exp / tanh / sigmoid for the CPU kernels.
//
// glibc's expf and tanhf are scalar calls (about 5 and 25 ns here), which made exp and tanh run
// at 3 and 0.6 GB/s. These are branch-free straight-line code that GCC turns into AVX2 loops:
//   exp:  x = n ln2 + r (Cody-Waite, two-part ln2), exp(r) by a degree-7 polynomial on
//         |r| <= ln2/2, times 2^n built in the exponent bits of two factors. Max relative error
//         7.9e-8 (0.94 ulp) over the normal range; overflow gives inf (x > 88.72); results below
//         FLT_MIN (x < -87.34) are 0, not denormals (they are slow on Intel cores).
//   tanh: x P(x^2) / Q(x^2) with P, Q of degree 4 (a minimax fit) on |x| <= 9, clamped by
//         integer min on the bits. Max abs error 3.3e-7 (5.5 ulp near +-1; checked on every
//         float against double tanh), 0.25-0.28 ns per element per core on Zen 4, 1.9x faster
//         than the degree-6/6 Lambert continued fraction it replaces. It is exactly +-1 from
//         |x| = 8.03 (the true value rounds to 1 from 9.01): tanh's derivative is then 0 where it
//         is below 4.3e-7.
// These bounds are for builds that contract to FMA (-march=native on x86-64-v3 and up); without
// FMA (plain x86-64) every float measured exp within 1.22 ulp and tanh within 3.6e-7 (6.05 ulp),
// inside the tests' bounds (tests/test_fast_math.cpp).
//   sigmoid: 1 / (1 + exp(-x)).
// float64 keeps the C library (gradient checks want exact math; speed does not matter there).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace attn::cpu {

// Bit pattern of a float and back (compiles to nothing; vectorizes).
inline uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}
inline float bits_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
}

// exp(r) on |r| <= 0.3466 (ln2 / 2), the reduced argument of both exps below: Taylor
// coefficients 1/k!, degree 7 (truncation < 1e-8).
inline float exp_reduced(float r) {
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  return p * r + 1.0f;
}

inline float fast_exp(float x) {
  // |x| clamped to 104 by integer min on the magnitude's bits (see fast_tanh): exp(104)
  // overflows to inf through the scaling below, with no fix-up.
  const uint32_t b = float_bits(x);
  const float xc = bits_float(std::min(b & 0x7fffffffu, 0x42d00000u) | (b & 0x80000000u));
  // round to nearest by the 1.5 * 2^23 trick (vectorizes; std::nearbyint is a call)
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693145751953125f;  // ln2 high part (exact product for |n| < 2^9)
  r = r - n * 1.428606765330187045e-06f;  // ln2 low part
  const float p = exp_reduced(r);
  // 2^n as 2^n1 * 2^n2, both normal floats for |n| <= 151: results near the overflow threshold
  // stay finite (one 2^128 would be inf from x = 88.38 on)
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const float y = p * bits_float(static_cast<uint32_t>(n1 + 127) << 23) * bits_float(static_cast<uint32_t>(n2 + 127) << 23);
  // Results below FLT_MIN are flushed to 0 (< 1.2e-38 off): a softmax over a vocabulary would
  // otherwise make denormals, which cost a microcode assist per operation on Intel cores.
  const float flushed = x < -87.33654f ? 0.0f : y;
  return x != x ? x : flushed;  // NaN in, NaN out
}

inline float fast_tanh(float x) {
  // tanh(x) = sign(x) * |x| P(z) / Q(z), z = x^2, |x| clamped to 9 (where P/Q gives 1; true
  // tanh rounds to 1 from 9.01, and P/Q reaches 1 from 8.03: within the abs bound above).
  // P and Q have degree 4 with P(0) = Q(0) = 1: a minimax fit of the relative error on [0, 9]
  // (scripts/fit_tanh.py; 2.2e-8 before float rounding), all coefficients positive.
  // The clamps are integer min on the magnitude's bits (non-negative floats order as their
  // bits): written as float compares, GCC if-converts them into compare + blend chains that
  // cost as much as the rational function itself.
  const uint32_t b = float_bits(x);
  const uint32_t sign = b & 0x80000000u;
  const float a = bits_float(std::min(b & 0x7fffffffu, 0x41100000u));  // min(|x|, 9)
  const float z = a * a;
  float p = 1.3420185e-08f;
  p = p * z + 2.06615459e-05f;
  p = p * z + 3.49901407e-03f;
  p = p * z + 1.3383995e-01f;
  p = p * z + 1.0f;
  float q = 7.80488449e-07f;
  q = q * z + 3.29106726e-04f;
  q = q * z + 2.58902758e-02f;
  q = q * z + 4.67173159e-01f;
  q = q * z + 1.0f;
  const float y = a * p / q;                                               // in [0, 1.0000003]
  const float t = bits_float(std::min(float_bits(y), 0x3f800000u) | sign);  // min(y, 1) with x's sign
  return x != x ? x : t;                                                   // NaN in, NaN out
}

// exp(x) for x <= 0, as softmax and log-sum-exp take it (x - max, never above 0): the same bits
// as fast_exp for every x <= 0 and -inf (checked on every such float; NaN gives NaN, a signalling
// one quieted where fast_exp returns it as it is), without what only
// large x needs: the overflow clamp (whose integer min also made the NaN select necessary: NaN
// now runs through the polynomial), and 2^n as two factors (one suffices for n <= 127). About 16
// vector operations where fast_exp takes 28: the softmax + NLL on an AVX2 machine is bound by its
// exps (2.6 cycles per element with fast_exp). It stays right for positive x up to 88.0.
inline float fast_exp_nonpositive(float x) {
  // n rounded by the 1.5 * 2^23 trick, as in fast_exp; its integer is read from the low bits of
  // t (no float-to-int conversion, which NaN and -inf would make undefined)
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  const float p = exp_reduced(r);
  const uint32_t n_bits = float_bits(t) - 0x4b400000u;  // n, two's complement (|n| < 2^22)
  const float y = p * bits_float((n_bits + 127u) << 23);
  return x < -87.33654f ? 0.0f : y;  // (below FLT_MIN: 0, as fast_exp; also -inf)
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// Type-generic entry points: float uses the fast versions, double the C library.
inline float exp_t(float x) { return fast_exp(x); }
inline double exp_t(double x) { return std::exp(x); }
inline float exp_nonpositive_t(float x) { return fast_exp_nonpositive(x); }  // x <= 0 (see above)
inline double exp_nonpositive_t(double x) { return std::exp(x); }
inline float tanh_t(float x) { return fast_tanh(x); }
inline double tanh_t(double x) { return std::tanh(x); }
inline float sigmoid_t(float x) { return fast_sigmoid(x); }
inline double sigmoid_t(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace attn::cpu
