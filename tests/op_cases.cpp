#include "tests/op_cases.h"

#include <numeric>

#include "core/philox.h"

namespace attn::test {

namespace {

using Refs = std::vector<Ref>;
using P = std::vector<int64_t>;

double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// A shape and a second one that broadcasts against it (some dims set to 1, maybe fewer dims).
std::pair<Shape, Shape> broadcast_pair(Ctx& c) {
  Shape a = c.shape(1, 4, 5);
  Shape b = a;
  for (auto& d : b)
    if (c.pick(0, 2) == 0) d = 1;
  const int64_t drop = c.pick(0, static_cast<int64_t>(b.size()) - 1);
  b = Shape(b.begin() + drop, b.end());
  if (c.pick(0, 1)) std::swap(a, b);
  return {a, b};
}

OpCase binary(std::string name, std::function<Tensor(const Tensor&, const Tensor&)> f,
              std::function<double(double, double)> r, bool broadcast, double lo_b = -1.0,
              double hi_b = 1.0) {
  return OpCase{
      std::move(name),
      [broadcast, lo_b, hi_b](Ctx& c) {
        auto [sa, sb] = broadcast ? broadcast_pair(c) : std::pair<Shape, Shape>();
        if (!broadcast) sa = sb = c.shape(1, 4, 6);
        return Args{{c.rand(sa), c.rand(sb, lo_b, hi_b)}, {}};
      },
      [f](const Args& a) { return f(a.x[0], a.x[1]); },
      [r](const Refs& x, const P&) { return ref_map2(x[0], x[1], r); },
      {0, 1}};
}

Tensor round_to_quarter(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  for (double& x : v) x = std::round(x * 4.0) / 4.0;
  return from_vector(v, t.shape()).to(t.dtype());
}

OpCase unary(std::string name, std::function<Tensor(const Tensor&)> f, std::function<double(double)> r,
             double lo = -1.0, double hi = 1.0) {
  return OpCase{std::move(name),
                [lo, hi](Ctx& c) { return Args{{c.rand(c.shape(0, 4, 6), lo, hi)}, {}}; },
                [f](const Args& a) { return f(a.x[0]); },
                [r](const Refs& x, const P&) { return ref_map(x[0], r); },
                {0}};
}

// Comparisons have no gradient; the inputs are drawn from a few values so that ties occur.
OpCase compare(std::string name, std::function<Tensor(const Tensor&, const Tensor&)> f,
               std::function<bool(double, double)> r) {
  return OpCase{std::move(name),
                [](Ctx& c) {
                  auto [sa, sb] = broadcast_pair(c);
                  auto coarse = [&](const Shape& s) { return round_to_quarter(c.rand(s)); };
                  return Args{{coarse(sa), coarse(sb)}, {}};
                },
                [f](const Args& a) { return f(a.x[0], a.x[1]); },
                [r](const Refs& x, const P&) {
                  return ref_map2(x[0], x[1], [r](double p, double q) { return r(p, q) ? 1.0 : 0.0; });
                },
                {}};
}

// A comparison with a scalar (0.25, which the quarter-rounded inputs hit: ties occur).
OpCase compare_scalar(std::string name, std::function<Tensor(const Tensor&, double)> f,
                      std::function<bool(double, double)> r) {
  return OpCase{std::move(name),
                [](Ctx& c) { return Args{{round_to_quarter(c.rand(c.shape(0, 4, 6)))}, {}}; },
                [f](const Args& a) { return f(a.x[0], 0.25); },
                [r](const Refs& x, const P&) { return ref_map(x[0], [r](double p) { return r(p, 0.25) ? 1.0 : 0.0; }); },
                {}};
}

// A mask with roughly half the entries set, of a shape broadcasting against `s`.
Tensor rand_mask(Ctx& c, const Shape& s) {
  Shape m = s;
  for (auto& d : m)
    if (c.pick(0, 2) == 0) d = 1;
  return gt(uniform(m, -1.0, 1.0, c.gen), 0.0);
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> v;
    // ---------------------------------------------------------------- arithmetic
    v.push_back(binary("add", [](auto& a, auto& b) { return add(a, b); }, [](double a, double b) { return a + b; }, false));
    v.push_back(binary("add_broadcast", [](auto& a, auto& b) { return a + b; }, [](double a, double b) { return a + b; }, true));
    v.push_back(binary("sub_broadcast", [](auto& a, auto& b) { return a - b; }, [](double a, double b) { return a - b; }, true));
    v.push_back(binary("mul", [](auto& a, auto& b) { return a * b; }, [](double a, double b) { return a * b; }, false));
    v.push_back(binary("mul_broadcast", [](auto& a, auto& b) { return a * b; }, [](double a, double b) { return a * b; }, true));
    v.push_back(binary("div_broadcast", [](auto& a, auto& b) { return a / b; }, [](double a, double b) { return a / b; }, true, 0.5, 2.0));
    v.push_back(binary("maximum_broadcast", [](auto& a, auto& b) { return maximum(a, b); }, [](double a, double b) { return std::max(a, b); }, true));
    v.push_back(unary("add_scalar", [](auto& a) { return a + 0.75; }, [](double a) { return a + 0.75; }));
    v.push_back(unary("sub_scalar", [](auto& a) { return a - 0.75; }, [](double a) { return a - 0.75; }));
    v.push_back(unary("mul_scalar", [](auto& a) { return a * -1.5; }, [](double a) { return a * -1.5; }));
    v.push_back(unary("div_scalar", [](auto& a) { return a / 3.0; }, [](double a) { return a / 3.0; }));
    v.push_back(unary("rsub_scalar", [](auto& a) { return 2.0 - a; }, [](double a) { return 2.0 - a; }));
    v.push_back(unary("rdiv_scalar", [](auto& a) { return 2.0 / a; }, [](double a) { return 2.0 / a; }, 0.5, 2.0));
    v.push_back(unary("neg", [](auto& a) { return -a; }, [](double a) { return -a; }));
    v.push_back(unary("pow", [](auto& a) { return pow(a, 2.5); }, [](double a) { return std::pow(a, 2.5); }, 0.5, 2.0));
    // ---------------------------------------------------------------- math
    v.push_back(unary("exp", [](auto& a) { return exp(a); }, [](double a) { return std::exp(a); }, -2.0, 2.0));
    v.push_back(unary("log", [](auto& a) { return log(a); }, [](double a) { return std::log(a); }, 0.2, 3.0));
    v.push_back(unary("tanh", [](auto& a) { return tanh(a); }, [](double a) { return std::tanh(a); }, -3.0, 3.0));
    v.push_back(unary("sigmoid", [](auto& a) { return sigmoid(a); }, sigm, -4.0, 4.0));
    v.push_back(unary("relu", [](auto& a) { return relu(a); }, [](double a) { return a > 0 ? a : 0.0; }));
    v.push_back(unary("sqrt", [](auto& a) { return sqrt(a); }, [](double a) { return std::sqrt(a); }, 0.2, 3.0));
    v.push_back(unary("square", [](auto& a) { return square(a); }, [](double a) { return a * a; }));
    // ---------------------------------------------------------------- comparisons (no grad)
    v.push_back(compare("eq", [](auto& a, auto& b) { return eq(a, b); }, [](double a, double b) { return a == b; }));
    v.push_back(compare("lt", [](auto& a, auto& b) { return lt(a, b); }, [](double a, double b) { return a < b; }));
    v.push_back(compare("ge", [](auto& a, auto& b) { return ge(a, b); }, [](double a, double b) { return a >= b; }));
    v.push_back(compare("ne", [](auto& a, auto& b) { return ne(a, b); }, [](double a, double b) { return a != b; }));
    v.push_back(compare("le", [](auto& a, auto& b) { return le(a, b); }, [](double a, double b) { return a <= b; }));
    v.push_back(compare("gt", [](auto& a, auto& b) { return gt(a, b); }, [](double a, double b) { return a > b; }));
    v.push_back(compare_scalar("eq_scalar", [](auto& a, double s) { return eq(a, s); }, [](double a, double b) { return a == b; }));
    v.push_back(compare_scalar("ne_scalar", [](auto& a, double s) { return ne(a, s); }, [](double a, double b) { return a != b; }));
    v.push_back(compare_scalar("lt_scalar", [](auto& a, double s) { return lt(a, s); }, [](double a, double b) { return a < b; }));
    v.push_back(compare_scalar("le_scalar", [](auto& a, double s) { return le(a, s); }, [](double a, double b) { return a <= b; }));
    v.push_back(compare_scalar("gt_scalar", [](auto& a, double s) { return gt(a, s); }, [](double a, double b) { return a > b; }));
    v.push_back(compare_scalar("ge_scalar", [](auto& a, double s) { return ge(a, s); }, [](double a, double b) { return a >= b; }));
    v.push_back(OpCase{"logical_and_or_not",
                       [](Ctx& c) {
                         Shape s = c.shape(1, 3, 6);
                         return Args{{rand_mask(c, s), rand_mask(c, s), rand_mask(c, s)}, {}};
                       },
                       [](const Args& a) { return logical_or(logical_and(a.x[0], a.x[1]), logical_not(a.x[2])); },
                       [](const Refs& x, const P&) {
                         return ref_map3(x[0], x[1], x[2], [](double p, double q, double r) {
                           return ((p != 0 && q != 0) || r == 0) ? 1.0 : 0.0;
                         });
                       },
                       {}});
    // ---------------------------------------------------------------- selection
    v.push_back(OpCase{"masked_fill",
                       [](Ctx& c) {
                         Shape s = c.shape(1, 4, 6);
                         return Args{{c.rand(s), rand_mask(c, s)}, {}};
                       },
                       [](const Args& a) { return masked_fill(a.x[0], a.x[1], -2.5); },
                       [](const Refs& x, const P&) {
                         return ref_map2(x[0], x[1], [](double p, double m) { return m != 0 ? -2.5 : p; });
                       },
                       {0}});
    v.push_back(OpCase{"where_broadcast",
                       [](Ctx& c) {
                         auto [sa, sb] = broadcast_pair(c);
                         Shape full = broadcast_shapes(sa, sb, "where");
                         return Args{{c.rand(sa), c.rand(sb), rand_mask(c, full)}, {}};
                       },
                       [](const Args& a) { return where(a.x[2], a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) {
                         return ref_map3(x[2], x[0], x[1], [](double m, double p, double q) { return m != 0 ? p : q; });
                       },
                       {0, 1}});
    // ---------------------------------------------------------------- reductions
    v.push_back(OpCase{"sum_all", [](Ctx& c) { return Args{{c.rand(c.shape(0, 4, 7))}, {}}; },
                       [](const Args& a) { return sum(a.x[0]); },
                       [](const Refs& x, const P&) { return ref_sum(x[0], {}, false); }, {0}});
    v.push_back(OpCase{"sum_dims",
                       [](Ctx& c) {
                         Tensor t = c.rand(c.shape(1, 4, 7));
                         P p{c.pick(0, 1)};  // keepdim, then the dims
                         for (int64_t d = 0; d < t.dim(); ++d)
                           if (c.pick(0, 1)) p.push_back(d);
                         if (p.size() == 1) p.push_back(c.pick(0, t.dim() - 1));
                         return Args{{t}, p};
                       },
                       [](const Args& a) { return sum(a.x[0], Shape(a.p.begin() + 1, a.p.end()), a.p[0] != 0); },
                       [](const Refs& x, const P& p) { return ref_sum(x[0], Shape(p.begin() + 1, p.end()), p[0] != 0); },
                       {0}});
    v.push_back(OpCase{"sum_large_rows",  // big enough for the multi-threaded paths
                       [](Ctx& c) { return Args{{c.rand(Shape{c.pick(60, 90), c.pick(700, 900)})}, {c.pick(0, 1)}}; },
                       [](const Args& a) { return sum(a.x[0], Shape{a.p[0]}, false); },
                       [](const Refs& x, const P& p) { return ref_sum(x[0], Shape{p[0]}, false); },
                       {}, 1e-5, 1e-5});  // forward only: sum_dims checks the gradient
    v.push_back(OpCase{"mean_dims",
                       [](Ctx& c) {
                         Tensor t = c.rand(c.shape(2, 4, 6));
                         return Args{{t}, {c.pick(0, t.dim() - 1)}};
                       },
                       [](const Args& a) { return mean(a.x[0], Shape{a.p[0]}, true); },
                       [](const Refs& x, const P& p) {
                         Ref s = ref_sum(x[0], Shape{p[0]}, true);
                         const double n = static_cast<double>(x[0].shape[p[0]]);
                         return ref_map(s, [n](double q) { return q / n; });
                       },
                       {0}});
    v.push_back(OpCase{"mean_all", [](Ctx& c) { return Args{{c.rand(c.shape(1, 3, 6))}, {}}; },
                       [](const Args& a) { return mean(a.x[0]); },
                       [](const Refs& x, const P&) {
                         Ref s = ref_sum(x[0], {}, false);
                         s.v[0] /= static_cast<double>(x[0].numel());
                         return s;
                       },
                       {0}});
    v.push_back(OpCase{"max_dim",
                       [](Ctx& c) {
                         Tensor t = c.rand(c.shape(1, 4, 6));
                         return Args{{t}, {c.pick(0, t.dim() - 1)}};
                       },
                       [](const Args& a) { return max(a.x[0], a.p[0]).values; },
                       [](const Refs& x, const P& p) { return ref_max(x[0], p[0], false); }, {0}});
    v.push_back(OpCase{"argmax_dim",
                       [](Ctx& c) {
                         Tensor t = c.rand(c.shape(1, 4, 6));
                         return Args{{t}, {c.pick(0, t.dim() - 1)}};
                       },
                       [](const Args& a) { return argmax(a.x[0], a.p[0]); },
                       [](const Refs& x, const P& p) { return ref_max(x[0], p[0], true); }, {}});
    v.push_back(OpCase{"max_all", [](Ctx& c) { return Args{{c.rand(c.shape(1, 3, 6))}, {}}; },
                       [](const Args& a) { return max(a.x[0]); },
                       [](const Refs& x, const P&) {
                         Ref flat(Shape{x[0].numel()}, x[0].v);
                         return ref_max(flat, 0, false);
                       },
                       {0}});
    v.push_back(OpCase{"softmax",
                       [](Ctx& c) {
                         Tensor t = c.rand(c.shape(1, 4, 7), -3.0, 3.0);
                         return Args{{t}, {c.pick(0, t.dim() - 1)}};
                       },
                       [](const Args& a) { return softmax(a.x[0], a.p[0]); },
                       [](const Refs& x, const P& p) { return ref_softmax(x[0], p[0], false); }, {0}});
    v.push_back(OpCase{"log_softmax",
                       [](Ctx& c) {
                         Tensor t = c.rand(c.shape(1, 4, 7), -3.0, 3.0);
                         return Args{{t}, {c.pick(0, t.dim() - 1)}};
                       },
                       [](const Args& a) { return log_softmax(a.x[0], a.p[0]); },
                       [](const Refs& x, const P& p) { return ref_softmax(x[0], p[0], true); }, {0}});
    // ---------------------------------------------------------------- matrix products
    v.push_back(OpCase{"matmul_2d",
                       [](Ctx& c) {
                         int64_t M = c.pick(1, 9), K = c.pick(1, 9), N = c.pick(1, 9);
                         return Args{{c.rand(Shape{M, K}), c.rand(Shape{K, N})}, {}};
                       },
                       [](const Args& a) { return matmul(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) { return ref_matmul(x[0], x[1]); }, {0, 1}});
    v.push_back(OpCase{"matmul_broadcast_batch",
                       [](Ctx& c) {
                         int64_t M = c.pick(1, 6), K = c.pick(1, 6), N = c.pick(1, 6), B = c.pick(2, 3);
                         return Args{{c.rand(Shape{2, 1, M, K}), c.rand(Shape{B, K, N})}, {}};
                       },
                       [](const Args& a) { return matmul(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) { return ref_matmul(x[0], x[1]); }, {0, 1}});
    v.push_back(OpCase{"matmul_shared_weight",
                       [](Ctx& c) {
                         int64_t M = c.pick(1, 6), K = c.pick(1, 6), N = c.pick(1, 6), B = c.pick(2, 4);
                         return Args{{c.rand(Shape{B, M, K}), c.rand(Shape{K, N})}, {}};
                       },
                       [](const Args& a) { return matmul(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) { return ref_matmul(x[0], x[1]); }, {0, 1}});
    v.push_back(OpCase{"matmul_vectors",
                       [](Ctx& c) {
                         int64_t M = c.pick(1, 7), K = c.pick(1, 7);
                         return Args{{c.rand(Shape{M, K}), c.rand(Shape{K}), c.rand(Shape{M})}, {}};
                       },
                       // (M) . ((M, K) @ (K)) is a 0-d dot; times (K) @ (K, M)
                       [](const Args& a) { return matmul(a.x[2], matmul(a.x[0], a.x[1])) * matmul(a.x[1], a.x[0].t()); },
                       [](const Refs& x, const P&) {
                         Ref dot = ref_matmul(x[2], ref_matmul(x[0], x[1]));
                         Ref row = ref_matmul(x[1], ref_transpose_last(x[0]));
                         return ref_map(row, [&](double q) { return q * dot.v[0]; });
                       },
                       {0, 1, 2}});
    v.push_back(OpCase{"bmm",
                       [](Ctx& c) {
                         int64_t B = c.pick(1, 4), M = c.pick(1, 7), K = c.pick(1, 7), N = c.pick(1, 7);
                         return Args{{c.rand(Shape{B, M, K}), c.rand(Shape{B, K, N})}, {}};
                       },
                       [](const Args& a) { return bmm(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) { return ref_matmul(x[0], x[1]); }, {0, 1}});
    v.push_back(OpCase{"linear_bias",
                       [](Ctx& c) {
                         int64_t B = c.pick(1, 4), T = c.pick(1, 4), I = c.pick(1, 9), O = c.pick(1, 9);
                         return Args{{c.rand(Shape{B, T, I}), c.rand(Shape{O, I}), c.rand(Shape{O})}, {}};
                       },
                       [](const Args& a) { return linear(a.x[0], a.x[1], a.x[2]); },
                       [](const Refs& x, const P&) { return ref_linear(x[0], x[1], &x[2]); }, {0, 1, 2}});
    v.push_back(OpCase{"linear_no_bias",
                       [](Ctx& c) {
                         int64_t N = c.pick(1, 8), I = c.pick(1, 9), O = c.pick(1, 9);
                         return Args{{c.rand(Shape{N, I}), c.rand(Shape{O, I})}, {}};
                       },
                       [](const Args& a) { return linear(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) { return ref_linear(x[0], x[1], nullptr); }, {0, 1}});
    v.push_back(OpCase{"linear_with_output",
                       [](Ctx& c) {
                         int64_t N = c.pick(1, 8), I = c.pick(1, 9), O = c.pick(1, 9);
                         return Args{{c.rand(Shape{N, I}), c.rand(Shape{O, I}), c.rand(Shape{O})}, {}};
                       },
                       [](const Args& a) {
                         Tensor y;
                         {
                           NoGradGuard g;
                           y = linear(a.x[0], a.x[1], a.x[2]);
                         }
                         return linear_with_output(a.x[0], a.x[1], a.x[2], y);
                       },
                       [](const Refs& x, const P&) { return ref_linear(x[0], x[1], &x[2]); }, {0, 1, 2}});
    // ---------------------------------------------------------------- views and copies
    v.push_back(OpCase{"reshape",
                       [](Ctx& c) { return Args{{c.rand(Shape{c.pick(1, 4), 6, c.pick(1, 3)})}, {}}; },
                       [](const Args& a) { return a.x[0].reshape(Shape{a.x[0].size(0), 2, -1}); },
                       [](const Refs& x, const P&) {
                         return Ref(Shape{x[0].shape[0], 2, 3 * x[0].shape[2]}, x[0].v);
                       },
                       {0}});
    v.push_back(OpCase{"permute_contiguous",
                       [](Ctx& c) { return Args{{c.rand(c.shape(3, 3, 5))}, {}}; },
                       [](const Args& a) { return a.x[0].permute(Shape{2, 0, 1}).contiguous(); },
                       [](const Refs& x, const P&) { return ref_permute(x[0], {2, 0, 1}); }, {0}});
    v.push_back(OpCase{"transpose_mul",
                       [](Ctx& c) {
                         int64_t m = c.pick(1, 6), n = c.pick(1, 6);
                         return Args{{c.rand(Shape{m, n}), c.rand(Shape{n, m})}, {}};
                       },
                       [](const Args& a) { return a.x[0].t() * a.x[1]; },
                       [](const Refs& x, const P&) {
                         return ref_map2(ref_permute(x[0], {1, 0}), x[1], [](double p, double q) { return p * q; });
                       },
                       {0, 1}});
    v.push_back(OpCase{"narrow_select",
                       [](Ctx& c) {
                         Tensor t = c.rand(Shape{c.pick(2, 5), c.pick(3, 6), c.pick(1, 4)});
                         return Args{{t}, {c.pick(0, t.size(0) - 1), c.pick(0, 1)}};
                       },
                       [](const Args& a) { return a.x[0].select(0, a.p[0]).narrow(0, a.p[1], 2); },
                       [](const Refs& x, const P& p) {
                         Ref s = ref_narrow(x[0], 0, p[0], 1);
                         s.shape.erase(s.shape.begin());
                         return ref_narrow(s, 0, p[1], 2);
                       },
                       {0}});
    v.push_back(OpCase{"unsqueeze_expand_squeeze",
                       [](Ctx& c) { return Args{{c.rand(Shape{c.pick(1, 5), c.pick(1, 5)})}, {c.pick(2, 3)}}; },
                       [](const Args& a) {
                         Tensor e = a.x[0].unsqueeze(1).expand(Shape{-1, a.p[0], -1});
                         return e * e.select(1, 0).unsqueeze(1).squeeze(0);
                       },
                       [](const Refs& x, const P& p) {
                         Ref e(Shape{x[0].shape[0], p[0], x[0].shape[1]});
                         for_each_index(e.shape, [&](const std::vector<int64_t>& i) {
                           const double q = x[0].at({i[0], i[2]});
                           e.at(i) = q * q;
                         });
                         return e;
                       },
                       {0}});
    v.push_back(OpCase{"flatten_clone",
                       [](Ctx& c) { return Args{{c.rand(c.shape(2, 4, 4))}, {}}; },
                       [](const Args& a) { return a.x[0].flatten(1).clone() * 2.0; },
                       [](const Refs& x, const P&) {
                         Ref r = ref_map(x[0], [](double q) { return 2 * q; });
                         r.shape = Shape{x[0].shape[0], x[0].numel() / x[0].shape[0]};
                         return r;
                       },
                       {0}});
    v.push_back(OpCase{"cat",
                       [](Ctx& c) {
                         Shape s = c.shape(1, 4, 5);
                         const int64_t dim = c.pick(0, static_cast<int64_t>(s.size()) - 1);
                         Shape s1 = s, s2 = s, s3 = s;
                         s2[dim] = c.pick(1, 4);
                         s3[dim] = c.pick(1, 3);
                         return Args{{c.rand(s1), c.rand(s2), c.rand(s3)}, {dim}};
                       },
                       [](const Args& a) { return cat({a.x[0], a.x[1], a.x[2]}, a.p[0]); },
                       [](const Refs& x, const P& p) { return ref_cat({x[0], x[1], x[2]}, p[0]); },
                       {0, 1, 2}});
    v.push_back(OpCase{"stack",
                       [](Ctx& c) {
                         Shape s = c.shape(1, 3, 5);
                         return Args{{c.rand(s), c.rand(s)}, {c.pick(0, static_cast<int64_t>(s.size()))}};
                       },
                       [](const Args& a) { return stack({a.x[0], a.x[1]}, a.p[0]); },
                       [](const Refs& x, const P& p) {
                         Ref a = x[0], b = x[1];
                         a.shape.insert(a.shape.begin() + p[0], 1);
                         b.shape.insert(b.shape.begin() + p[0], 1);
                         return ref_cat({a, b}, p[0]);
                       },
                       {0, 1}});
    v.push_back(OpCase{"split_weighted",
                       [](Ctx& c) { return Args{{c.rand(Shape{c.pick(1, 4), c.pick(3, 9)})}, {c.pick(1, 3)}}; },
                       [](const Args& a) {
                         std::vector<Tensor> parts = split(a.x[0], a.p[0], 1);
                         std::vector<Tensor> scaled;
                         for (size_t i = 0; i < parts.size(); ++i) scaled.push_back(parts[i] * static_cast<double>(i + 1));
                         return cat(scaled, 1);
                       },
                       [](const Refs& x, const P& p) {
                         Ref out = x[0];
                         for_each_index(out.shape, [&](const std::vector<int64_t>& i) {
                           out.at(i) *= static_cast<double>(i[1] / p[0] + 1);
                         });
                         return out;
                       },
                       {0}});
    v.push_back(OpCase{"chunk_gates",  // the LSTM pattern: four gate blocks out of one row
                       [](Ctx& c) { return Args{{c.rand(Shape{c.pick(1, 4), 4 * c.pick(1, 4)})}, {}}; },
                       [](const Args& a) {
                         std::vector<Tensor> g = chunk(a.x[0], 4, 1);
                         return sigmoid(g[0]) * tanh(g[2]) + sigmoid(g[1]) - sigmoid(g[3]);
                       },
                       [](const Refs& x, const P&) {
                         const int64_t H = x[0].shape[1] / 4;
                         Ref out(Shape{x[0].shape[0], H});
                         for_each_index(out.shape, [&](const std::vector<int64_t>& i) {
                           auto g = [&](int64_t k) { return x[0].at({i[0], k * H + i[1]}); };
                           out.at(i) = sigm(g(0)) * std::tanh(g(2)) + sigm(g(1)) - sigm(g(3));
                         });
                         return out;
                       },
                       {0}});
    // ---------------------------------------------------------------- nn
    v.push_back(OpCase{"embedding",
                       [](Ctx& c) {
                         int64_t V = c.pick(2, 9), D = c.pick(1, 6);
                         return Args{{c.rand(Shape{V, D}), rand_index(c.gen, Shape{c.pick(1, 3), c.pick(1, 5)}, V)}, {}};
                       },
                       [](const Args& a) { return embedding(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) { return ref_embedding(x[0], x[1]); }, {0}});
    v.push_back(OpCase{"embedding_padding_idx",
                       [](Ctx& c) {
                         int64_t V = c.pick(3, 9), D = c.pick(1, 6);
                         Tensor idx = rand_index(c.gen, Shape{c.pick(2, 9)}, V);
                         return Args{{c.rand(Shape{V, D}), idx}, {}};
                       },
                       // forward only here; the padding row's zero gradient is its own test
                       [](const Args& a) { return embedding(a.x[0], a.x[1], 1); },
                       [](const Refs& x, const P&) { return ref_embedding(x[0], x[1]); }, {}});
    v.push_back(OpCase{"index_rows_repeated",
                       [](Ctx& c) {
                         const int64_t R = c.pick(2, 6);
                         return Args{{c.rand(Shape{R, c.pick(1, 3), c.pick(1, 4)}), rand_index(c.gen, Shape{c.pick(1, 7)}, R)}, {}};
                       },
                       [](const Args& a) { return index_rows(a.x[0], a.x[1]); },
                       [](const Refs& x, const P&) {
                         const int64_t row = x[0].numel() / x[0].shape[0];
                         Shape s = x[1].shape;
                         for (size_t d = 1; d < x[0].shape.size(); ++d) s.push_back(x[0].shape[d]);
                         Ref out(s);
                         for (int64_t i = 0; i < x[1].numel(); ++i)
                           for (int64_t j = 0; j < row; ++j)
                             out.v[static_cast<size_t>(i * row + j)] = x[0].v[static_cast<size_t>(static_cast<int64_t>(x[1].v[static_cast<size_t>(i)]) * row + j)];
                         return out;
                       },
                       {0}});
    v.push_back(OpCase{"dropout_seeded",
                       [](Ctx& c) { return Args{{c.rand(c.shape(1, 3, 8))}, {static_cast<int64_t>(c.pick(1, 1000))}}; },
                       [](const Args& a) {
                         Generator g(static_cast<uint64_t>(a.p[0]));
                         return dropout(a.x[0], 0.3, true, g);
                       },
                       [](const Refs& x, const P& p) {
                         Ref out = x[0];
                         for (size_t i = 0; i < out.v.size(); ++i) {
                           const float u = philox::to_unit_float(philox::word(static_cast<uint64_t>(p[0]), i));
                           out.v[i] = u >= 0.3f ? out.v[i] / 0.7 : 0.0;
                         }
                         return out;
                       },
                       {0}});
    auto nll_case = [](std::string name, Reduction red, bool through_log_softmax) {
      return OpCase{std::move(name),
                    [](Ctx& c) {
                      int64_t N = c.pick(1, 8), C = c.pick(2, 9);
                      Tensor x = c.rand(Shape{N, C}, -2.0, 2.0);
                      std::vector<int64_t> tv = rand_index(c.gen, Shape{N}, C).to_vector<int64_t>();
                      if (N > 1) tv[static_cast<size_t>(c.pick(0, N - 1))] = -100;  // an ignored target
                      return Args{{x, from_vector(tv, Shape{N})}, {}};
                    },
                    [red, through_log_softmax](const Args& a) {
                      return through_log_softmax ? cross_entropy(a.x[0], a.x[1], -100, red)
                                                 : nll_loss(a.x[0], a.x[1], -100, red);
                    },
                    [red, through_log_softmax](const Refs& x, const P&) {
                      return ref_nll(through_log_softmax ? ref_softmax(x[0], 1, true) : x[0], x[1], -100, red);
                    },
                    {0}};
    };
    v.push_back(nll_case("nll_loss_mean", Reduction::Mean, false));
    v.push_back(nll_case("nll_loss_sum", Reduction::Sum, false));
    v.push_back(nll_case("nll_loss_none", Reduction::None, false));
    v.push_back(nll_case("cross_entropy_mean", Reduction::Mean, true));
    v.push_back(OpCase{"to_dtype_roundtrip",
                       [](Ctx& c) { return Args{{c.rand(c.shape(1, 3, 5))}, {}}; },
                       [](const Args& a) {
                         DType other = a.x[0].dtype() == DType::Float32 ? DType::Float64 : DType::Float32;
                         return a.x[0].to(other).to(a.x[0].dtype()) * 3.0;
                       },
                       [](const Refs& x, const P&) { return ref_map(x[0], [](double q) { return 3 * q; }); },
                       // the float32 leg quantizes: a linear function, so a large step is exact
                       {0}, 1e-5, 1e-6, 1e-2, 1e-4});
    return v;
  }();
  return cases;
}

}  // namespace attn::test
