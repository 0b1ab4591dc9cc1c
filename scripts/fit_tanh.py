#!/usr/bin/python3
"""Fits the rational tanh of kernels/cpu/fast_math.h and prints its coefficients.

tanh(x) ~ x P(z) / Q(z), z = x^2, P and Q of degree 4 with P(0) = Q(0) = 1, on x in [0, 9].
Minimax of the relative error by Lawson's iteration: weighted linear least squares of
(P - f Q) / f with f = tanh(x) / x, each round multiplying the weights by the error.
Then the float32 evaluation (the kernel's Horner order, clamps) is checked on 4M points.

Run with Debian's interpreter (numpy and mpmath are Debian packages):
  /usr/bin/python3 scripts/fit_tanh.py
"""
import mpmath as mp
import numpy as np

DEG_P, DEG_Q, CLAMP = 4, 4, 9.0
mp.mp.dps = 30


def fit(iters=150):
    x = np.unique(np.concatenate([np.linspace(1e-4, CLAMP, 4000), np.cos(np.linspace(0, np.pi / 2, 2000)) * CLAMP]))
    z = x * x
    t = np.array([float(mp.tanh(mp.mpf(v))) for v in x])
    f = t / x
    w = np.ones_like(x) / len(x)
    best = None
    for _ in range(iters):
        # sum_{i>=1} p_i z^i - f sum_{j>=1} q_j z^j = f - 1, relative to f
        a = np.concatenate([np.vander(z, DEG_P + 1, increasing=True)[:, 1:],
                            -f[:, None] * np.vander(z, DEG_Q + 1, increasing=True)[:, 1:]], axis=1)
        sw = np.sqrt(w) / f
        coef, *_ = np.linalg.lstsq(a * sw[:, None], (f - 1) * sw, rcond=None)
        p = np.concatenate([[1.0], coef[:DEG_P]])
        q = np.concatenate([[1.0], coef[DEG_P:]])
        err = np.abs(x * np.polyval(p[::-1], z) / np.polyval(q[::-1], z) - t) / t
        if best is None or err.max() < best[0]:
            best = (err.max(), p, q)
        w = w * err
        w /= w.sum()
    return best


def tanh_f32(x, p, q):
    a = np.minimum(np.abs(x), np.float32(CLAMP)).astype(np.float32)
    z = (a * a).astype(np.float32)
    pp, qq = np.float32(p[-1]), np.float32(q[-1])
    for c in p[-2::-1]:
        pp = (pp * z + np.float32(c)).astype(np.float32)
    for c in q[-2::-1]:
        qq = (qq * z + np.float32(c)).astype(np.float32)
    return np.copysign(np.minimum((a * pp / qq).astype(np.float32), np.float32(1)), x)


err, p, q = fit()
print(f"relative error of the fit on [0, {CLAMP}]: {err:.3g}")
print("P (z^4 first):", ", ".join(f"{np.float32(c):.9g}f" for c in p[::-1]))
print("Q (z^4 first):", ", ".join(f"{np.float32(c):.9g}f" for c in q[::-1]))
xs = np.concatenate([np.linspace(-10, 10, 4000001), np.logspace(-8, 1, 200001)]).astype(np.float32)
exact = np.tanh(xs.astype(np.float64))
d = np.abs(tanh_f32(xs, p, q).astype(np.float64) - exact)
ulp = d / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
print(f"float32 evaluation: max abs error {d.max():.3g}, max {ulp.max():.2f} ulp")
