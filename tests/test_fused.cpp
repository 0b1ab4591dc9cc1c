// The fused kernels (LSTM layer, additive and dot attention, softmax + NLL): values and every
// gradient against the same computation composed from primitive ops (float32, norm-relative
// error <= 1e-5), finite-difference gradient checks in float64, the edge cases (lengths from 1
// to S in one batch, S = 1, B = 1, S >= 512, H not a multiple of 4 or 32, masked positions with
// exactly zero weight and gradient), and GPU against CPU where a GPU answers.
#include <gtest/gtest.h>

#include <cmath>

#include "core/allocator.h"
#include "core/ops/composed.h"
#include "core/ops/fused.h"
#include "core/ops/lengths.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace attn::test {
namespace {

// ||a - b|| / ||b|| in double; 0 when both are zero.
double rel_err(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Lengths in [1, S] for B sequences, always including 1 and S when B >= 2.
Tensor rand_lengths(std::mt19937& rng, int64_t B, int64_t S) {
  std::vector<int64_t> v(static_cast<size_t>(B));
  std::uniform_int_distribution<int64_t> d(1, S);
  for (auto& x : v) x = d(rng);
  if (B >= 2) {
    v[0] = S;
    v[1] = 1;
  }
  return from_vector(v, Shape{B});
}

Tensor leaf(Tensor t) {
  t = t.detach();
  t.requires_grad_(true);
  return t;
}

// Runs f on fresh leaf copies of `inputs`, backpropagates sum(out_k * R_k) and returns the
// outputs and the gradients of every input.
struct Result {
  std::vector<Tensor> outs, grads;
};
Result run(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
           const std::vector<Tensor>& upstream) {
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) xs.push_back(is_floating(t.dtype()) ? leaf(t) : t);
  Result r;
  r.outs = f(xs);
  if (upstream.empty()) return r;  // a probe for the output shapes
  Tensor loss;
  for (size_t k = 0; k < r.outs.size(); ++k) {
    Tensor term = sum(r.outs[k] * upstream[k].to(r.outs[k].device()));
    loss = loss.defined() ? loss + term : term;
  }
  loss.backward();
  for (const Tensor& x : xs) r.grads.push_back(is_floating(x.dtype()) ? x.grad() : Tensor());
  return r;
}

void expect_same(const Result& a, const Result& b, double tol, const std::string& where) {
  ASSERT_EQ(a.outs.size(), b.outs.size());
  for (size_t k = 0; k < a.outs.size(); ++k) {
    EXPECT_EQ(a.outs[k].shape(), b.outs[k].shape()) << where << " output " << k;
    EXPECT_LE(rel_err(a.outs[k].to(kCPU), b.outs[k].to(kCPU)), tol) << where << " output " << k;
  }
  for (size_t k = 0; k < a.grads.size(); ++k) {
    if (!b.grads[k].defined()) continue;
    ASSERT_TRUE(a.grads[k].defined()) << where << " gradient " << k;
    EXPECT_LE(rel_err(a.grads[k].to(kCPU), b.grads[k].to(kCPU)), tol) << where << " gradient " << k;
  }
}

std::vector<Tensor> upstream_for(const std::vector<Tensor>& outs, Generator& g) {
  std::vector<Tensor> r;
  for (const Tensor& o : outs) r.push_back(uniform(o.shape(), -1.0, 1.0, g, {.dtype = o.dtype()}));
  return r;
}

// ---------------------------------------------------------------- LSTM

struct LstmShape {
  int64_t B, S, I, H;
};

std::vector<Tensor> lstm_inputs(Generator& g, std::mt19937& rng, LstmShape s, DType dt = DType::Float32) {
  const double k = 1.0 / std::sqrt(static_cast<double>(s.H));
  Options o{.dtype = dt};
  return {uniform({s.B, s.S, s.I}, -1.0, 1.0, g, o), rand_lengths(rng, s.B, s.S),
          uniform({s.B, s.H}, -0.5, 0.5, g, o),       uniform({s.B, s.H}, -0.5, 0.5, g, o),
          uniform({4 * s.H, s.I}, -k, k, g, o),       uniform({4 * s.H, s.H}, -k, k, g, o),
          uniform({4 * s.H}, -k, k, g, o),            uniform({4 * s.H}, -k, k, g, o)};
}

template <typename F>
std::function<std::vector<Tensor>(const std::vector<Tensor>&)> lstm_fn(F layer, bool reverse) {
  return [layer, reverse](const std::vector<Tensor>& x) {
    LstmLayerOutput o = layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], reverse);
    return std::vector<Tensor>{o.output, o.h_n, o.c_n};
  };
}

const auto kFusedLstm = [](auto&&... a) { return lstm_layer(a...); };
const auto kComposedLstm = [](auto&&... a) { return composed::lstm_layer(a...); };

Tensor full_lengths(int64_t B, int64_t S) { return full(Shape{B}, static_cast<double>(S), {.dtype = DType::Int64}); }

TEST(FusedLstm, MatchesComposedValuesAndGradients) {
  // Padded batches (lengths 1..S, unsorted: the layer packs them) and unpadded ones (every
  // length S: the layer steps through strided views).
  const std::vector<LstmShape> shapes = {{4, 7, 5, 6}, {1, 1, 3, 5}, {3, 12, 33, 17}, {5, 9, 8, 32}, {2, 520, 4, 3}};
  uint64_t seed = 1;
  for (const LstmShape& s : shapes) {
    for (bool padded : {true, false}) {
      for (bool reverse : {false, true}) {
        Generator g(seed);
        std::mt19937 rng(static_cast<uint32_t>(seed++));
        std::vector<Tensor> in = lstm_inputs(g, rng, s);
        if (!padded) in[1] = full_lengths(s.B, s.S);
        Result fused = run(lstm_fn(kFusedLstm, reverse), in, {});  // outputs only, to size R
        std::vector<Tensor> R = upstream_for(fused.outs, g);
        fused = run(lstm_fn(kFusedLstm, reverse), in, R);
        Result comp = run(lstm_fn(kComposedLstm, reverse), in, R);
        expect_same(fused, comp, 1e-5,
                    fmt::format("B{} S{} I{} H{} padded={} reverse={}", s.B, s.S, s.I, s.H, padded, reverse));
      }
    }
  }
}

TEST(FusedLstm, GradientsMatchFiniteDifferences) {
  Generator g(5);
  std::mt19937 rng(5);
  for (bool padded : {true, false}) {
    for (bool reverse : {false, true}) {
      std::vector<Tensor> in = lstm_inputs(g, rng, {3, 4, 3, 2}, DType::Float64);
      in[1] = padded ? from_vector<int64_t>({2, 4, 1}) : full_lengths(3, 4);
      auto fn = [&](const std::vector<Tensor>& x) {
        LstmLayerOutput o = lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], reverse);
        return cat({o.output.flatten(), o.h_n.flatten(), o.c_n.flatten()}, 0);
      };
      EXPECT_TRUE(gradcheck(fn, in, {0, 2, 3, 4, 5, 6, 7})) << "padded=" << padded << " reverse=" << reverse;
    }
  }
}

TEST(FusedLstm, PaddedStepsOutputZeroAndGetNoGradient) {
  Generator g(6);
  std::mt19937 rng(6);
  std::vector<Tensor> in = lstm_inputs(g, rng, {3, 6, 4, 5});
  in[1] = from_vector<int64_t>({6, 2, 4});
  Tensor x = leaf(in[0]);
  LstmLayerOutput o = lstm_layer(x, in[1], in[2], in[3], in[4], in[5], in[6], in[7]);
  sum(o.output * uniform(o.output.shape(), -1.0, 1.0, g)).backward();
  std::vector<float> out = o.output.to_vector<float>(), gx = x.grad().to_vector<float>();
  const std::vector<int64_t> len{6, 2, 4};
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t t = len[b]; t < 6; ++t) {
      for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(out[(b * 6 + t) * 5 + j], 0.0f);
      for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(gx[(b * 6 + t) * 4 + j], 0.0f);
    }
    EXPECT_NE(out[(b * 6 + len[b] - 1) * 5], 0.0f);
  }
}

TEST(FusedLstm, PaddingDoesNotChangeAnySequence) {
  // Each sequence of a padded batch gives exactly what it gives alone, in both directions.
  Generator g(7);
  std::mt19937 rng(7);
  std::vector<Tensor> in = lstm_inputs(g, rng, {3, 6, 4, 5});
  in[1] = from_vector<int64_t>({6, 2, 4});
  for (bool reverse : {false, true}) {
    LstmLayerOutput all = lstm_layer(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], reverse);
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t n = in[1].to_vector<int64_t>()[static_cast<size_t>(b)];
      Tensor xb = in[0].narrow(0, b, 1).narrow(1, 0, n);
      LstmLayerOutput one = lstm_layer(xb, from_vector<int64_t>({n}), in[2].narrow(0, b, 1), in[3].narrow(0, b, 1),
                                       in[4], in[5], in[6], in[7], reverse);
      EXPECT_LE(rel_err(all.h_n.narrow(0, b, 1), one.h_n), 1e-6) << "b=" << b << " reverse=" << reverse;
      EXPECT_LE(rel_err(all.c_n.narrow(0, b, 1), one.c_n), 1e-6) << "b=" << b << " reverse=" << reverse;
      EXPECT_LE(rel_err(all.output.narrow(0, b, 1).narrow(1, 0, n), one.output), 1e-6) << "b=" << b;
    }
  }
}

TEST(FusedLstm, RejectsBadLengthsAndShapes) {
  Generator g(8);
  std::mt19937 rng(8);
  std::vector<Tensor> in = lstm_inputs(g, rng, {2, 4, 3, 2});
  EXPECT_THROW(lstm_layer(in[0], from_vector<int64_t>({0, 4}), in[2], in[3], in[4], in[5], in[6], in[7]), ValueError);
  EXPECT_THROW(lstm_layer(in[0], from_vector<int64_t>({5, 4}), in[2], in[3], in[4], in[5], in[6], in[7]), ValueError);
  EXPECT_THROW(lstm_layer(in[0], in[1], in[2], in[3], in[5], in[5], in[6], in[7]), ShapeError);
}

TEST(FusedLstm, PackedEdgeCasesMatchComposed) {
  // Every sequence shorter than S (trailing steps run no row), one padded sequence, all but one
  // full, ties, and enough real positions (>= 256) for dx through the packed kernel with
  // several column panels (I = 70).
  struct Case {
    LstmShape s;
    std::vector<int64_t> lengths;
  };
  std::vector<int64_t> many(16);
  for (size_t b = 0; b < many.size(); ++b) many[b] = 1 + static_cast<int64_t>((b * 11) % 24);
  const std::vector<Case> cases = {{{3, 5, 4, 6}, {3, 2, 3}},
                                   {{1, 4, 3, 5}, {2}},
                                   {{4, 5, 3, 4}, {5, 5, 2, 5}},
                                   {{5, 6, 4, 3}, {4, 6, 4, 1, 6}},
                                   {{16, 24, 70, 20}, many}};
  uint64_t seed = 40;
  for (const Case& c : cases) {
    for (bool reverse : {false, true}) {
      Generator g(seed);
      std::mt19937 rng(static_cast<uint32_t>(seed++));
      std::vector<Tensor> in = lstm_inputs(g, rng, c.s);
      in[1] = from_vector(c.lengths, Shape{c.s.B});
      std::vector<Tensor> R = upstream_for(run(lstm_fn(kFusedLstm, reverse), in, {}).outs, g);
      expect_same(run(lstm_fn(kFusedLstm, reverse), in, R), run(lstm_fn(kComposedLstm, reverse), in, R), 1e-5,
                  fmt::format("B{} S{} I{} H{} lengths {} reverse={}", c.s.B, c.s.S, c.s.I, c.s.H, fmt::join(c.lengths, ","), reverse));
    }
  }
}

TEST(FusedLstm, LengthsWrittenInPlaceAreReadAgain) {
  // The layer packs from the lengths' values, remembered per tensor and version: an in-place
  // write must make the next call use the new ones.
  Generator g(41);
  std::mt19937 rng(41);
  std::vector<Tensor> in = lstm_inputs(g, rng, {2, 4, 3, 5});
  Tensor lens = from_vector<int64_t>({4, 2});
  auto layer = [&](const Tensor& l) { return lstm_layer(in[0], l, in[2], in[3], in[4], in[5], in[6], in[7]).output; };
  const std::vector<float> before = layer(lens).to_vector<float>();
  lens.copy_(from_vector<int64_t>({4, 3}));
  const std::vector<float> after = layer(lens).to_vector<float>();
  EXPECT_EQ(after, layer(from_vector<int64_t>({4, 3})).to_vector<float>());
  EXPECT_NE(after, before);
  lens.fill_(4.0);  // every sequence full now: the unpacked path
  EXPECT_EQ(layer(lens).to_vector<float>(), layer(from_vector<int64_t>({4, 4})).to_vector<float>());
}

TEST(FusedLstm, LayersSharingLengthsAndARetainedGraph) {
  // Two stacked layers on one lengths tensor share the packing plan; two backwards through the
  // retained graph give twice the gradients of one.
  Generator g(42);
  std::mt19937 rng(42);
  std::vector<Tensor> in = lstm_inputs(g, rng, {4, 6, 5, 5});
  in[1] = from_vector<int64_t>({3, 6, 1, 4});
  auto stacked = [](const std::vector<Tensor>& x) {
    LstmLayerOutput a = lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]);
    LstmLayerOutput b = lstm_layer(a.output, x[1], x[2], x[3], x[5], x[5], x[6], x[7], /*reverse=*/true);
    return std::vector<Tensor>{b.output, b.h_n, a.c_n};
  };
  auto composed_stacked = [](const std::vector<Tensor>& x) {
    LstmLayerOutput a = composed::lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]);
    LstmLayerOutput b = composed::lstm_layer(a.output, x[1], x[2], x[3], x[5], x[5], x[6], x[7], /*reverse=*/true);
    return std::vector<Tensor>{b.output, b.h_n, a.c_n};
  };
  const std::vector<Tensor> R = upstream_for(run(stacked, in, {}).outs, g);
  const Result once = run(stacked, in, R);
  expect_same(once, run(composed_stacked, in, R), 1e-5, "two layers on shared lengths");
  std::vector<Tensor> xs;
  for (const Tensor& t : in) xs.push_back(is_floating(t.dtype()) ? leaf(t) : t);
  const std::vector<Tensor> outs = stacked(xs);
  const Tensor loss = sum(outs[0] * R[0]) + sum(outs[1] * R[1]) + sum(outs[2] * R[2]);
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  for (size_t k : {size_t{0}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{6}, size_t{7}}) {
    EXPECT_LE(rel_err(xs[k].grad(), once.grads[k] * 2.0), 1e-6) << "input " << k;
  }
}

TEST(FusedLstm, OneStepCallsReusePackedWeightsUntilTheyChange) {
  // A decoder's pattern: one step per call with the same weights, so from the second call on the
  // weights are packed once and reused, forward and backward. Values and gradients match the
  // composed layer, and an in-place update of the weights (as an optimizer's) is seen at once.
  Generator g(43);
  const int64_t B = 8, I = 12, H = 40;
  const double k = 1.0 / std::sqrt(static_cast<double>(H));
  Tensor wih = leaf(uniform({4 * H, I}, -k, k, g)), whh = leaf(uniform({4 * H, H}, -k, k, g));
  Tensor bih = leaf(uniform({4 * H}, -k, k, g)), bhh = leaf(uniform({4 * H}, -k, k, g));
  Tensor cwih = leaf(wih.detach().clone()), cwhh = leaf(whh.detach().clone());
  Tensor cbih = leaf(bih.detach().clone()), cbhh = leaf(bhh.detach().clone());
  const Tensor ones = full(Shape{B}, 1.0, {.dtype = DType::Int64});
  for (int round = 0; round < 2; ++round) {
    Tensor h = uniform({B, H}, -0.5, 0.5, g), c = uniform({B, H}, -0.5, 0.5, g), ch = h, cc = c;
    Tensor loss, closs;
    for (int step = 0; step < 5; ++step) {
      const Tensor x = uniform({B, 1, I}, -1.0, 1.0, g), r = uniform({B, 1, H}, -1.0, 1.0, g);
      LstmLayerOutput o = lstm_layer(x, ones, h, c, wih, whh, bih, bhh);
      LstmLayerOutput co = composed::lstm_layer(x, ones, ch, cc, cwih, cwhh, cbih, cbhh);
      EXPECT_LE(rel_err(o.output, co.output), 1e-5) << "round " << round << " step " << step;
      h = o.h_n, c = o.c_n, ch = co.h_n, cc = co.c_n;
      loss = loss.defined() ? loss + sum(o.output * r) : sum(o.output * r);
      closs = closs.defined() ? closs + sum(co.output * r) : sum(co.output * r);
    }
    loss.backward();
    closs.backward();
    for (auto [got, want] : {std::pair{wih, cwih}, std::pair{whh, cwhh}, std::pair{bih, cbih}}) {
      EXPECT_LE(rel_err(got.grad(), want.grad()), 1e-5) << "round " << round;
    }
    // an optimizer-like update in place: the next round must use the new weights
    NoGradGuard ng;
    for (auto [p, cp] : {std::pair{wih, cwih}, std::pair{whh, cwhh}}) {
      const Tensor step = uniform(p.shape(), -k, k, g);
      p.copy_(p - step);
      cp.copy_(cp - step);
      p.set_grad(Tensor());
      cp.set_grad(Tensor());
    }
    for (Tensor* t : {&bih, &bhh, &cbih, &cbhh}) t->set_grad(Tensor());
  }
}

// ---------------------------------------------------------------- attention

struct AttnShape {
  int64_t B, T, S, H, A;  // T = 0: the single-query form (B, .)
};

std::vector<Tensor> attn_inputs(Generator& g, std::mt19937& rng, AttnShape s, bool additive, DType dt = DType::Float32) {
  Options o{.dtype = dt};
  const int64_t D = additive ? s.A : s.H;
  Shape qs = s.T ? Shape{s.B, s.T, D} : Shape{s.B, D};
  std::vector<Tensor> v = {uniform(qs, -1.0, 1.0, g, o), uniform({s.B, s.S, s.H}, -1.0, 1.0, g, o), rand_lengths(rng, s.B, s.S)};
  if (additive) {
    v.push_back(uniform({s.B, s.S, s.A}, -1.0, 1.0, g, o));
    v.push_back(uniform({s.A}, -1.0, 1.0, g, o));
  }
  return v;
}

// `prepared`: additive scoring from keys prepared by prepare_additive_keys (exp(2 keys) on the
// CPU), as the decoders run it.
std::function<std::vector<Tensor>(const std::vector<Tensor>&)> attn_fn(bool additive, bool fused, bool prepared = false) {
  return [additive, fused, prepared](const std::vector<Tensor>& x) {
    AttentionOutput o = additive ? (!fused      ? composed::additive_attention(x[0], x[3], x[4], x[1], x[2])
                                    : prepared ? additive_attention(x[0], prepare_additive_keys(x[3]), x[4], x[1], x[2])
                                               : additive_attention(x[0], x[3], x[4], x[1], x[2]))
                                 : (fused ? dot_attention(x[0], x[1], x[2]) : composed::dot_attention(x[0], x[1], x[2]));
    return std::vector<Tensor>{o.context, o.weights};
  };
}

// The last shape has H and A above the kernels' chunk widths (CPU backward: 32 features; CUDA
// context: 256 per block) and not multiples of them.
const std::vector<AttnShape> kAttnShapes = {{4, 0, 7, 6, 5},   {1, 0, 1, 3, 2},   {3, 0, 600, 17, 9},
                                            {2, 3, 5, 33, 7},  {5, 4, 9, 32, 16}, {1, 2, 1, 4, 3},
                                            {2, 2, 11, 300, 70}};

TEST(FusedAttention, MatchesComposedValuesAndGradients) {
  uint64_t seed = 20;
  for (bool additive : {true, false}) {
    for (const AttnShape& s : kAttnShapes) {
      Generator g(seed);
      std::mt19937 rng(static_cast<uint32_t>(seed++));
      std::vector<Tensor> in = attn_inputs(g, rng, s, additive);
      Result probe = run(attn_fn(additive, true), in, {});
      std::vector<Tensor> R = upstream_for(probe.outs, g);
      Result fused = run(attn_fn(additive, true), in, R);
      Result comp = run(attn_fn(additive, false), in, R);
      expect_same(fused, comp, 1e-5,
                  fmt::format("{} B{} T{} S{} H{} A{}", additive ? "additive" : "dot", s.B, s.T, s.S, s.H, s.A));
      if (additive) {
        ASSERT_TRUE(prepare_additive_keys(in[3]).exp2.defined());
        expect_same(run(attn_fn(true, true, true), in, R), comp, 1e-5,
                    fmt::format("additive, prepared keys, B{} T{} S{} H{} A{}", s.B, s.T, s.S, s.H, s.A));
      }
    }
  }
}

// One decoder step (one query row per entry): the backward writes d(keys) over the forward's
// tanh cache, unless the graph is kept for another backward, which must then find the cache
// intact: two backwards through one retained graph give twice the gradients of one.
TEST(FusedAttention, ARetainedGraphKeepsTheTanhCacheForASecondBackward) {
  Generator g(27);
  std::mt19937 rng(27);
  for (bool prepared : {false, true}) {
    const std::vector<Tensor> in = attn_inputs(g, rng, {3, 0, 9, 8, 12}, true);
    const std::vector<Tensor> R = upstream_for(run(attn_fn(true, true, prepared), in, {}).outs, g);
    const Result once = run(attn_fn(true, true, prepared), in, R);
    std::vector<Tensor> xs;
    for (const Tensor& t : in) xs.push_back(is_floating(t.dtype()) ? leaf(t) : t);
    const std::vector<Tensor> outs = attn_fn(true, true, prepared)(xs);
    const Tensor loss = sum(outs[0] * R[0]) + sum(outs[1] * R[1]);
    loss.backward(Tensor(), /*retain_graph=*/true);
    loss.backward();
    for (size_t k : {size_t{0}, size_t{1}, size_t{3}, size_t{4}}) {
      EXPECT_LE(rel_err(xs[k].grad(), once.grads[k] * 2.0), 1e-6) << "input " << k << (prepared ? ", prepared keys" : "");
    }
  }
}

TEST(FusedAttention, GradientsMatchFiniteDifferences) {
  Generator g(30);
  std::mt19937 rng(30);
  for (bool additive : {true, false}) {
    // the last shape has a full feature chunk of the CPU backward (32) and a tail
    for (AttnShape s : {AttnShape{3, 0, 4, 3, 2}, AttnShape{2, 2, 3, 3, 4}, AttnShape{2, 2, 3, 35, 35}}) {
      std::vector<Tensor> in = attn_inputs(g, rng, s, additive, DType::Float64);
      auto f = attn_fn(additive, true);
      auto fn = [&](const std::vector<Tensor>& x) {
        std::vector<Tensor> o = f(x);
        return cat({o[0].flatten(), o[1].flatten()}, 0);
      };
      std::vector<int> wrt = additive ? std::vector<int>{0, 1, 3, 4} : std::vector<int>{0, 1};
      EXPECT_TRUE(gradcheck(fn, in, wrt)) << (additive ? "additive" : "dot") << " T=" << s.T;
      if (additive) {  // from prepared keys: the exp(2q) exp(2k) form of the forward
        auto fp = attn_fn(true, true, true);
        auto fnp = [&](const std::vector<Tensor>& x) {
          std::vector<Tensor> o = fp(x);
          return cat({o[0].flatten(), o[1].flatten()}, 0);
        };
        EXPECT_TRUE(gradcheck(fnp, in, wrt)) << "additive, prepared keys, T=" << s.T;
      }
    }
  }
}

// Over 16M tanh terms (B*T*S*A) the CPU forward keeps no tanh cache and the backward
// recomputes them. That path in float64 against the composed version (the math, to 1e-10), and
// in float32 against that float64 result (with S = 2050 positions the softmax backward cancels:
// both float32 versions land ~1e-5 from it).
TEST(FusedAttention, LargeAdditiveShapesRecomputeTheTanh) {
  Generator g(33);
  std::mt19937 rng(33);
  const AttnShape s{1, 2, 2050, 8, 4100};  // 1 * 2 * 2050 * 4100 = 16.8M > 16M
  std::vector<Tensor> in64 = attn_inputs(g, rng, s, true, DType::Float64);
  std::vector<Tensor> R64 = upstream_for(run(attn_fn(true, true), in64, {}).outs, g);
  const Result exact = run(attn_fn(true, true), in64, R64);
  expect_same(exact, run(attn_fn(true, false), in64, R64), 1e-10, "additive, no tanh cache, float64");
  auto f32 = [](const std::vector<Tensor>& v) {
    std::vector<Tensor> out;
    for (const Tensor& t : v) out.push_back(is_floating(t.dtype()) ? t.to(DType::Float32) : t);
    return out;
  };
  expect_same(run(attn_fn(true, true), f32(in64), f32(R64)), exact, 1e-4, "additive, no tanh cache, float32");
  // from prepared keys the backward recomputes them as 1 - 2 / (1 + exp(2q) exp(2k))
  expect_same(run(attn_fn(true, true, true), in64, R64), exact, 1e-10, "additive, prepared keys, no tanh cache, float64");
  expect_same(run(attn_fn(true, true, true), f32(in64), f32(R64)), exact, 1e-4, "additive, prepared keys, no tanh cache, float32");
}

// Prepared keys: tanh(q + k) = 1 - 2 / (1 + exp(2q) exp(2k)) where every |k| <= 40 and the
// row's |q| entries are <= 40, the rational tanh elsewhere. Against the composed op in float64
// (the math), with saturating terms (|q + k| up to 78), near-cancelling ones (q ~ -k ~ 39) and
// rows or keys past the bound; in-place changes to the keys after preparation are refused.
TEST(FusedAttention, PreparedKeysMatchTheMathAcrossTheExpRange) {
  Generator g(35);
  std::mt19937 rng(35);
  const AttnShape s{4, 3, 9, 7, 37};
  auto f32 = [](const std::vector<Tensor>& v) {
    std::vector<Tensor> out;
    for (const Tensor& t : v) out.push_back(is_floating(t.dtype()) ? t.to(DType::Float32) : t);
    return out;
  };
  for (int kind = 0; kind < 3; ++kind) {  // 0 within the bound, 1 a query row past it, 2 a key past it
    std::vector<Tensor> in = attn_inputs(g, rng, s, true, DType::Float64);
    in[0] = in[0] * 39.0;  // query (B, T, A) in [-39, 39]
    in[3] = in[3] * 39.0;  // keys (B, S, A)
    {
      NoGradGuard ng;  // near-cancelling terms: keys[1, s] = -query[1, 0] + a little
      Tensor k1 = in[3].select(0, 1), q10 = in[0].select(0, 1).select(0, 0);
      k1.copy_(neg(q10).unsqueeze(0) + uniform({s.S, s.A}, -0.01, 0.01, g, {.dtype = DType::Float64}));
      // a query entry past the bound: exp(2 * 45) is inf in float32, which would make
      // tanh(45 - 40) 1 instead of 0.99991
      if (kind == 1) {
        in[0].select(0, 2).select(0, 1).narrow(0, 5, 1).fill_(45.0);
        in[3].select(0, 2).select(0, 0).narrow(0, 5, 1).fill_(-40.0);
      }
      if (kind == 2) in[3].select(0, 3).select(0, 4).narrow(0, 0, 1).fill_(-41.0);
    }
    const std::string what = fmt::format("kind {}", kind);
    EXPECT_EQ(prepare_additive_keys(in[3].to(DType::Float32)).exp2.defined(), kind != 2) << what;
    const std::vector<Tensor> R = upstream_for(run(attn_fn(true, false), in, {}).outs, g);
    const Result exact = run(attn_fn(true, false), in, R);
    expect_same(run(attn_fn(true, true, true), in, R), exact, 1e-10, what + ", float64");
    // float32 against the float64 math: a few 1e-7 from rounding the inputs and the sums
    expect_same(run(attn_fn(true, true, true), f32(in), f32(R)), exact, 1e-5, what + ", float32");
  }
  // one term, q = 45 and k = -40: exp(2q) overflows float32, so the row must take the rational
  // tanh (tanh(5) = 0.99991, where inf would give 1 and a zero gradient). Float32 loses ~5e-4
  // of 1 - tanh^2 = 1.8e-4 to rounding on either path, so prepared is compared with plain.
  {
    std::vector<Tensor> one = {from_vector<double>({45.0}, Shape{1, 1}), uniform({1, 2, 3}, -1.0, 1.0, g, {.dtype = DType::Float64}),
                               from_vector<int64_t>({2}), from_vector<double>({-40.0, 0.0}, Shape{1, 2, 1}),
                               from_vector<double>({1.0}, Shape{1})};
    const std::vector<Tensor> R = upstream_for(run(attn_fn(true, false), one, {}).outs, g);
    const Result plain = run(attn_fn(true, true), f32(one), f32(R));
    expect_same(plain, run(attn_fn(true, false), one, R), 1e-3, "q = 45, k = -40, float32 plain keys vs the math");
    expect_same(run(attn_fn(true, true, true), f32(one), f32(R)), plain, 1e-6, "q = 45, k = -40, float32 prepared vs plain");
  }
  // the bound on the keys, in any 4096-element block of a longer tensor: 40 is in, just above,
  // inf and NaN are out (those keys take the plain path); the prepared values are exp(2k)
  {
    Tensor big = uniform({3, 5000}, -40.0, 40.0, g);
    big.select(0, 1).narrow(0, 4100, 1).fill_(40.0);
    AdditiveKeys ok = prepare_additive_keys(big);
    ASSERT_TRUE(ok.exp2.defined());
    const std::vector<float> k = big.to_vector<float>(), e2 = ok.exp2.to_vector<float>();
    for (size_t i = 0; i < k.size(); i += 97) EXPECT_NEAR(e2[i] / std::exp(2.0 * k[i]), 1.0, 3e-7) << k[i];
    for (float bad : {40.001f, -40.001f, INFINITY, -INFINITY, NAN}) {
      Tensor b = big.clone();
      b.select(0, 2).narrow(0, 4999, 1).fill_(bad);
      EXPECT_FALSE(prepare_additive_keys(b).exp2.defined()) << bad;
    }
  }
  // the keys changed in place after preparation: refused, naming the shapes
  std::vector<Tensor> in = attn_inputs(g, rng, s, true);
  AdditiveKeys keys = prepare_additive_keys(in[3]);
  EXPECT_NO_THROW(additive_attention(in[0], keys, in[4], in[1], in[2]));
  in[3].mul_(2.0);
  expect_throw_with<ValueError>([&] { additive_attention(in[0], keys, in[4], in[1], in[2]); },
                                {"changed in place after prepare_additive_keys", "[4, 9, 37]"});
}

TEST(FusedAttention, MaskedPositionsHaveExactlyZeroWeightAndGradient) {
  Generator g(31);
  std::mt19937 rng(31);
  for (bool additive : {true, false}) {
    std::vector<Tensor> in = attn_inputs(g, rng, {3, 2, 6, 5, 4}, additive);
    in[2] = from_vector<int64_t>({6, 1, 3});
    for (bool prepared : {false, true}) {
    if (prepared && !additive) continue;
    Result r = run(attn_fn(additive, true, prepared), in, upstream_for(run(attn_fn(additive, true), in, {}).outs, g));
    std::vector<float> w = r.outs[1].to_vector<float>(), dvals = r.grads[1].to_vector<float>();
    std::vector<float> dkeys = additive ? r.grads[3].to_vector<float>() : std::vector<float>();
    const std::vector<int64_t> len{6, 1, 3};
    for (int64_t b = 0; b < 3; ++b) {
      for (int64_t t = 0; t < 2; ++t) {
        double total = 0;
        for (int64_t s = 0; s < 6; ++s) {
          const float ws = w[static_cast<size_t>((b * 2 + t) * 6 + s)];
          if (s >= len[b]) {
            EXPECT_EQ(ws, 0.0f);
          }
          total += ws;
        }
        EXPECT_NEAR(total, 1.0, 1e-6);
      }
      for (int64_t s = len[b]; s < 6; ++s) {
        for (int64_t h = 0; h < 5; ++h) EXPECT_EQ(dvals[static_cast<size_t>((b * 6 + s) * 5 + h)], 0.0f);
        if (additive) {
          for (int64_t a = 0; a < 4; ++a) EXPECT_EQ(dkeys[static_cast<size_t>((b * 6 + s) * 4 + a)], 0.0f);
        }
      }
    }
    }
  }
}

// The lengths are read (on a GPU: a synchronizing copy) once per tensor, not once per decoder
// step; any change to them, or a shorter padded length, is checked again.
TEST(FusedAttention, LengthsAreReadOncePerTensorAndRecheckedWhenChanged) {
  Generator g(21);
  std::mt19937 rng(21);
  std::vector<Tensor> in = attn_inputs(g, rng, {3, 0, 6, 4, 4}, false);  // q (3, 4), values (3, 6, 4)
  Tensor lengths = from_vector<int64_t>({6, 2, 4}, Shape{3});
  const int64_t reads = lengths_reads();
  for (int step = 0; step < 5; ++step) dot_attention(in[0], in[1], lengths);
  EXPECT_EQ(lengths_reads(), reads + 1);
  // A shorter padded length than the longest entry: read again, and refused.
  EXPECT_THROW(dot_attention(in[0], in[1].narrow(1, 0, 5), lengths), ValueError);
  // An in-place write bumps the version: read again, and refused.
  lengths.fill_(7.0);
  EXPECT_THROW(dot_attention(in[0], in[1], lengths), ValueError);
  lengths.fill_(0.0);
  EXPECT_THROW(dot_attention(in[0], in[1], lengths), ValueError);
  // A new tensor with the same values is a new check (a freed storage never matches).
  const int64_t before = lengths_reads();
  dot_attention(in[0], in[1], from_vector<int64_t>({6, 2, 4}, Shape{3}));
  dot_attention(in[0], in[1], from_vector<int64_t>({6, 2, 4}, Shape{3}));
  EXPECT_EQ(lengths_reads(), before + 2);
  // A view of other entries of one storage is another tensor.
  Tensor both = from_vector<int64_t>({6, 2, 4, 9, 9, 9}, Shape{6});
  dot_attention(in[0], in[1], both.narrow(0, 0, 3));
  EXPECT_THROW(dot_attention(in[0], in[1], both.narrow(0, 3, 3)), ValueError);
  // Lengths vouched for by their maker are not read; the LSTM still uses them.
  std::vector<Tensor> li = lstm_inputs(g, rng, {3, 1, 5, 4});
  Tensor ones = full(Shape{3}, 1.0, {.dtype = DType::Int64});
  note_checked_lengths(ones, 1);
  const int64_t r0 = lengths_reads();
  LstmLayerOutput o = lstm_layer(li[0], ones, li[2], li[3], li[4], li[5], li[6], li[7]);
  EXPECT_EQ(lengths_reads(), r0);
  LstmLayerOutput ref = lstm_layer(li[0], from_vector<int64_t>({1, 1, 1}, Shape{3}), li[2], li[3], li[4], li[5], li[6], li[7]);
  EXPECT_EQ(o.output.to_vector<float>(), ref.output.to_vector<float>());
  // A padded batch needs the lengths themselves (to pack the steps): read once, then remembered
  // for the next call; lengths vouched for without their values are read once too.
  std::vector<Tensor> lp = lstm_inputs(g, rng, {3, 6, 4, 5});
  Tensor padded = from_vector<int64_t>({6, 2, 4}, Shape{3});
  const int64_t r2 = lengths_reads();
  const LstmLayerOutput p1 = lstm_layer(lp[0], padded, lp[2], lp[3], lp[4], lp[5], lp[6], lp[7]);
  const LstmLayerOutput p2 = lstm_layer(lp[0], padded, lp[2], lp[3], lp[4], lp[5], lp[6], lp[7]);
  EXPECT_EQ(lengths_reads(), r2 + 1);
  EXPECT_EQ(p1.output.to_vector<float>(), p2.output.to_vector<float>());
  Tensor vouched = from_vector<int64_t>({6, 2, 4}, Shape{3});
  note_checked_lengths(vouched, 6);
  const LstmLayerOutput p3 = lstm_layer(lp[0], vouched, lp[2], lp[3], lp[4], lp[5], lp[6], lp[7]);
  lstm_layer(lp[0], vouched, lp[2], lp[3], lp[4], lp[5], lp[6], lp[7]);
  EXPECT_EQ(lengths_reads(), r2 + 2);
  EXPECT_EQ(p3.output.to_vector<float>(), p1.output.to_vector<float>());
  // A decoder's pattern: its lengths at every step beside a fresh vouched-for tensor per step,
  // all kept alive (as the backward keeps them): its lengths are read once, not once per 8 steps.
  Tensor dec_lengths = from_vector<int64_t>({6, 2, 4}, Shape{3});
  std::vector<Tensor> step_ones;
  const int64_t r1 = lengths_reads();
  for (int step = 0; step < 30; ++step) {
    dot_attention(in[0], in[1], dec_lengths);
    step_ones.push_back(full(Shape{3}, 1.0, {.dtype = DType::Int64}));
    note_checked_lengths(step_ones.back(), 1);
  }
  EXPECT_EQ(lengths_reads(), r1 + 1);
}

// ---------------------------------------------------------------- softmax + NLL

struct NllCase {
  int64_t N, V;
  double smoothing;
  Reduction reduction;
};

std::vector<Tensor> nll_inputs(Generator& g, std::mt19937& rng, int64_t N, int64_t V, DType dt = DType::Float32) {
  Tensor logits = uniform({N, V}, -4.0, 4.0, g, {.dtype = dt});
  std::vector<int64_t> t(static_cast<size_t>(N));
  std::uniform_int_distribution<int64_t> d(0, V - 1);
  for (auto& x : t) x = d(rng);
  if (N > 2) t[1] = -100;  // an ignored row
  return {logits, from_vector(t, Shape{N})};
}

// ---------------------------------------------------------------- inputs in other layouts, threads

// The kernels index lengths[b]: a strided column of a table, or one length expanded over the
// batch (stride 0), must give what the contiguous lengths give.
std::vector<Tensor> lengths_layouts(const std::vector<int64_t>& v) {
  const int64_t B = static_cast<int64_t>(v.size());
  std::vector<int64_t> table;
  for (int64_t x : v) {
    table.push_back(x);
    table.push_back(1000000);  // a value no kernel may read as a length
  }
  return {from_vector(v, Shape{B}), from_vector(table, Shape{B, 2}).select(1, 0)};
}

TEST(FusedKernels, LengthsInAnyLayout) {
  Generator g(81);
  std::mt19937 rng(81);
  const std::vector<int64_t> lv = {3, 1, 5, 2};
  const std::vector<Tensor> layouts = lengths_layouts(lv);
  ASSERT_FALSE(layouts[1].is_contiguous());
  for (bool additive : {true, false}) {
    std::vector<Tensor> in = attn_inputs(g, rng, AttnShape{4, 2, 5, 6, 7}, additive);
    in[2] = layouts[0];
    const std::vector<Tensor> R = upstream_for(run(attn_fn(additive, true), in, {}).outs, g);
    const Result want = run(attn_fn(additive, true), in, R);
    in[2] = layouts[1];
    expect_same(run(attn_fn(additive, true), in, R), want, 1e-7, additive ? "additive, strided lengths" : "dot, strided lengths");
    in[2] = full({1}, 4.0, {.dtype = DType::Int64}).expand({4});
    const Result expanded = run(attn_fn(additive, true), in, R);
    in[2] = full({4}, 4.0, {.dtype = DType::Int64});
    expect_same(expanded, run(attn_fn(additive, true), in, R), 1e-7, "expanded lengths");
  }
  std::vector<Tensor> in = lstm_inputs(g, rng, LstmShape{4, 5, 3, 6});
  in[1] = layouts[0];
  const std::vector<Tensor> R = upstream_for(run(lstm_fn(kFusedLstm, false), in, {}).outs, g);
  const Result want = run(lstm_fn(kFusedLstm, false), in, R);
  in[1] = layouts[1];
  expect_same(run(lstm_fn(kFusedLstm, false), in, R), want, 1e-7, "lstm, strided lengths");
}

// Ops called from the threads of the caller's own OpenMP team (nested: the op's kernels run
// on the calling thread alone) give each caller the result of a plain call.
TEST(FusedKernels, CallsFromInsideAParallelRegion) {
  Generator g(82);
  std::mt19937 rng(82);
  constexpr int kCallers = 6;  // more than the default team, so thread ranks exceed it
  std::vector<std::vector<Tensor>> ins, Rs;
  std::vector<Result> want;
  for (int c = 0; c < kCallers; ++c) {
    ins.push_back(attn_inputs(g, rng, AttnShape{8, 2, 9, 16, 40}, true));
    Rs.push_back(upstream_for(run(attn_fn(true, true), ins.back(), {}).outs, g));
    want.push_back(run(attn_fn(true, true), ins.back(), Rs.back()));
  }
  std::vector<Result> got(kCallers);
#pragma omp parallel for num_threads(kCallers)
  for (int c = 0; c < kCallers; ++c) got[static_cast<size_t>(c)] = run(attn_fn(true, true), ins[static_cast<size_t>(c)], Rs[static_cast<size_t>(c)]);
  for (int c = 0; c < kCallers; ++c) expect_same(got[static_cast<size_t>(c)], want[static_cast<size_t>(c)], 1e-6, fmt::format("caller {}", c));
}

TEST(FusedSoftmaxNll, MatchesComposedValuesAndGradients) {
  const std::vector<NllCase> cases = {{7, 11, 0.0, Reduction::Mean}, {7, 11, 0.1, Reduction::Mean},
                                      {33, 1000, 0.0, Reduction::Sum}, {33, 1000, 0.2, Reduction::None},
                                      {5, 10007, 0.1, Reduction::Mean}, {1, 3, 0.0, Reduction::Mean}};
  uint64_t seed = 40;
  for (const NllCase& c : cases) {
    Generator g(seed);
    std::mt19937 rng(static_cast<uint32_t>(seed++));
    std::vector<Tensor> in = nll_inputs(g, rng, c.N, c.V);
    auto f = [&](bool fused) {
      return [&c, fused](const std::vector<Tensor>& x) {
        return std::vector<Tensor>{fused ? softmax_nll(x[0], x[1], -100, c.smoothing, c.reduction)
                                         : composed::softmax_nll(x[0], x[1], -100, c.smoothing, c.reduction)};
      };
    };
    std::vector<Tensor> R = upstream_for(run(f(true), in, {}).outs, g);
    expect_same(run(f(true), in, R), run(f(false), in, R), 1e-5,
                fmt::format("N{} V{} smoothing {}", c.N, c.V, c.smoothing));
  }
}

// Classes masked out with -inf (as with masked_fill(-inf)), some at the very start of the row
// where a GPU thread begins its running max at -inf: the loss stays finite and every value and
// gradient matches the composed version; the masked classes get exactly zero gradient.
std::vector<Tensor> nll_inputs_with_masked_classes(Generator& g, std::mt19937& rng, int64_t N, int64_t V) {
  std::vector<Tensor> in = nll_inputs(g, rng, N, V);
  std::vector<uint8_t> m(static_cast<size_t>(N * V), 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j : {int64_t{0}, int64_t{1}, V / 2, V - 1}) m[static_cast<size_t>(i * V + j)] = 1;
  std::vector<int64_t> t = in[1].to_vector<int64_t>();
  for (auto& c : t) c = c == -100 ? c : 2 + c % (V / 2 - 2);  // targets are never masked
  return {masked_fill(in[0], from_vector(std::vector<bool>(m.begin(), m.end()), Shape{N, V}), -INFINITY),
          from_vector(t, Shape{N})};
}

// The forward keeps no (N, V) tensor for the backward (two numbers a row), and the backward
// allocates one: the gradient it returns. The composed op keeps its log_softmax (N, V): the
// measurement sees it.
TEST(FusedSoftmaxNll, KeepsNoSecondVocabularySizedTensor) {
  Generator g(23);
  const int64_t N = 64, V = 5000;
  const int64_t nv_bytes = N * V * 4;
  Allocator& cpu = allocator_for(kCPU);
  Tensor x = uniform({N, V}, -3.0, 3.0, g).requires_grad_(true);
  std::vector<int64_t> tv;
  for (int64_t i = 0; i < N; ++i) tv.push_back((i * 131) % V);
  const Tensor target = from_vector(tv, Shape{N});
  for (bool fused : {true, false}) {
    cpu.reset_peak();
    const int64_t before = cpu.stats().in_use;
    Tensor loss = fused ? softmax_nll(x, target) : composed::softmax_nll(x, target);
    const int64_t kept = cpu.stats().in_use - before;
    const int64_t forward_peak = cpu.stats().peak - before;
    cpu.reset_peak();
    const int64_t before_backward = cpu.stats().in_use;
    loss.backward();
    const int64_t backward_peak = cpu.stats().peak - before_backward;
    if (fused) {
      EXPECT_LT(forward_peak, nv_bytes / 8) << "the forward allocated a V-sized tensor";
      EXPECT_LT(kept, nv_bytes / 8);
      EXPECT_GE(backward_peak, nv_bytes);  // the gradient
      EXPECT_LT(backward_peak, nv_bytes + nv_bytes / 8) << "the backward allocated a second V-sized tensor";
    } else {
      EXPECT_GE(kept, nv_bytes);  // its log_softmax, saved
    }
    x.set_grad(Tensor());
  }
}

TEST(FusedSoftmaxNll, MinusInfinityLogitsAreMaskedClasses) {
  Generator g(45);
  std::mt19937 rng(45);
  std::vector<Tensor> in = nll_inputs_with_masked_classes(g, rng, 9, 1000);
  auto f = [](bool fused) {
    return [fused](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{fused ? softmax_nll(x[0], x[1], -100, 0.0, Reduction::None)
                                       : composed::softmax_nll(x[0], x[1], -100, 0.0, Reduction::None)};
    };
  };
  std::vector<Tensor> R = upstream_for(run(f(true), in, {}).outs, g);
  Result fused = run(f(true), in, R);
  for (double l : fused.outs[0].to_vector<double>()) EXPECT_TRUE(std::isfinite(l)) << l;
  expect_same(fused, run(f(false), in, R), 1e-5, "-inf logits");
  const std::vector<float> grad = fused.grads[0].to_vector<float>();
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(grad[static_cast<size_t>(i * 1000)], 0.0f);
}

// Rows longer than one block of the one-pass log-sum-exp (kernels/cpu/row_math.h: 1024), with
// the maximum in the first or the last block, a whole block of -inf, and a NaN. The composed
// version shares that log-sum-exp (through log_softmax), so the reference here is plain double
// arithmetic on the same float logits.
TEST(FusedSoftmaxNll, LongRowsMatchADoubleReference) {
  const int64_t N = 6, V = 3001;
  std::mt19937 rng(46);
  std::uniform_real_distribution<float> u(-20.0f, 20.0f);
  std::vector<float> x(static_cast<size_t>(N * V));
  for (auto& v : x) v = u(rng);
  auto at = [&](int64_t i, int64_t j) -> float& { return x[static_cast<size_t>(i * V + j)]; };
  for (int64_t j = 0; j < V; ++j) {
    at(1, j) = j < 1100 ? -INFINITY : at(1, j);  // the first block and more masked
    at(2, j) = static_cast<float>(j) * 0.02f;     // maximum in the last block
    at(3, j) = 60.0f - static_cast<float>(j) * 0.02f;  // maximum in the first block
  }
  at(4, 2000) = 80.0f;  // one dominant class in the middle block
  at(5, 1500) = NAN;
  const std::vector<int64_t> target = {7, 2999, 3000, 0, 2000, 3};
  const Tensor logits = from_vector(x, Shape{N, V});
  const std::vector<double> loss = softmax_nll(logits, from_vector(target, Shape{N}), -100, 0.0, Reduction::None).to_vector<double>();
  const std::vector<double> logp = log_softmax(logits, 1).to_vector<double>();
  for (int64_t i = 0; i < N - 1; ++i) {
    double mx = -INFINITY, total = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, static_cast<double>(at(i, j)));
    for (int64_t j = 0; j < V; ++j) total += std::exp(static_cast<double>(at(i, j)) - mx);
    const double lse = mx + std::log(total);
    const double want = lse - static_cast<double>(at(i, target[static_cast<size_t>(i)]));
    EXPECT_NEAR(loss[static_cast<size_t>(i)], want, 2e-6 * std::max(1.0, std::fabs(want))) << "row " << i;
    for (int64_t j : {int64_t{0}, int64_t{1023}, int64_t{1024}, int64_t{2047}, int64_t{2048}, V - 1}) {
      const double w = static_cast<double>(at(i, j)) - lse;
      if (std::isinf(w)) EXPECT_EQ(logp[static_cast<size_t>(i * V + j)], w) << "row " << i << " class " << j;
      else EXPECT_NEAR(logp[static_cast<size_t>(i * V + j)], w, 2e-6 * std::max(1.0, std::fabs(w))) << "row " << i << " class " << j;
    }
  }
  EXPECT_TRUE(std::isnan(loss[N - 1])) << "a NaN logit makes the row's loss NaN";
  EXPECT_TRUE(std::isnan(logp[static_cast<size_t>((N - 1) * V)]));
}

TEST(FusedSoftmaxNll, MatchesPyTorchCrossEntropy) {
  // torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.1)
  // for these inputs, printed by PyTorch 1.13 in float64: 0.4669263907847826
  Tensor logits = from_vector<double>({0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 1.0, 3.0, -2.0, 0.75, 0.1}, {3, 4});
  Tensor target = from_vector<int64_t>({2, -100, 0});
  EXPECT_NEAR(softmax_nll(logits, target, -100, 0.1).item<double>(), 0.4669263907847826, 1e-12);
}

TEST(FusedSoftmaxNll, GradientsMatchFiniteDifferences) {
  Generator g(50);
  std::mt19937 rng(50);
  for (double smoothing : {0.0, 0.15}) {
    for (Reduction red : {Reduction::Mean, Reduction::None}) {
      std::vector<Tensor> in = nll_inputs(g, rng, 4, 6, DType::Float64);
      auto fn = [&](const std::vector<Tensor>& x) { return softmax_nll(x[0], x[1], -100, smoothing, red); };
      EXPECT_TRUE(gradcheck(fn, in, {0})) << "smoothing " << smoothing;
    }
  }
}

TEST(FusedSoftmaxNll, RejectsTargetsOutOfRange) {
  Tensor logits = zeros({2, 3}) + 0.5;
  try {
    softmax_nll(logits, from_vector<int64_t>({1, 3}));
    FAIL() << "expected IndexError";
  } catch (const IndexError& e) {
    EXPECT_NE(std::string(e.what()).find("target 3 at position 1"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- GPU vs CPU

#define REQUIRE_GPU()                                                  \
  do {                                                                 \
    std::string why_;                                                  \
    if (!gpu_available(&why_)) GTEST_SKIP() << "no GPU: " << why_;     \
  } while (0)

std::vector<Tensor> to_device(const std::vector<Tensor>& v, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& t : v) out.push_back(t.to(d));
  return out;
}

TEST(FusedCuda, LstmMatchesCpu) {
  REQUIRE_GPU();
  uint64_t seed = 60;
  for (LstmShape s : {LstmShape{4, 7, 5, 6}, LstmShape{3, 12, 33, 17}, LstmShape{2, 520, 4, 3}, LstmShape{32, 20, 256, 256}}) {
    for (bool padded : {true, false}) {  // packed steps, or strided views of the whole batch
      for (bool reverse : {false, true}) {
        Generator g(seed);
        std::mt19937 rng(static_cast<uint32_t>(seed++));
        std::vector<Tensor> in = lstm_inputs(g, rng, s);
        if (!padded) in[1] = full_lengths(s.B, s.S);
        std::vector<Tensor> R = upstream_for(run(lstm_fn(kFusedLstm, reverse), in, {}).outs, g);
        expect_same(run(lstm_fn(kFusedLstm, reverse), to_device(in, kCUDA), R), run(lstm_fn(kFusedLstm, reverse), in, R),
                    1e-5, fmt::format("cuda lstm B{} S{} H{} padded={} reverse={}", s.B, s.S, s.H, padded, reverse));
      }
    }
  }
  // Without autograd (one step of scratch instead of saved buffers), and in float64.
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator g(seed);
    std::mt19937 rng(static_cast<uint32_t>(seed++));
    const std::vector<Tensor> in = lstm_inputs(g, rng, {5, 9, 7, 6}, dt);
    for (bool reverse : {false, true}) {
      NoGradGuard ng;
      const std::vector<Tensor> cpu = lstm_fn(kFusedLstm, reverse)(in), gpu = lstm_fn(kFusedLstm, reverse)(to_device(in, kCUDA));
      for (size_t k = 0; k < cpu.size(); ++k) {
        EXPECT_LE(rel_err(gpu[k].to(kCPU), cpu[k]), dt == DType::Float64 ? 1e-12 : 1e-5)
            << fmt::format("no-grad cuda lstm output {} {} reverse={}", k, dt, reverse);
      }
    }
  }
}

TEST(FusedCuda, AttentionMatchesCpu) {
  REQUIRE_GPU();
  uint64_t seed = 70;
  std::vector<AttnShape> shapes = kAttnShapes;
  shapes.push_back({2, 0, 6, 40, 1030});  // A > 1024: the backward's dv sums over several blocks
  for (bool additive : {true, false}) {
    for (const AttnShape& s : shapes) {
      Generator g(seed);
      std::mt19937 rng(static_cast<uint32_t>(seed++));
      std::vector<Tensor> in = attn_inputs(g, rng, s, additive);
      std::vector<Tensor> R = upstream_for(run(attn_fn(additive, true), in, {}).outs, g);
      expect_same(run(attn_fn(additive, true), to_device(in, kCUDA), R), run(attn_fn(additive, true), in, R), 1e-5,
                  fmt::format("cuda {} B{} T{} S{} H{} A{}", additive ? "additive" : "dot", s.B, s.T, s.S, s.H, s.A));
      if (additive) {  // prepared keys: plain on CUDA (no exp(2 keys) there), exp form on the CPU
        EXPECT_FALSE(prepare_additive_keys(in[3].to(kCUDA)).exp2.defined());
        expect_same(run(attn_fn(true, true, true), to_device(in, kCUDA), R), run(attn_fn(true, true, true), in, R), 1e-5,
                    fmt::format("cuda additive, prepared keys, B{} T{} S{} H{} A{}", s.B, s.T, s.S, s.H, s.A));
      }
    }
  }
}

TEST(FusedCuda, SoftmaxNllMatchesCpu) {
  REQUIRE_GPU();
  Generator g(80);
  std::mt19937 rng(80);
  for (NllCase c : {NllCase{7, 11, 0.1, Reduction::Mean}, NllCase{64, 32000, 0.0, Reduction::Sum}, NllCase{5, 10007, 0.2, Reduction::None}}) {
    std::vector<Tensor> in = nll_inputs(g, rng, c.N, c.V);
    auto f = [&c](const std::vector<Tensor>& x) { return std::vector<Tensor>{softmax_nll(x[0], x[1], -100, c.smoothing, c.reduction)}; };
    std::vector<Tensor> R = upstream_for(run(f, in, {}).outs, g);
    expect_same(run(f, to_device(in, kCUDA), R), run(f, in, R), 1e-5, fmt::format("cuda softmax_nll V{}", c.V));
  }
  // Masked (-inf) classes, also where a thread's first logit is -inf.
  std::vector<Tensor> in = nll_inputs_with_masked_classes(g, rng, 9, 1000);
  auto f = [](const std::vector<Tensor>& x) { return std::vector<Tensor>{softmax_nll(x[0], x[1], -100, 0.0, Reduction::None)}; };
  std::vector<Tensor> R = upstream_for(run(f, in, {}).outs, g);
  expect_same(run(f, to_device(in, kCUDA), R), run(f, in, R), 1e-5, "cuda softmax_nll with -inf logits");
  // A NaN logit among -inf ones makes its row's loss NaN on both devices.
  Tensor x = in[0].clone();
  Tensor row = x.select(0, 3);
  row.fill_(-INFINITY);
  row.narrow(0, 7, 1).fill_(NAN);
  row.narrow(0, 2, 1).fill_(0.5);
  const std::vector<float> gpu = softmax_nll(x.to(kCUDA), in[1].to(kCUDA), -100, 0.0, Reduction::None).to(kCPU).to_vector<float>();
  const std::vector<float> cpu = softmax_nll(x, in[1], -100, 0.0, Reduction::None).to_vector<float>();
  EXPECT_TRUE(std::isnan(cpu[3]));
  EXPECT_TRUE(std::isnan(gpu[3]));
  EXPECT_TRUE(std::isfinite(gpu[4]));
  // A +inf logit among -inf ones (one GPU thread holds it alone): NaN on both, as log-sum-exp is.
  Tensor y = in[0].clone();
  Tensor row5 = y.select(0, 5);
  row5.fill_(-INFINITY);
  row5.narrow(0, 300, 1).fill_(INFINITY);
  std::vector<int64_t> targets = in[1].to_vector<int64_t>();
  targets[5] = 2;  // not ignored
  const Tensor t = from_vector(targets, in[1].shape());
  const std::vector<float> gpu_inf = softmax_nll(y.to(kCUDA), t.to(kCUDA), -100, 0.0, Reduction::None).to(kCPU).to_vector<float>();
  const std::vector<float> cpu_inf = softmax_nll(y, t, -100, 0.0, Reduction::None).to_vector<float>();
  EXPECT_TRUE(std::isnan(cpu_inf[5]));
  EXPECT_TRUE(std::isnan(gpu_inf[5]));
  EXPECT_TRUE(std::isfinite(gpu_inf[4]));
}

}  // namespace
}  // namespace attn::test
