// Plain reference implementations in double precision, written from the definitions with naive
// loops: the oracle every op's forward is compared with.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/test_util.h"

namespace attn::test {

inline Ref ref_map3(const Ref& a, const Ref& b, const Ref& c,
                    const std::function<double(double, double, double)>& f) {
  Shape s = broadcast_shapes(broadcast_shapes(a.shape, b.shape, "ref"), c.shape, "ref");
  Ref out(s);
  int64_t i = 0;
  for_each_index(s, [&](const std::vector<int64_t>& idx) {
    out.v[static_cast<size_t>(i++)] = f(a.bcast(idx), b.bcast(idx), c.bcast(idx));
  });
  return out;
}

// Sum over sorted `dims` (all when empty).
inline Ref ref_sum(const Ref& x, Shape dims, bool keepdim) {
  if (dims.empty())
    for (int64_t d = 0; d < x.dim(); ++d) dims.push_back(d);
  auto reduced = [&](int64_t d) { return std::find(dims.begin(), dims.end(), d) != dims.end(); };
  Shape keep = x.shape;
  for (int64_t d : dims) keep[d] = 1;
  Ref out(keep);
  for_each_index(x.shape, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> o = idx;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (reduced(d)) o[d] = 0;
    out.at(o) += x.at(idx);
  });
  if (!keepdim) {
    Shape s;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (!reduced(d)) s.push_back(x.shape[d]);
    out.shape = s;
  }
  return out;
}

// Values (or indices) of the max along `dim`, keepdim = false.
inline Ref ref_max(const Ref& x, int64_t dim, bool want_index) {
  Shape s;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != dim) s.push_back(x.shape[d]);
  Ref out(s, -std::numeric_limits<double>::infinity());
  Ref idx_out(s, 0.0);
  for_each_index(x.shape, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> o;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (d != dim) o.push_back(idx[d]);
    if (x.at(idx) > out.at(o)) {
      out.at(o) = x.at(idx);
      idx_out.at(o) = static_cast<double>(idx[dim]);
    }
  });
  return want_index ? idx_out : out;
}

inline Ref ref_softmax(const Ref& x, int64_t dim, bool log) {
  Ref mx = ref_max(x, dim, false);
  Ref out(x.shape);
  Shape keep = x.shape;
  keep[dim] = 1;
  Ref total(keep);
  auto drop = [&](std::vector<int64_t> idx) {
    idx.erase(idx.begin() + dim);
    return idx;
  };
  for_each_index(x.shape, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> k = idx;
    k[dim] = 0;
    total.at(k) += std::exp(x.at(idx) - mx.at(drop(idx)));
  });
  for_each_index(x.shape, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> k = idx;
    k[dim] = 0;
    const double z = x.at(idx) - mx.at(drop(idx));
    out.at(idx) = log ? z - std::log(total.at(k)) : std::exp(z) / total.at(k);
  });
  return out;
}

// (..., M, K) @ (..., K, N) with numpy broadcasting of batch dims; 1-d operands as numpy.
inline Ref ref_matmul(Ref a, Ref b) {
  const bool av = a.dim() == 1, bv = b.dim() == 1;
  if (av) a.shape.insert(a.shape.begin(), 1);
  if (bv) b.shape.push_back(1);
  const int64_t M = a.shape[a.dim() - 2], K = a.shape[a.dim() - 1], N = b.shape[b.dim() - 1];
  Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  Shape batch = broadcast_shapes(ab, bb, "ref_matmul");
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  Ref out(os);
  for_each_index(os, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> bi(idx.begin(), idx.end() - 2);
    const int64_t m = idx[idx.size() - 2], n = idx[idx.size() - 1];
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) {
      std::vector<int64_t> ia = bi, ib = bi;
      ia.push_back(m);
      ia.push_back(k);
      ib.push_back(k);
      ib.push_back(n);
      acc += a.bcast(ia) * b.bcast(ib);
    }
    out.at(idx) = acc;
  });
  Shape final_shape = batch;
  if (!av) final_shape.push_back(M);
  if (!bv) final_shape.push_back(N);
  out.shape = final_shape;
  return out;
}

inline Ref ref_transpose_last(const Ref& w) {  // (out, in) -> (in, out)
  Ref t(Shape{w.shape[1], w.shape[0]});
  for (int64_t i = 0; i < w.shape[0]; ++i)
    for (int64_t j = 0; j < w.shape[1]; ++j) t.at({j, i}) = w.at({i, j});
  return t;
}

inline Ref ref_linear(const Ref& x, const Ref& w, const Ref* bias) {
  Ref out = ref_matmul(x, ref_transpose_last(w));
  if (bias) out = ref_map2(out, *bias, [](double p, double q) { return p + q; });
  return out;
}

inline Ref ref_permute(const Ref& x, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(x.shape[d]);
  Ref out(s);
  for_each_index(s, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> src(idx.size());
    for (size_t i = 0; i < dims.size(); ++i) src[dims[i]] = idx[i];
    out.at(idx) = x.at(src);
  });
  return out;
}

inline Ref ref_narrow(const Ref& x, int64_t dim, int64_t start, int64_t len) {
  Shape s = x.shape;
  s[dim] = len;
  Ref out(s);
  for_each_index(s, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> src = idx;
    src[dim] += start;
    out.at(idx) = x.at(src);
  });
  return out;
}

inline Ref ref_cat(const std::vector<Ref>& xs, int64_t dim) {
  Shape s = xs[0].shape;
  s[dim] = 0;
  for (const Ref& x : xs) s[dim] += x.shape[dim];
  Ref out(s);
  int64_t start = 0;
  for (const Ref& x : xs) {
    for_each_index(x.shape, [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> dst = idx;
      dst[dim] += start;
      out.at(dst) = x.at(idx);
    });
    start += x.shape[dim];
  }
  return out;
}

inline Ref ref_embedding(const Ref& w, const Ref& idx) {
  const int64_t D = w.shape[1];
  Shape s = idx.shape;
  s.push_back(D);
  Ref out(s);
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const auto row = static_cast<int64_t>(idx.v[static_cast<size_t>(i)]);
    for (int64_t j = 0; j < D; ++j) out.v[static_cast<size_t>(i * D + j)] = w.at({row, j});
  }
  return out;
}

inline Ref ref_nll(const Ref& logp, const Ref& target, int64_t ignore, Reduction red) {
  const int64_t N = logp.shape[0];
  Ref losses(Shape{N});
  double total = 0, count = 0;
  for (int64_t i = 0; i < N; ++i) {
    const auto t = static_cast<int64_t>(target.v[static_cast<size_t>(i)]);
    if (t == ignore) continue;
    losses.v[static_cast<size_t>(i)] = -logp.at({i, t});
    total += losses.v[static_cast<size_t>(i)];
    count += 1;
  }
  if (red == Reduction::None) return losses;
  return Ref(Shape{}, {red == Reduction::Sum ? total : total / count});
}

}  // namespace attn::test
